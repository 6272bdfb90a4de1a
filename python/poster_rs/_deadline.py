"""An overall deadline for one upload attempt (curl's ``--max-time``).

A socket timeout bounds each wait, not the attempt: a server that drips a byte a second never
trips it. ``Deadline`` makes connections whose sockets it shuts down when the time is up, which
wakes whatever send or receive is blocked on them; the caller then sees an error (or a short
read) and checks ``expired``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from typing import Any, TypeVar

__all__ = ["Deadline"]

_Connection = TypeVar("_Connection", bound=http.client.HTTPConnection)


class Deadline:
    """``seconds`` from when it is entered (``with deadline:``) until every connection made by
    its ``connection_class`` is cut off. Connections started after that fail at once with
    ``TimeoutError``; each connection's socket timeout is capped to the time left."""

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"a deadline must be a positive number of seconds, not {seconds!r}")
        self.seconds = seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._ends_at: float | None = None
        self._timer: threading.Timer | None = None
        self._classes: dict[type[Any], type[Any]] = {}

    @property
    def expired(self) -> bool:
        """Whether the time ran out (the attempt's result, if any, must not be trusted); also
        true past the deadline before the timer has cut anything."""
        ends_at = self._ends_at
        return self._expired or (ends_at is not None and time.monotonic() >= ends_at)

    def __enter__(self) -> Deadline:
        self._ends_at = time.monotonic() + self.seconds
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        with self._lock:
            self._sockets.clear()

    def remaining(self) -> float:
        """Seconds left (the whole span before the deadline is entered; never negative)."""
        if self._ends_at is None:
            return self.seconds
        return max(self._ends_at - time.monotonic(), 0.0)

    def _cap(self, timeout: Any) -> float:
        left = self.remaining()
        return left if not isinstance(timeout, (int, float)) else min(float(timeout), left)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _cut(sock)
            self._sockets.clear()

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._expired:
                _cut(sock)
                raise TimeoutError(f"the {self.seconds:g} s deadline passed while connecting")
            self._sockets.append(sock)

    def connection_class(self, base: type[_Connection]) -> type[_Connection]:
        """A subclass of ``base`` (``http.client.HTTPConnection`` or one of its subclasses)
        whose connections this deadline cuts off."""
        made = self._classes.get(base)
        if made is None:
            made = _deadlined(base, self)
            self._classes[base] = made
        return made


def _cut(sock: socket.socket) -> None:
    """Shuts ``sock`` down both ways. The plain socket's shutdown, also for an ``SSLSocket``:
    its own ``shutdown`` drops the TLS state under a thread that may be reading it."""
    with contextlib.suppress(OSError):  # already closed: nothing to cut
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _deadlined(base: type[_Connection], deadline: Deadline) -> type[_Connection]:
    connection_base: Any = base  # a class made at run time: mypy cannot check it as a base

    # A base only known at run time: mypy refuses it as a base class (misc).
    class DeadlinedConnection(connection_base):  # type: ignore[misc]
        timeout: Any
        sock: Any

        def connect(self) -> None:
            if deadline.expired:
                raise TimeoutError(f"the {deadline.seconds:g} s deadline passed")
            # Bounds the TCP connect and the TLS handshake too, which come before `_watch`.
            self.timeout = deadline._cap(self.timeout)
            super().connect()
            deadline._watch(self.sock)

    DeadlinedConnection.__name__ = DeadlinedConnection.__qualname__ = f"Deadlined{base.__name__}"
    made: type[_Connection] = DeadlinedConnection
    return made
