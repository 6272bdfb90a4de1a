"""A server's final answer that arrives while the body is still going out (a 413, a 401, a
redirect): noticing it, and letting ``http.client`` parse the bytes already taken off the
socket."""

from __future__ import annotations

import io
import socket
from typing import Any

from .._poster_rs import strip_interim
from .wait import recv_nowait, wait_for


def server_answered(sock: Any, so_far: bytes) -> tuple[bytes, bool]:
    """Checks, without waiting, whether the server has begun its final answer (or closed).
    Returns what it has sent so far, minus interim ``1xx`` responses, and whether that is a
    final answer. TLS records without data do not count."""
    if sock is None:
        return so_far, True
    pending = getattr(sock, "pending", None)
    if not (pending is not None and pending()) and not wait_for(sock, 0, write=False)[0]:
        return so_far, False
    data = recv_nowait(sock)
    if data is None:
        return so_far, False
    if not data:
        return so_far, True
    return strip_interim(so_far + data)


class _PrefixedReader(io.RawIOBase):
    """Bytes already taken off a socket, then the socket."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        super().__init__()
        self._prefix = prefix
        # A socket file keeps the descriptor open after the socket object is closed (urllib
        # closes it right after getresponse(), before the response body is read).
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(view) or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class PrefixedSocket:
    """A socket stand-in whose ``makefile`` starts with bytes already read, so that
    ``http.client`` parses a response whose first bytes arrived while the body went out."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        self._sock = sock
        self._prefix = prefix

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_PrefixedReader(self._prefix, self._sock))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
