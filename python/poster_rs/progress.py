"""Upload progress in bytes, for ``multipart_encode(params, cb=...)`` and for shipping jobs.

A ``cb(param, current, total)`` is called as the body streams: ``current`` bytes of ``total``
have been produced for sending (``total`` is ``None`` for a body of unknown length), and the
last call has ``param=None``. The adapters here turn those calls into a progress bar::

    from poster_rs import multipart_encode
    from poster_rs.progress import tqdm_callback

    stream, headers = multipart_encode({"file": pathlib.Path("big.iso")}, cb=tqdm_callback())
    requests.post(url, data=stream, headers=headers)

``tqdm_callback`` needs tqdm (``pip install 'poster-rs[cli]'`` or ``pip install tqdm``) and
``rich_callback`` needs rich; each is imported only when its adapter is called, so the library
itself keeps no runtime dependency. ``ByteCounter`` adds up the bytes of many bodies sent at
once (thread-safe), which is how ``ship`` moves its bar.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ByteCounter", "Callback", "rich_callback", "tqdm_callback"]

#: poster's progress callback: ``cb(param, current, total)``.
Callback = Callable[[Any, int, "int | None"], object]


class _Deltas:
    """A cb that reports each call's progress as a difference from the previous one (a body
    rewound for a retry or a redirect moves it back) and the body's total when it changes."""

    def __init__(
        self, advance: Callable[[int], object], on_total: Callable[[int], object] | None = None
    ) -> None:
        self.advance = advance
        self.on_total = on_total
        self.current = 0
        self.total: int | None = None

    def __call__(self, param: Any, current: int, total: int | None) -> None:
        if total is not None and total != self.total:
            self.total = total
            if self.on_total is not None:
                self.on_total(total)
        delta = current - self.current
        self.current = current
        if delta:
            self.advance(delta)

    def rewind(self) -> None:
        """Takes back what this body reported (it will be sent again, or never)."""
        if self.current:
            self.advance(-self.current)
            self.current = 0


def tqdm_callback(bar: Any = None, **tqdm_options: Any) -> Callback:
    """A ``cb`` that moves a tqdm bar in bytes, with rate and ETA.

    ``bar``: a ``tqdm`` to move (its total is set from the body's length); by default one is
    made with ``tqdm_options`` (``unit="B"``, ``unit_scale=True``, ``unit_divisor=1024`` unless
    given) and closed at the last call.
    """
    own = bar is None
    if own:
        tqdm = importlib.import_module("tqdm").tqdm
        tqdm_options.setdefault("unit", "B")
        tqdm_options.setdefault("unit_scale", True)
        tqdm_options.setdefault("unit_divisor", 1024)
        bar = tqdm(**tqdm_options)

    def set_total(total: int) -> None:
        bar.total = total
        bar.refresh()

    moved = _Deltas(bar.update, set_total)

    def cb(param: Any, current: int, total: int | None) -> None:
        moved(param, current, total)
        if param is None and own and (total is None or current >= total):
            bar.close()

    return cb


def rich_callback(
    progress: Any = None, *, description: str = "upload", task: Any = None
) -> Callback:
    """A ``cb`` that moves a task of a ``rich.progress.Progress`` in bytes.

    ``progress``: a started ``Progress`` (its columns are yours); by default one is made with
    a bar, bytes, rate and time left, started now and stopped at the last call. ``task``: an
    existing task id to move, else one is added with ``description``.
    """
    own = progress is None
    if own:
        rp = importlib.import_module("rich.progress")
        progress = rp.Progress(
            rp.TextColumn("{task.description}"),
            rp.BarColumn(),
            rp.DownloadColumn(binary_units=True),
            rp.TransferSpeedColumn(),
            rp.TimeRemainingColumn(),
        )
        progress.start()
    if task is None:
        task = progress.add_task(description, total=None)

    moved = _Deltas(
        lambda delta: progress.update(task, advance=delta),
        lambda total: progress.update(task, total=total),
    )

    def cb(param: Any, current: int, total: int | None) -> None:
        moved(param, current, total)
        if param is None and own and (total is None or current >= total):
            progress.stop()

    return cb


class ByteCounter:
    """Bytes produced by many bodies at once, from any thread. ``callback()`` gives a fresh
    ``cb`` for one body; ``value`` is the sum so far (a body rewound for a retry takes its
    bytes back)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    @property
    def value(self) -> int:
        return self._value

    def add(self, delta: int) -> None:
        with self._lock:
            self._value += delta

    def callback(self) -> _Deltas:
        """A cb for one body; its ``rewind()`` takes back what that body reported."""
        return _Deltas(self.add)
