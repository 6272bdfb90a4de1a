"""A watchdog for blocking socket work: after ``seconds``, a callback runs on one shared timer
thread (it shuts the attempt's socket down, which wakes whatever send or recv is blocked on it).

A socket timeout bounds each operation, not the whole; a server that drips a byte a second
never trips one. One thread and a heap serve every worker of the process, so an attempt costs a
heap push and a cancel, not a thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable

__all__ = ["Alarm", "schedule"]


class Alarm:
    """A scheduled callback. ``expired`` is true once it has run; ``cancel()`` stops it (and
    waits for it if it is running, so nothing fires after ``cancel`` returns)."""

    __slots__ = ("_callback", "_lock", "cancelled", "expired", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self._callback = callback
        self._lock = threading.Lock()
        self.cancelled = False
        self.expired = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True

    def _fire(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.expired = True
            with contextlib.suppress(OSError):  # a socket already closed needs no waking
                self._callback()


class _Timer:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.heap: list[tuple[float, int, Alarm]] = []
        self.order = itertools.count()
        self.thread = threading.Thread(target=self._run, name="poster-rs-watchdog", daemon=True)
        self.thread.start()

    def add(self, alarm: Alarm) -> None:
        with self.cond:
            heap = self.heap
            if len(heap) > 256 and sum(d.cancelled for _, _, d in heap) * 2 > len(heap):
                # Most attempts end long before their alarm: drop their entries now and then.
                heap[:] = [item for item in heap if not item[2].cancelled]
                heapq.heapify(heap)
            heapq.heappush(heap, (alarm.when, next(self.order), alarm))
            if heap[0][2] is alarm:
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while True:
                    while self.heap and self.heap[0][2].cancelled:
                        heapq.heappop(self.heap)
                    if not self.heap:
                        self.cond.wait()
                        continue
                    wait = self.heap[0][0] - time.monotonic()
                    if wait <= 0:
                        alarm = heapq.heappop(self.heap)[2]
                        break
                    self.cond.wait(wait)
            alarm._fire()


_timer: _Timer | None = None
_timer_lock = threading.Lock()


def _forget_in_child() -> None:
    """A forked child has no timer thread, and the lock may have been held by a thread that
    does not exist there: start afresh."""
    global _timer, _timer_lock
    _timer = None
    _timer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def schedule(seconds: float, callback: Callable[[], object]) -> Alarm:
    """Runs ``callback`` in ``seconds`` unless the returned ``Alarm`` is cancelled first."""
    global _timer
    with _timer_lock:
        if _timer is None:
            _timer = _Timer()
        timer = _timer
    alarm = Alarm(time.monotonic() + seconds, callback)
    timer.add(alarm)
    return alarm
