"""A discard HTTP/1.1 server for the upload benchmarks, run in its own process.

``python -m benches.server`` binds 127.0.0.1 on an ephemeral port and prints ``PORT <n>``.
Each connection gets a thread that parses request heads and reads the body (Content-Length or
chunked) with ``recv_into`` into one reused 4 MiB buffer, then answers 200 with a small JSON
body: ``{"received": n}``; for a path starting with ``/verify`` the body is also parsed as
multipart/form-data and the reply carries its parts' summary (see ``verify.summary``).
``Expect: 100-continue`` is answered at once. The server exits when its parent dies, on
SIGTERM, or after ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

BUFSIZE = 4 << 20
HEAD_LIMIT = 1 << 16


class _ClosedError(Exception):
    pass


class Conn:
    """Buffered reads off one socket: lines for heads and chunk sizes, bulk for bodies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(BUFSIZE)
        self.view = memoryview(self.buf)
        self.pending = bytearray()

    def _fill(self) -> None:
        n = self.sock.recv_into(self.view, 1 << 16)
        if not n:
            raise _ClosedError
        self.pending += self.view[:n]

    def read_until(self, marker: bytes, limit: int = HEAD_LIMIT) -> bytes | None:
        """Bytes up to and including ``marker``; ``None`` on a clean close before any byte."""
        start = 0
        while True:
            idx = self.pending.find(marker, start)
            if idx >= 0:
                end = idx + len(marker)
                out = bytes(self.pending[:end])
                del self.pending[:end]
                return out
            if len(self.pending) > limit:
                raise ValueError("request head too long")
            start = max(0, len(self.pending) - len(marker) + 1)
            try:
                self._fill()
            except _ClosedError:
                if not self.pending:
                    return None
                raise

    def consume(self, n: int, sink: Any) -> int:
        """Reads exactly ``n`` body bytes, passing them to ``sink`` if given."""
        left = n
        if self.pending:
            take = min(left, len(self.pending))
            if sink is not None:
                sink.feed(bytes(self.pending[:take]))
            del self.pending[:take]
            left -= take
        view, recv_into = self.view, self.sock.recv_into
        while left:
            got = recv_into(view, min(left, BUFSIZE))
            if not got:
                raise _ClosedError
            if sink is not None:
                sink.feed(view[:got])
            left -= got
        return n


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return method, target, version, headers


def _reply(sock: socket.socket, status: str, body: dict[str, Any], close: bool) -> None:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    ).encode()
    sock.sendall(head + data)


def handle(sock: socket.socket) -> None:
    sock.settimeout(300)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Conn(sock)
    try:
        while True:
            head = conn.read_until(b"\r\n\r\n")
            if head is None:
                return
            method, target, version, headers = _parse_head(head)
            close = version == "HTTP/1.0" or "close" in headers.get("connection", "").lower()
            if headers.get("expect", "").lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            sink = None
            if target.startswith("/verify"):
                from .verify import Summarizer, boundary_of

                try:
                    sink = Summarizer(boundary_of(headers.get("content-type", "")))
                except ValueError as exc:
                    _reply(sock, "400 Bad Request", {"error": str(exc)}, True)
                    return
            received = 0
            if "chunked" in headers.get("transfer-encoding", "").lower():
                while True:
                    line = conn.read_until(b"\r\n")
                    if line is None:
                        raise _ClosedError
                    size = int(line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while conn.read_until(b"\r\n") not in (b"\r\n", None):
                            pass  # trailers
                        break
                    received += conn.consume(size, sink)
                    if conn.read_until(b"\r\n") != b"\r\n":
                        raise ValueError("bad chunk terminator")
            elif "content-length" in headers:
                received = conn.consume(int(headers["content-length"]), sink)
            reply: dict[str, Any] = {
                "received": received,
                "method": method,
                "content_length": headers.get("content-length"),
                "chunked": "chunked" in headers.get("transfer-encoding", "").lower(),
            }
            if sink is not None:
                from .verify import summary

                try:
                    reply.update(summary(sink.finish(), received))
                except Exception as exc:  # report parse failures to the client
                    reply["error"] = f"{type(exc).__name__}: {exc}"
            _reply(sock, "200 OK", reply, close)
            if close:
                return
    except (_ClosedError, ConnectionError, TimeoutError):
        return
    except Exception as exc:
        with contextlib.suppress(OSError):
            _reply(sock, "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"}, True)
    finally:
        sock.close()


def _watchdog(parent: int, deadline: float) -> None:
    while True:
        time.sleep(1)
        if os.getppid() != parent or time.monotonic() > deadline:
            os._exit(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lifetime", type=float, default=4 * 3600)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    threading.Thread(
        target=_watchdog,
        args=(os.getppid(), time.monotonic() + args.lifetime),
        daemon=True,
    ).start()
    sys.stdout.write(f"PORT {listener.getsockname()[1]}\n")
    sys.stdout.flush()
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=handle, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
