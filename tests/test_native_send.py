"""``MultipartStream.send_to``: the body sent from Rust with the GIL released, against real
sockets on 127.0.0.1 (issue 9): exact bytes, chunked framing, progress, an early answer, a
reset mid-body, a file that shrinks, the socket timeout and a deadline, and other Python
threads running meanwhile. Every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import poster_rs
import pytest

MiB = 1 << 20


@contextlib.contextmanager
def peer(serve: Callable[[socket.socket], Any]) -> Iterator[tuple[socket.socket, list[Any]]]:
    """A connected TCP pair on 127.0.0.1; ``serve(conn)`` runs on the far end in a thread and
    its result lands in the returned list."""
    listener = socket.create_server(("127.0.0.1", 0))
    result: list[Any] = []

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(20)
            result.append(serve(conn))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    client = socket.create_connection(listener.getsockname(), timeout=20)
    try:
        yield client, result
    finally:
        client.close()
        thread.join(timeout=20)
        listener.close()
        assert not thread.is_alive(), "the peer thread did not finish"


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while block := conn.recv(MiB):
        chunks.append(block)
    return b"".join(chunks)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(3 * MiB + 4321))
    return path


def params(path: Path) -> list[Any]:
    return [("title", "native"), ("blob", b"\x00" * 70_000), ("file", path)]


# A body of at least four buffers of files and bytes is read on a second thread while the
# previous buffer goes out: 64 KiB buffers make this 3 MiB body one.
@pytest.mark.parametrize(
    ("use_sendfile", "buffer_size"),
    [(False, 2 * MiB), (False, 64 * 1024), (True, 2 * MiB)],
    ids=["send", "send-read-ahead", "sendfile"],
)
def test_the_bytes_that_arrive_are_exactly_the_body(
    data_file: Path, use_sendfile: bool, buffer_size: int
) -> None:
    expected = b"".join(poster_rs.multipart_encode(params(data_file), boundary="b0und")[0])
    stream, _ = poster_rs.multipart_encode(params(data_file), boundary="b0und")
    with peer(read_all) as (client, got):
        done, said = stream.send_to(client, use_sendfile=use_sendfile, buffer_size=buffer_size)
        client.shutdown(socket.SHUT_WR)
    assert (done, said) == (True, b"")
    assert got[0] == expected
    assert stream.tell() == len(stream)
    # Iterated again afterwards, it starts over (as after a finished iteration).
    assert b"".join(stream) == expected


def test_a_body_of_unknown_length_goes_out_chunked() -> None:
    data = os.urandom(2 * MiB + 5)
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)), daemon=True)
    writer.start()
    with os.fdopen(r, "rb") as pipe:
        stream, headers = poster_rs.multipart_encode(
            [("a", "b"), ("pipe", pipe)], boundary="chunky"
        )
        assert "Content-Length" not in headers
        with peer(read_all) as (client, got):
            done, _ = stream.send_to(client)
            client.shutdown(socket.SHUT_WR)
    writer.join(timeout=10)
    assert done
    raw, body = got[0], b""
    while True:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert raw == b"\r\n"
            break
        body, raw = body + raw[:size], raw[size + 2 :]
    assert data in body
    assert body.endswith(b"\r\n--chunky--\r\n")


def test_progress_is_reported_while_sending(data_file: Path) -> None:
    calls: list[tuple[int, int]] = []
    stream, _ = poster_rs.multipart_encode(
        params(data_file), cb=lambda param, current, total: calls.append((current, total))
    )
    with peer(read_all) as (client, _):
        assert stream.send_to(client)[0]
        client.shutdown(socket.SHUT_WR)
    currents = [c for c, _ in calls]
    assert len(calls) >= 3
    assert currents == sorted(currents)
    assert currents[-1] == len(stream)


def test_other_threads_run_while_the_body_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(128 * MiB)
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    def slow_reader(conn: socket.socket) -> int:
        # Each recv needs the GIL back from the ticker (up to a 5 ms switch interval), so
        # the upload takes a while, and the ticker has the GIL whenever the reader waits.
        total = 0
        while block := conn.recv(MiB):
            total += len(block)
        return total

    stream, _ = poster_rs.multipart_encode([("f", path)])
    ticker = threading.Thread(target=tick, daemon=True)
    with peer(slow_reader) as (client, got):
        ticker.start()
        started = time.monotonic()
        assert stream.send_to(client)[0]
        sending = time.monotonic() - started
        before = ticks
        client.shutdown(socket.SHUT_WR)
    stop.set()
    ticker.join(timeout=10)
    assert got[0] == len(stream)
    # The ticker ran all the while: with the GIL held it would barely have moved.
    assert sending > 0.05
    assert before > 10_000, (before, sending)


def test_an_early_answer_stops_the_upload(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(256 * MiB)
    answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"

    def refuse(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + answer)
        time.sleep(1.5)  # stops reading but keeps the connection open

    stream, _ = poster_rs.multipart_encode([("f", path)])
    with peer(refuse) as (client, _):
        started = time.monotonic()
        done, said = stream.send_to(client)
        took = time.monotonic() - started
    assert (done, said) == (False, answer)
    assert took < 1.5
    assert stream.tell() < len(stream)


def test_a_reset_mid_body_raises_a_connection_error(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(256 * MiB)

    def reset(conn: socket.socket) -> None:
        conn.recv(MiB)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    stream, _ = poster_rs.multipart_encode([("f", path)])
    with peer(reset) as (client, _):
        try:
            done, said = stream.send_to(client)
        except (ConnectionResetError, BrokenPipeError):
            pass
        else:  # the close was seen before the reset: an answer of nothing
            assert (done, said) == (False, b"")


def test_a_file_that_shrinks_mid_upload_raises_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "shrinking.bin"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)

    def shrink(conn: socket.socket) -> None:
        got = 0
        while got < MiB:
            got += len(conn.recv(MiB))
        os.truncate(path, 32 * MiB)
        with contextlib.suppress(OSError):
            read_all(conn)

    stream, _ = poster_rs.multipart_encode([("f", path)])
    with peer(shrink) as (client, _), pytest.raises(poster_rs.FileChangedError, match="size"):
        stream.send_to(client)


def test_the_socket_timeout_bounds_each_wait_and_a_deadline_the_whole_send(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(256 * MiB)
    release = threading.Event()
    stream, _ = poster_rs.multipart_encode([("f", path)])
    with peer(lambda conn: release.wait(20)) as (client, _):
        client.settimeout(0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="timed out"):
            stream.send_to(client)
        assert time.monotonic() - started < 5
        release.set()

    def trickle(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(16384):
                time.sleep(0.02)

    stream.reset()
    with peer(trickle) as (client, _):
        client.settimeout(5)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            stream.send_to(client, deadline=time.monotonic() + 0.5)
        took = time.monotonic() - started
        client.close()
    assert 0.4 < took < 4


def test_bad_arguments_and_closed_streams_are_refused(data_file: Path) -> None:
    stream, _ = poster_rs.multipart_encode(params(data_file))
    with pytest.raises(ValueError, match="file descriptor"):
        stream.send_to(-1)
    with pytest.raises(ValueError, match="buffer_size"):
        stream.send_to(0, buffer_size=0)
    stream.close()
    with socket.socket() as sock, pytest.raises(ValueError, match="closed"):
        stream.send_to(sock)
