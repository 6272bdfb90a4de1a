"""``poster-rs serve`` against hostile clients (issue 10, items 1 and 4).

Slowloris, negative and oversized lengths, malformed chunked framing, limits on the body, on
parts and on part headers, a symlink race in the storage directory, non-ASCII names, memory over
thousands of uploads, the bearer token and the Host/Origin allow-list, and clients that leave
early without a traceback on the server's stderr.

Every server binds 127.0.0.1 on an ephemeral port; every socket has a timeout and every loop a
deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import poster_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from poster_rs._form import FormError, parse_disposition
from poster_rs._store import UploadDirectory
from poster_rs.server import UploadServer, exposure_warning

MiB = 1 << 20
TIMEOUT = 10.0  # every socket and client call here
CLI = [sys.executable, "-m", "poster_rs"]


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@contextlib.contextmanager
def serving(directory: Path | None = None, **kwargs: Any) -> Iterator[UploadServer]:
    server = UploadServer("127.0.0.1", 0, directory, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def port_of(server: UploadServer) -> int:
    return int(server.socket.getsockname()[1])


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket) -> Answer:
    """Reads one HTTP answer (with a Content-Length) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        block = sock.recv(65536)
        if not block:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += block
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        block = sock.recv(65536)
        if not block:
            break
        body += block
    return Answer(status, headers, body[:length])


def exchange(port: int, request: bytes) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        return read_answer(sock)


def form(params: Any, **kw: Any) -> tuple[bytes, dict[str, str]]:
    stream, headers = poster_rs.multipart_encode(params, **kw)
    with stream:
        return b"".join(stream), headers


def chunked(body: bytes, size: int = 65536) -> bytes:
    out = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


def head(port: int, content_type: str, extra: str = "", method: str = "POST") -> bytes:
    return (
        f"{method} /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"{extra}\r\n"
    ).encode("latin-1")


def post(url: str, params: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    stream, form_headers = poster_rs.multipart_encode(params)
    request = urllib.request.Request(url, data=stream, headers={**form_headers, **(headers or {})})
    try:
        with stream, urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if not p.is_dir()) if path.exists() else []


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- slowloris and connection limits ---------------------------------------------------------


def test_slowloris_connections_do_not_stop_a_real_upload(store: Path, tmp_path: Path) -> None:
    """300 connections that send half a request line and stop: a real 8 MiB upload still goes
    through at once, and the server drops the slow ones after its header timeout."""
    data = os.urandom(8 * MiB)
    (tmp_path / "real.bin").write_bytes(data)
    with serving(store, header_timeout=1.5) as server:
        slow = []
        try:
            for _ in range(300):
                sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=TIMEOUT)
                sock.sendall(b"POST /upload HT")
                slow.append(sock)
            started = time.monotonic()
            status, reply = post(server.url + "upload", [("f", tmp_path / "real.bin")])
            assert status == 200, reply
            assert time.monotonic() - started < 5
            assert reply["parts"][0]["sha256"] == sha256(data)
            # Every slow connection is closed by the server (EOF), long before our timeout.
            deadline = time.monotonic() + 8
            for sock in slow:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    leftover = sock.recv(4096)
                except ConnectionResetError:
                    leftover = b""
                assert leftover == b"" or leftover.startswith(b"HTTP/1.1 4"), leftover
        finally:
            for sock in slow:
                sock.close()
    assert (store / "real.bin").read_bytes() == data


