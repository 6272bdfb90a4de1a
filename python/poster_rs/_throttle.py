"""Bandwidth caps (curl's ``--limit-rate``): a rate shared by every thread that sends through
the same ``RateLimiter``, and a body wrapper that paces a stream's chunks through one.

Pacing is by virtual time: each slice of bytes books ``len / rate`` seconds after the previous
booking, and its sender sleeps until its slot. Slices are small (a tenth of a second's worth,
at most 64 KiB), so the rate holds over short spans too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["RateLimiter", "ThrottledBody", "shared_limiter"]

_MAX_SLICE = 64 << 10


class RateLimiter:
    """``rate`` bytes per second across all its users."""

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"a rate limit must be a positive number of bytes/s, not {rate!r}")
        self.rate = float(rate)
        self.slice = max(1, min(_MAX_SLICE, int(self.rate / 10)))
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, size: int) -> None:
        """Waits until ``size`` more bytes may go out."""
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + size / self.rate
        if start > now:
            time.sleep(start - now)


_limiters: dict[float, RateLimiter] = {}
_limiters_lock = threading.Lock()


def _forget_in_child() -> None:
    """A forked child paces its own sends (its locks may have been held by parent threads)."""
    global _limiters_lock
    _limiters.clear()
    _limiters_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def shared_limiter(rate: float) -> RateLimiter:
    """The process's limiter for ``rate``: the worker threads of one run share it (a process
    pool or a Dask worker has its own, so the cap applies per process there)."""
    with _limiters_lock:
        limiter = _limiters.get(rate)
        if limiter is None:
            limiter = _limiters[rate] = RateLimiter(rate)
        return limiter


class ThrottledBody:
    """Iterates ``stream`` in slices paced by ``limiter``; length, position, rewinding and the
    content type are the stream's, so clients size, rewind and label it as before."""

    def __init__(self, stream: Any, limiter: RateLimiter) -> None:
        self.stream = stream
        self.limiter = limiter

    def __iter__(self) -> Iterator[memoryview]:
        step = self.limiter.slice
        for chunk in self.stream:
            view = memoryview(chunk)
            for start in range(0, len(view), step):
                piece = view[start : start + step]
                self.limiter.take(len(piece))
                yield piece

    def __len__(self) -> int:
        return len(self.stream)

    def __getattr__(self, name: str) -> Any:
        # total, current, tell, seek, reset, close, content_type, part_starts: the stream's.
        return getattr(self.stream, name)
