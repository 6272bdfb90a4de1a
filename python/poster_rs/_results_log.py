"""The results log of shipping jobs: one JSON line per finished job, read back on resume.

Lines are ASCII-only JSON (non-ASCII text as ``\\u`` escapes), so a kill can cut a line but never
split a character; a line that does not parse, or whose fields are not what a finished job writes,
is ignored. The log is locked (``flock``) for as long as a run holds it open, so two runs sharing
a log cannot both upload the same files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import weakref
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = [
    "DEFAULT_SYNC_INTERVAL",
    "DEFAULT_SYNC_LINES",
    "ResultsLog",
    "is_done",
    "iter_entries",
    "read_done",
]

#: Group commit: the log is fsynced at most this often (seconds) ...
DEFAULT_SYNC_INTERVAL = 0.2
#: ... or once this many lines wait, and always when it is closed.
DEFAULT_SYNC_LINES = 1000


def is_done(entry: object) -> bool:
    """Whether a log entry records a job the server acknowledged: a JSON object with a string
    ``key``, ``ok`` exactly ``true`` and, when present, a 2xx integer ``status``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        return False
    if entry.get("ok") is not True:
        return False
    status = entry.get("status")
    if status is None:
        return "status" not in entry
    return type(status) is int and 200 <= status < 300


def _entries(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            # bytes, not text: a log written by an older version (UTF-8, not ASCII-only) and
            # cut inside a character must not stop the read.
            entry = json.loads(line)
        except ValueError:  # UnicodeDecodeError included
            continue
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            yield entry


def iter_entries(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every well-formed entry of the log at ``path``, in order (none if it does not exist)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; a missing log is empty
    except FileNotFoundError:
        return
    with f:
        yield from _entries(iter(f))


def _done_from(entries: Iterator[dict[str, Any]]) -> set[str]:
    done: set[str] = set()
    for entry in entries:
        # The last entry of a key decides, as for read_log(): a later failure undoes a success.
        if is_done(entry):
            done.add(entry["key"])
        else:
            done.discard(entry["key"])
    return done


def read_done(path: str | os.PathLike[str]) -> set[str]:
    """The keys of the jobs the log at ``path`` records as done. Only that set is held in memory,
    whatever the size of the log."""
    return _done_from(iter_entries(path))


#: Logs open in this process, for the fork hook below.
_open_logs: weakref.WeakSet[ResultsLog] = weakref.WeakSet()


def _release_in_child() -> None:
    """A forked child (a process-pool worker started during a run) shares the log's open file
    description, and with it the lock, which would outlive the run for as long as the worker
    lives. The child points the descriptor at /dev/null instead: the lock stays the parent's
    alone, and the child's file object stays valid (it never writes the log)."""
    for log in list(_open_logs):
        if log.file.closed:
            continue
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, log.file.fileno())
        finally:
            os.close(null)


os.register_at_fork(after_in_child=_release_in_child)


class ResultsLog:
    """An open results log, locked against other runs until ``close()``; raises
    ``BlockingIOError`` (with the path) if another run holds it.

    Group commit: ``write`` hands each line to the operating system at once (a killed process
    loses nothing written), and the disk is synced when ``sync_lines`` lines wait or
    ``sync_interval`` seconds have passed since the last sync (checked by ``write`` and
    ``tick``), and on ``close``. A power loss can so forget at most that window: an fsync per
    line would cost more than a small upload.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync_interval: float = DEFAULT_SYNC_INTERVAL,
        sync_lines: int = DEFAULT_SYNC_LINES,
    ) -> None:
        self.path = os.fspath(path)
        self.sync_interval = sync_interval
        self.sync_lines = max(sync_lines, 1)
        self.unsynced = 0
        self.synced_at = time.monotonic()
        self.file: BinaryIO = open(self.path, "a+b")  # noqa: SIM115 - closed in close()
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise BlockingIOError(
                errno.EWOULDBLOCK,
                "the results log is in use by another run (it is locked); wait for that run "
                "to end, or give this one another log",
                self.path,
            ) from None
        except BaseException:
            self.file.close()
            raise
        _open_logs.add(self)
        if self.file.tell() > 0:
            # A run killed mid-write leaves a cut line: end it, so the next entry is whole.
            self.file.seek(-1, os.SEEK_END)
            if self.file.read(1) != b"\n":
                self.file.write(b"\n")
                self.sync()

    def done_keys(self) -> set[str]:
        """The keys this log records as done (read through the locked descriptor)."""
        self.file.flush()
        self.file.seek(0)
        try:
            return _done_from(_entries(iter(self.file)))
        finally:
            self.file.seek(0, os.SEEK_END)

    def write(self, line: str) -> None:
        """Appends one entry (an ASCII JSON text without newline)."""
        self.file.write(line.encode("ascii") + b"\n")
        self.file.flush()
        self.unsynced += 1
        self.tick()

    def tick(self) -> None:
        """Syncs if lines have waited long enough, or enough lines wait."""
        if self.unsynced and (
            self.unsynced >= self.sync_lines
            or time.monotonic() - self.synced_at >= self.sync_interval
        ):
            self.sync()

    def sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.unsynced = 0
        self.synced_at = time.monotonic()

    def close(self) -> None:
        if self.file.closed:
            return
        try:
            self.sync()
        finally:
            self.file.close()  # releases the lock
