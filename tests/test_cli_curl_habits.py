"""curl's habits in ``poster-rs post`` (issue 13, item 7) and ``ship --limit-rate``, run for
real against servers on 127.0.0.1: ``-F name=@-`` and ``-F name=<-`` (stdin, chunked),
``-u user:password``, ``-o FILE``, ``--retry N``, ``-x PROXY``, ``--limit-rate``.

Every subprocess has a timeout; the servers are stopped with bounded joins.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import PASSWORD, USER, WerkzeugServer
from _ship_helpers import assert_exactly_once, make_files
from _ship_servers import FlakyServer, ForwardProxy
from poster_rs._curl_options import open_with_retries

# The test server: poster-rs serve with a log of what it received (dummyserver/).
from dummyserver import RecordingUploadServer as UploadServer

CLI = [sys.executable, "-m", "poster_rs"]


def post(
    *args: str, stdin: bytes | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, "post", *args, "--no-progress"],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=60,
        check=False,
        **kwargs,
    )


@pytest.fixture
def werkzeug() -> Iterator[WerkzeugServer]:
    with WerkzeugServer() as server:
        yield server


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_file_part_from_stdin_is_sent_chunked(werkzeug: WerkzeugServer) -> None:
    data = os.urandom(3 << 20)
    result = post(werkzeug.url + "up", "-F", "title=x", "-F", "blob=@-", stdin=data)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["fields"] == [["title", "x"]]
    (name, filename, content_type, size, digest) = reply["files"][0]
    assert (name, filename, size) == ("blob", "-", len(data))
    assert content_type == "application/octet-stream"
    assert digest == hashlib.sha256(data).hexdigest()
    assert reply["headers"].get("transfer-encoding") == "chunked"
    assert "content-length" not in reply["headers"]


def test_text_field_from_stdin(werkzeug: WerkzeugServer) -> None:
    result = post(werkzeug.url, "-F", "note=<-", stdin="résumé ☃\n".encode())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fields"] == [["note", "résumé ☃\n"]]


def test_user_password(werkzeug: WerkzeugServer) -> None:
    ok = post(werkzeug.url + "auth", "-F", "a=1", "-u", f"{USER}:{PASSWORD}")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["fields"] == [["a", "1"]]
    wrong = post(werkzeug.url + "auth", "-F", "a=1", "-u", f"{USER}:nope")
    assert wrong.returncode == 22
    no_colon = post(werkzeug.url + "auth", "-F", "a=1", "-u", USER)
    assert no_colon.returncode == 2
    assert b"user:password" in no_colon.stderr


def test_output_file(werkzeug: WerkzeugServer, tmp_path: Path) -> None:
    out = tmp_path / "reply.json"
    result = post(werkzeug.url, "-F", "a=1", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert json.loads(out.read_bytes())["fields"] == [["a", "1"]]


def test_retry_resends_the_whole_body(tmp_path: Path) -> None:
    (path,) = make_files(tmp_path / "src", 1, low=200_000, high=200_000, seed=1)
    with FlakyServer(fail=1) as server:
        result = post(server.url, "-F", f"f=@{path}", "--retry", "2")
        sizes = list(server.sizes)
    assert result.returncode == 0, result.stderr
    assert [status for status, _ in sizes] == [503, 200]
    assert sizes[0][1] == sizes[1][1] > 200_000
    assert b"retrying in 1 s" in result.stderr
    with FlakyServer(fail=5) as server:
        given_up = post(server.url, "-F", f"f=@{path}", "--retry", "1")
        assert len(server.sizes) == 2
    assert given_up.returncode == 22


def test_retry_cannot_resend_stdin(tmp_path: Path) -> None:
    with FlakyServer(fail=1) as server:
        result = post(server.url, "-F", "f=@-", "--retry", "3", stdin=b"once only")
        assert len(server.sizes) == 1
    assert result.returncode == 22


def test_retry_waits_double_each_time_and_skips_what_is_not_transient() -> None:
    import urllib.error

    waits: list[float] = []
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ConnectionResetError("reset")
        return "done"

    assert open_with_retries(flaky, 5, lambda: True, sleep=waits.append) == "done"
    assert waits == [1.0, 2.0, 4.0]

    def forbidden() -> str:
        raise urllib.error.HTTPError("http://x/", 403, "Forbidden", {}, None)  # type: ignore[arg-type]

    with pytest.raises(urllib.error.HTTPError):
        open_with_retries(forbidden, 5, lambda: True, sleep=waits.append)
    assert len(waits) == 3

    def unreadable() -> str:
        raise PermissionError(13, "Permission denied", "/secret")

    with pytest.raises(PermissionError):
        open_with_retries(unreadable, 5, lambda: True, sleep=waits.append)
    assert len(waits) == 3


def test_proxy_option(werkzeug: WerkzeugServer, no_proxy_env: None) -> None:
    with ForwardProxy(credentials=("me", "pw")) as proxy:
        result = post(werkzeug.url + "via", "-F", "a=1", "-x", proxy.url)
        assert result.returncode == 0, result.stderr
        assert proxy.seen == [("POST", werkzeug.url + "via")]
        assert proxy.refused == 0
    assert json.loads(result.stdout)["fields"] == [["a", "1"]]
    bad = post(werkzeug.url, "-F", "a=1", "-x", "socks5://127.0.0.1:1")
    assert bad.returncode == 2
    assert b"only http:// proxies" in bad.stderr


def test_post_limit_rate(werkzeug: WerkzeugServer, tmp_path: Path) -> None:
    (path,) = make_files(tmp_path / "src", 1, low=300 << 10, high=300 << 10, seed=2)
    started = time.monotonic()
    result = post(werkzeug.url, "-F", f"f=@{path}", "--limit-rate", "200K")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    (_, _, _, size, digest) = json.loads(result.stdout)["files"][0]
    assert size == 300 << 10
    assert digest == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert 1.3 <= elapsed < 10  # 300 KiB at 200 KiB/s, plus the interpreter's start


def test_ship_limit_rate_caps_the_whole_run(tmp_path: Path) -> None:
    expected = make_files(tmp_path / "src", 8, low=64 << 10, high=64 << 10, seed=3)
    with UploadServer("127.0.0.1", 0) as server:
        from poster_rs import ship

        started = time.monotonic()
        results = ship(sorted(expected), server.url, workers=4, limit_rate=256 << 10,
                       progress=False, timeout=20)  # fmt: skip
        elapsed = time.monotonic() - started
        assert all(r.ok for r in results)
        assert_exactly_once(server.received, expected)
    # 512 KiB of files (plus framing) at 256 KiB/s for the four workers together.
    assert 1.8 <= elapsed < 6


def test_ship_cli_limit_rate(tmp_path: Path) -> None:
    make_files(tmp_path / "src", 4, low=50 << 10, high=50 << 10, seed=4)
    with UploadServer("127.0.0.1", 0) as server:
        started = time.monotonic()
        result = subprocess.run(
            [*CLI, "ship", server.url, str(tmp_path / "src"), "--limit-rate", "100K"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        assert server.received_count == 4
    assert result.returncode == 0, result.stderr
    assert elapsed >= 1.8  # 200 KiB at 100 KiB/s