def test_a_head_dripped_byte_by_byte_is_cut_at_the_header_timeout(store: Path) -> None:
    """Bytes that keep coming do not extend the time allowed for a request head."""
    head_bytes = b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    with serving(store, header_timeout=1.0) as server:
        socks = [
            socket.create_connection(("127.0.0.1", port_of(server)), timeout=TIMEOUT)
            for _ in range(5)
        ]
        started = time.monotonic()
        cut: dict[int, float] = {}
        try:
            for byte in range(len(head_bytes)):
                for index, sock in enumerate(socks):
                    if index not in cut:
                        try:
                            sock.send(head_bytes[byte : byte + 1])
                        except OSError:
                            cut[index] = time.monotonic() - started
                if len(cut) == len(socks) or time.monotonic() - started > 8:
                    break
                time.sleep(0.1)
        finally:
            for sock in socks:
                sock.close()
    assert len(cut) == len(socks), "a dripping client was never cut off"
    assert max(cut.values()) < 4


def test_connections_past_the_cap_get_503(store: Path) -> None:
    with serving(store, max_connections=20, header_timeout=5) as server:
        held = [socket.create_connection(("127.0.0.1", port_of(server)), timeout=TIMEOUT)]
        try:
            for _ in range(19):
                held.append(socket.create_connection(("127.0.0.1", port_of(server)), TIMEOUT))
            time.sleep(0.2)  # the server has accepted them all
            with socket.create_connection(("127.0.0.1", port_of(server)), TIMEOUT) as extra:
                # Its request is not read, and its answer still arrives (no reset).
                with contextlib.suppress(OSError):
                    extra.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + b"x" * 65536)
                assert read_answer(extra).status == 503
        finally:
            for sock in held:
                sock.close()
        # Once they are gone, uploads are served again.
        deadline = time.monotonic() + 5
        while True:
            with contextlib.suppress(ConnectionError, OSError):
                status, _ = post(server.url, [("a", "1")])
                if status == 200:
                    break
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.05)


def test_64_concurrent_uploads_none_reset(store: Path) -> None:
    """The listen backlog is large enough for a burst of connections (with a backlog of 5, 20 to
    39 % of 64 concurrent uploads were reset)."""
    results: list[Any] = []
    lock = threading.Lock()
    barrier = threading.Barrier(64, timeout=TIMEOUT)

    def upload(index: int) -> None:
        try:
            barrier.wait()
            outcome: Any = post(server.url, [("f", (f"c{index}.bin", b"%d" % index * 1000))])[0]
        except Exception as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    with serving(store) as server:
        threads = [threading.Thread(target=upload, args=(i,), daemon=True) for i in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert results == [200] * 64, [r for r in results if r != 200][:3]
    assert len(files_under(store)) == 64


def test_uploads_past_the_cap_wait_then_get_503(store: Path) -> None:
    body, headers = form([("f", ("slow.bin", b"x" * 100_000))])
    with serving(store, max_uploads=1, read_timeout=1.0) as server:
        port = port_of(server)
        request = head(port, headers["Content-Type"], f"Content-Length: {len(body)}\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as first:
            # The first upload holds the only slot, sending a byte every 0.2 s (never idle for
            # the read timeout) until the second has been refused.
            first.sendall(request + body[:1000])
            refused = threading.Event()

            def trickle() -> None:
                for offset in range(1000, 1100):
                    if refused.wait(0.2):
                        return
                    first.sendall(body[offset : offset + 1])

            thread = threading.Thread(target=trickle, daemon=True)
            thread.start()
            time.sleep(0.2)
            started = time.monotonic()
            try:
                second = exchange(port, request + body)
            finally:
                refused.set()
                thread.join(5)
            assert second.status == 503
            assert 0.8 < time.monotonic() - started < 5
            assert read_answer(first).status == 408  # it stalls from now on
        assert post(server.url, [("f", ("after.bin", b"ok"))])[0] == 200
    assert [p.name for p in files_under(store)] == ["after.bin"]


def test_a_stalled_body_is_dropped_and_its_file_removed(store: Path) -> None:
    body, headers = form([("f", ("stall.bin", b"x" * MiB))])
    with serving(store, read_timeout=1.0) as server:
        request = head(port_of(server), headers["Content-Type"], f"Content-Length: {len(body)}\r\n")
        with socket.create_connection(("127.0.0.1", port_of(server)), TIMEOUT) as sock:
            sock.sendall(request + body[: len(body) // 2])
            started = time.monotonic()
            answer = read_answer(sock)
        assert answer.status == 408
        assert 0.8 < time.monotonic() - started < 5
    assert files_under(store) == []


def test_a_slow_but_steady_body_is_not_cut(store: Path) -> None:
    """The read timeout counts silence, not the body's duration: pieces 0.3 s apart for 2.4 s
    pass a 1 s read timeout."""
    body, headers = form([("f", ("slow.bin", b"y" * 4000))])
    with serving(store, read_timeout=1.0) as server:
        request = head(port_of(server), headers["Content-Type"], f"Content-Length: {len(body)}\r\n")
        with socket.create_connection(("127.0.0.1", port_of(server)), TIMEOUT) as sock:
            sock.sendall(request)
            step = len(body) // 8 + 1
            for start in range(0, len(body), step):
                time.sleep(0.3)
                sock.sendall(body[start : start + step])
            answer = read_answer(sock)
        assert answer.status == 200, answer.body
    assert [p.name for p in files_under(store)] == ["slow.bin"]


# --- lengths and framing -----------------------------------------------------------------------


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "0x10", " 12", "99999999999999999999999"])
def test_bad_content_length_gets_an_answer(store: Path, length: str) -> None:
    with serving(store, max_body=MiB) as server:
        answer = exchange(
            port_of(server),
            head(port_of(server), "multipart/form-data; boundary=b", f"Content-Length:{length}\r\n")
            + b"x" * 1000,
        )
    assert answer.status in (400, 413), answer.body
    assert files_under(store) == []


def test_oversized_content_length_is_refused_before_the_body(store: Path) -> None:
    with serving(store, max_body=MiB) as server:
        port = port_of(server)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            # 10 GiB announced, not one body byte sent: the answer must come anyway.
            sock.sendall(
                head(port, "multipart/form-data; boundary=b", "Content-Length: 10737418240\r\n")
            )
            answer = read_answer(sock)
    assert answer.status == 413
    assert "too large" in answer.json()["error"]
    assert files_under(store) == []


def test_max_body_holds_for_a_chunked_body(store: Path) -> None:
    body, headers = form([("a", "1"), ("f", ("big.bin", os.urandom(4 * MiB)))])
    with serving(store, max_body=MiB) as server:
        port = port_of(server)
        request = head(port, headers["Content-Type"], "Transfer-Encoding: chunked\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(request)
            with contextlib.suppress(OSError):  # the server may stop reading after its answer
                sock.sendall(chunked(body))
            answer = read_answer(sock)
        assert answer.status == 413
        assert "too large" in answer.json()["error"]
        assert server.received_count == 0
    assert files_under(store) == []


MALFORMED_CHUNKED = {
    "hex prefix": b"0x63\r\n" + b"a" * 99 + b"\r\n0\r\n\r\n",
    "plus sign": b"+63\r\n" + b"a" * 99 + b"\r\n0\r\n\r\n",
    "underscore": b"6_3\r\n" + b"a" * 99 + b"\r\n0\r\n\r\n",
    "negative": b"-1\r\n" + b"a" * 99 + b"\r\n0\r\n\r\n",
    "junk for CRLF": b"3\r\nabcXY0\r\n\r\n",
    "huge trailer": b"3\r\nabc\r\n0\r\nX-T: " + b"a" * 100_000 + b"\r\n\r\n",
    "many trailers": b"3\r\nabc\r\n0\r\n" + b"X-T: a\r\n" * 5000 + b"\r\n",
    "huge size": b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("body", MALFORMED_CHUNKED.values(), ids=MALFORMED_CHUNKED.keys())
def test_malformed_chunked_framing_is_refused(store: Path, body: bytes) -> None:
    with serving(store) as server:
        port = port_of(server)
        answer = exchange(
            port,
            head(port, "multipart/form-data; boundary=b", "Transfer-Encoding: chunked\r\n") + body,
        )
        assert answer.status == 400, answer.body
        assert server.received_count == 0
    assert files_under(store) == []


def test_serves_on_asyncio_s_own_loop_too(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop is optional (the cli extra installs it where it exists): without it the server
    runs on asyncio's loop, with the same framing checks."""
    import asyncio

    import poster_rs.server

    monkeypatch.setattr(poster_rs.server, "new_event_loop", asyncio.new_event_loop)
    with serving(store) as server:
        status, reply = post(server.url, [("f", ("plain.txt", b"plain"))])
        assert status == 200, reply
        port = port_of(server)
        bad = head(port, "multipart/form-data; boundary=b", "Transfer-Encoding: chunked\r\n")
        assert exchange(port, bad + b"0x63\r\n").status == 400
    assert (store / "plain.txt").read_bytes() == b"plain"


def test_a_good_chunked_upload_is_stored(store: Path) -> None:
    data = os.urandom(3 * MiB + 17)
    body, headers = form([("f", ("c.bin", data))])
    with serving(store) as server:
        port = port_of(server)
        answer = exchange(
            port,
            head(port, headers["Content-Type"], "Transfer-Encoding: chunked\r\n") + chunked(body),
        )
    assert answer.status == 200, answer.body
    assert answer.json()["parts"][0]["sha256"] == sha256(data)
    assert (store / "c.bin").read_bytes() == data


ODD_HEADERS = {
    "utf-8 boundary": "Content-Type: multipart/form-data; boundary=日本\r\n".encode(),
    "binary boundary": b"Content-Type: multipart/form-data; boundary=\xff\xfe\r\n",
    "long boundary": b"Content-Type: multipart/form-data; boundary=" + b"b" * 300 + b"\r\n",
    "empty boundary": b'Content-Type: multipart/form-data; boundary=""\r\n',
    "no boundary": b"Content-Type: multipart/form-data\r\n",
    "not a form": b"Content-Type: application/json\r\n",
    "broken origin": b"Content-Type: multipart/form-data; boundary=b\r\nOrigin: http://[::1\r\n",
    "binary origin": b"Content-Type: multipart/form-data; boundary=b\r\nOrigin: \xff\r\n",
    "utf-8 host": b"Content-Type: multipart/form-data; boundary=b\r\nX-Pad: 1\r\n",
    "expect other": b"Content-Type: multipart/form-data; boundary=b\r\nExpect: 200-ok\r\n",
    "non-ASCII token": b"Content-Type: multipart/form-data; boundary=b\r\nX-Token: \xc3\xbc\r\n",
}


@pytest.mark.parametrize("headers", ODD_HEADERS.values(), ids=ODD_HEADERS.keys())
def test_odd_header_values_get_a_4xx_never_a_crash(store: Path, headers: bytes) -> None:
    body = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--\r\n"
    with serving(store, token="t") as server:
        port = port_of(server)
        host = "ホスト.example" if b"X-Pad" in headers else f"127.0.0.1:{port}"
        token = "ü" if b"X-Token" in headers else "t"  # else past the token check
        request = (
            f"POST / HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n".encode()
            + headers
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        answer = exchange(port, request)
    assert 400 <= answer.status < 500, answer.body
    assert files_under(store) == []


# --- parts and part headers --------------------------------------------------------------------


def test_too_many_parts(store: Path) -> None:
    with serving(store, max_parts=10) as server:
        assert post(server.url, [(f"f{i}", "v") for i in range(10)])[0] == 200
        status, reply = post(server.url, [(f"f{i}", "v") for i in range(11)])
    assert status == 413
    assert "parts" in reply["error"]


def test_too_many_parts_leaves_no_file(store: Path) -> None:
    params = [poster_rs.MultipartParam(f"f{i}", filename=f"{i}.txt", value=b"x") for i in range(6)]
    with serving(store, max_parts=5) as server:
        status, reply = post(server.url, params)
    assert status == 413, reply
    assert files_under(store) == []


def test_part_header_limit(store: Path) -> None:
    with serving(store, max_part_header=1024) as server:
        assert post(server.url, [("n" * 900, "v")])[0] == 200
        status, reply = post(server.url, [("n" * 2000, "v")])
        assert status == 413
        assert "headers" in reply["error"]
        # Many small header lines are refused too (python-multipart also caps their count).
        extra = {f"X-{i}": "v" * 20 for i in range(60)}
        status, reply = post(server.url, [poster_rs.MultipartParam("f", "v", headers=extra)])
        assert status in (400, 413)
        assert "header" in reply["error"]


# --- the storage directory ---------------------------------------------------------------------


def test_symlink_race_writes_nothing_outside(store: Path, tmp_path: Path) -> None:
    """A local user keeps planting symlinks (to files outside) under the names the server is
    about to use, while 150 uploads of the same name run: every upload lands inside, as a new
    regular file, and nothing is written outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    store.mkdir()
    names = ["victim.txt"] + [f"victim-{i}.txt" for i in range(1, 200)]
    stop = threading.Event()
    planted = [0]

    def attacker() -> None:
        while not stop.is_set():
            for name in names:
                link = store / name
                with contextlib.suppress(OSError):
                    link.symlink_to(outside / name)
                    planted[0] += 1
                if stop.is_set():
                    return
            # Remove the links again so the race is on the next name too.
            for name in names:
                link = store / name
                if link.is_symlink():
                    with contextlib.suppress(OSError):
                        link.unlink()

    thread = threading.Thread(target=attacker, daemon=True)
    with serving(store) as server:
        thread.start()
        try:
            replies = [post(server.url, [("f", ("victim.txt", b"%d" % i))]) for i in range(150)]
        finally:
            stop.set()
            thread.join(10)
    assert not thread.is_alive()
    assert planted[0] > 0
    assert files_under(outside) == []
    assert all(status == 200 for status, _ in replies), replies[:3]
    stored = {reply["parts"][0]["stored_as"] for _, reply in replies}
    assert len(stored) == 150
    for name in stored:
        path = store / name
        assert not path.is_symlink()
        assert path.is_file()


def test_the_directory_swapped_for_a_symlink_is_not_followed(store: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with serving(store) as server:
        assert post(server.url, [("f", ("a.txt", b"a"))])[0] == 200
        store.rename(tmp_path / "moved")
        store.symlink_to(outside)
        status, reply = post(server.url, [("f", ("b.txt", b"b"))])
    assert status == 200, reply
    assert files_under(outside) == []
    assert (tmp_path / "moved" / "b.txt").read_bytes() == b"b"


def test_same_name_uploads_are_numbered_without_overwriting(tmp_path: Path) -> None:
    directory = UploadDirectory(tmp_path / "d")
    try:
        (tmp_path / "d" / "a-5.txt").write_bytes(b"planted")
        (tmp_path / "d" / "a-7.txt").symlink_to(tmp_path / "elsewhere.txt")
        names = []
        for _ in range(300):
            name, fd = directory.create("a.txt")
            os.close(fd)
            names.append(name)
    finally:
        directory.close()
    expected = ["a.txt"] + [f"a-{i}.txt" for i in range(1, 302) if i not in (5, 7)]
    assert names == expected
    assert (tmp_path / "d" / "a-5.txt").read_bytes() == b"planted"
    assert not (tmp_path / "elsewhere.txt").exists()


# --- names -------------------------------------------------------------------------------------

NON_ASCII = ["日本語.txt", unicodedata.normalize("NFD", "café.txt"), "😀.png", "résumé.pdf"]


def test_non_ascii_names_through_ship_are_stored_nfc(store: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    expected = {}
    for index, name in enumerate(NON_ASCII):
        data = b"%d" % index * 100
        (src / name).write_bytes(data)
        expected[name] = sha256(data)
    with serving(store) as server:
        results = poster_rs.ship(
            [str(src / n) for n in NON_ASCII], server.url, name="名前", timeout=TIMEOUT,
            progress=False,
        )  # fmt: skip
    assert all(r.ok for r in results), [(r.path, r.error) for r in results]
    for result in results:
        (part,) = json.loads(result.response or "")["parts"]
        assert result.path is not None
        sent = os.path.basename(result.path)
        assert part["name"] == "名前"
        assert part["filename"] == sent  # reported as sent
        assert part["stored_as"] == unicodedata.normalize("NFC", sent)  # stored NFC
        assert part["sha256"] == expected[sent]
    assert sorted(p.name for p in store.iterdir()) == sorted(
        unicodedata.normalize("NFC", n) for n in NON_ASCII
    )


def test_filename_star_and_name_star_are_read(store: Path) -> None:
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\n"
        "Content-Disposition: form-data; name*=UTF-8''%E5%90%8D%E5%89%8D; name=\"fallback\"; "
        "filename=\"fallback.txt\"; filename*=UTF-8''%F0%9F%98%80%20caf%C3%A9.txt\r\n"
        "Content-Type: text/plain\r\n\r\nhello\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    with serving(store) as server:
        port = port_of(server)
        answer = exchange(
            port,
            head(
                port,
                f"multipart/form-data; boundary={boundary}",
                f"Content-Length: {len(body)}\r\n",
            )
            + body,
        )
    assert answer.status == 200, answer.body
    (part,) = answer.json()["parts"]
    assert (part["name"], part["filename"]) == ("名前", "😀 café.txt")
    assert (store / "😀 café.txt").read_bytes() == b"hello"


DISPOSITION_PIECES = [b";", b"=", b'"', b"\\", b"*", b"'", b" ", b"%", b"%e2%82", b"\xff"]
DISPOSITION_PIECES += [b"form-data", b"name", b"filename", b"name*", b"utf-8", b"\xc3\xa9", b"C:\\"]


@given(st.binary(max_size=200) | st.lists(st.sampled_from(DISPOSITION_PIECES)).map(b"".join))
def test_any_disposition_parses_or_is_refused_with_a_4xx(raw: bytes) -> None:
    refusal: FormError | None = None
    try:
        params = parse_disposition(raw)
    except FormError as exc:
        refusal = exc
    if refusal is not None:
        assert 400 <= refusal.status < 500
        assert refusal.message
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


#: Names the encoder sends unescaped or backslash-escaped (C0 controls go out as %XX, which no
#: parser decodes; surrogates cannot be encoded).
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


@given(NAMES, NAMES)
def test_names_poster_rs_sends_are_read_back_exactly(name: str, filename: str) -> None:
    if filename[1:3] == ":\\" or filename.startswith("\\\\"):
        filename = "x" + filename  # not a Windows path, which keeps only its last component
    header = poster_rs.MultipartParam(name, filename=filename, value=b"v").encode_hdr("B")
    assert isinstance(header, bytes)
    line = next(x for x in header.split(b"\r\n") if x.startswith(b"Content-Disposition:"))
    params = parse_disposition(line.partition(b":")[2].strip())
    assert (params["name"], params["filename"]) == (name, filename)


@pytest.mark.parametrize(
    "disposition",
    [
        b'form-data; name="a\xff"',  # not UTF-8
        b'form-data; name="a"; name="b"',  # ambiguous
        b"form-data; name=\"a\"; filename*=KOI8-R''%C1",  # a charset RFC 8187 does not require
    ],
)
def test_undecodable_names_are_refused(store: Path, disposition: bytes) -> None:
    body = b"--b\r\nContent-Disposition: " + disposition + b"\r\n\r\nv\r\n--b--\r\n"
    with serving(store) as server:
        port = port_of(server)
        answer = exchange(
            port,
            head(port, "multipart/form-data; boundary=b", f"Content-Length: {len(body)}\r\n")
            + body,
        )
    assert answer.status == 400, answer.body
    assert answer.json()["error"]


# --- access control ----------------------------------------------------------------------------


def test_bearer_token(store: Path) -> None:
    with serving(store, token="s3cret") as server:
        status, reply = post(server.url, [("f", ("t.txt", b"t"))])
        assert status == 401
        assert "token" in reply["error"]
        wrong = {"Authorization": "Bearer nope"}
        assert post(server.url, [("f", ("t.txt", b"t"))], wrong)[0] == 401
        good = {"Authorization": "Bearer s3cret"}
        assert post(server.url, [("f", ("t.txt", b"t"))], good)[0] == 200
        # Refused before the body with Expect: 100-continue.
        port = port_of(server)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(
                head(port, "multipart/form-data; boundary=b",
                     "Content-Length: 1000000\r\nExpect: 100-continue\r\n")
            )  # fmt: skip
            answer = read_answer(sock)
        assert answer.status == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert [p.name for p in files_under(store)] == ["t.txt"]


@pytest.mark.parametrize(
    ("allow", "host", "origin", "expected"),
    [
        (None, "127.0.0.1:{port}", None, 200),
        (None, "localhost:{port}", "http://localhost:{port}", 200),
        (None, "[::1]:{port}", None, 200),
        (None, "attacker.example:{port}", None, 403),  # DNS rebinding
        (None, "127.0.0.1:{port}", "http://attacker.example", 403),  # cross-site form POST
        (None, "127.0.0.1:{port}", "null", 403),
        (["files.example"], "files.example", None, 200),
        (["files.example"], "127.0.0.1:{port}", None, 403),
    ],
)
def test_host_and_origin_allow_list(
    store: Path, allow: list[str] | None, host: str, origin: str | None, expected: int
) -> None:
    body, headers = form([("f", ("h.txt", b"h"))])
    with serving(store, allow_hosts=allow) as server:
        port = port_of(server)
        extra = f"Content-Length: {len(body)}\r\n"
        if origin is not None:
            extra += f"Origin: {origin.format(port=port)}\r\n"
        request = (
            f"POST /upload HTTP/1.1\r\nHost: {host.format(port=port)}\r\n"
            f"Content-Type: {headers['Content-Type']}\r\n{extra}\r\n"
        ).encode() + body
        answer = exchange(port, request)
    assert answer.status == expected, answer.body
    assert len(files_under(store)) == (1 if expected == 200 else 0)


def test_warning_when_exposed_without_a_token() -> None:
    warning = exposure_warning("0.0.0.0", 8000, token=None, storing=True)
    assert warning is not None
    assert "WARNING" in warning
    assert "--token" in warning
    assert exposure_warning("0.0.0.0", 8000, token="t", storing=True) is None
    assert exposure_warning("127.0.0.1", 8000, token=None, storing=True) is None
    assert exposure_warning("::1", 8000, token=None, storing=True) is None
    assert exposure_warning("192.168.1.10", 8000, token=None, storing=False) is not None


# --- poster-rs serve as a process: memory and stderr --------------------------------------------


class ServeProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        assert self.proc.stdout is not None
        self.stdout_lines: list[str] = []
        first = self.proc.stdout.readline()
        match = re.match(r"Serving on http://127\.0\.0\.1:(\d+)/", first)
        assert match, first
        self.port = int(match.group(1))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> str:
        """Stops the server; returns its stderr (its stdout stays with the reader thread)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.reader.join(5)
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.stdout.close()
        with self.proc.stderr:
            return self.proc.stderr.read()


def test_rss_stays_flat_over_thousands_of_uploads(tmp_path: Path) -> None:
    """2,500 uploads of 20 parts each over keep-alive connections: the server keeps counters,
    not records (the old server kept every request's parts and grew by ~10 MiB here)."""
    server = ServeProcess("--dir", str(tmp_path / "store"))
    try:
        params: list[tuple[str, Any]] = [(f"field{i}", f"value {i}") for i in range(19)]
        params.append(("file", ("f.txt", b"x" * 100)))
        body, headers = form(params)

        def upload(count: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            try:
                for _ in range(count):
                    conn.request("POST", "/upload", body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200
            finally:
                conn.close()

        upload(500)
        before = server.rss()
        started = time.monotonic()
        upload(2000)
        assert time.monotonic() - started < 120
        after = server.rss()
    finally:
        server.stop()
    assert after - before < 3 * MiB, f"RSS grew by {(after - before) / MiB:.1f} MiB"
    assert len(list((tmp_path / "store").iterdir())) == 2500


def test_clients_leaving_early_leave_no_traceback(tmp_path: Path) -> None:
    server = ServeProcess("--dir", str(tmp_path / "store"), "--max-body", "1M")
    try:
        body, headers = form([("f", ("gone.bin", os.urandom(4 * MiB)))])
        small, small_headers = form([("f", ("small.bin", os.urandom(100_000)))])
        port = server.port
        for how in ("close", "reset", "after-head", "before-answer", "refused"):
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                if how == "refused":  # over --max-body: answered early, then the client leaves
                    sock.sendall(
                        head(port, headers["Content-Type"], f"Content-Length: {len(body)}\r\n")
                    )
                    with contextlib.suppress(OSError):
                        sock.sendall(body[:MiB])
                elif how == "before-answer":
                    sock.sendall(
                        head(port, small_headers["Content-Type"],
                             f"Content-Length: {len(small)}\r\n") + small
                    )  # fmt: skip
                elif how == "after-head":
                    sock.sendall(
                        head(port, small_headers["Content-Type"],
                             f"Content-Length: {len(small)}\r\n")
                    )  # fmt: skip
                else:
                    sock.sendall(
                        head(port, small_headers["Content-Type"],
                             f"Content-Length: {len(small) * 2}\r\n") + small
                    )  # fmt: skip
                if how == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            time.sleep(0.1)
        # The server is still fine.
        time.sleep(0.5)
        status, _ = post(f"http://127.0.0.1:{port}/", [("a", "1")])
        assert status == 200
    finally:
        err = server.stop()
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err, err
    assert "Error" not in err, err
    # Only the small upload that completed was stored; the others left nothing behind.
    assert [p.name for p in (tmp_path / "store").iterdir()] in ([], ["small.bin"])


def test_uploads_succeed_when_stdout_is_gone_or_cannot_encode(tmp_path: Path) -> None:
    """serve prints every part; a closed stdout (``poster-rs serve | head -1``) or one that
    cannot encode a name costs those lines, never the upload."""
    ascii_out = ServeProcess("--dir", str(tmp_path / "a"), env={"PYTHONIOENCODING": "ascii"})
    try:
        url = f"http://127.0.0.1:{ascii_out.port}/"
        assert post(url, [("名前", ("日本語.txt", b"x"))])[0] == 200
    finally:
        err = ascii_out.stop()
    assert "Traceback" not in err, err
    assert any("\\u65e5" in line for line in ascii_out.stdout_lines), ascii_out.stdout_lines

    gone = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--dir", str(tmp_path / "b")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert gone.stdout is not None
        match = re.match(r"Serving on (http://127\.0\.0\.1:\d+/)", gone.stdout.readline())
        assert match
        gone.stdout.close()  # the reader leaves: the server's next print hits a closed pipe
        for index in range(3):
            status, reply = post(match.group(1), [("f", (f"f{index}.txt", b"x"))])
            assert status == 200, reply
    finally:
        gone.terminate()
        _, err = gone.communicate(timeout=10)
    assert "Traceback" not in err, err
    assert len(list((tmp_path / "b").iterdir())) == 3
