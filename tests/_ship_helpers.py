"""Helpers shared by the shipping tests: bounded calls, files on disk, checks of what arrived."""

from __future__ import annotations

import collections
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The test server: poster-rs serve with a log of what it received (dummyserver/).
from dummyserver import RecordingUploadServer as UploadServer


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bounded(fn: Callable[..., Any], *args: Any, limit: float = 60.0, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a daemon thread; fails the test if it takes over ``limit`` s."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {limit} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def make_files(
    directory: Path, count: int, low: int = 1024, high: int = 4096, seed: int = 6, ext: str = "bin"
) -> dict[str, str]:
    """``count`` files of random size and content; returns ``{absolute path: sha256}``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = {}
    for i in range(count):
        data = rng.randbytes(rng.randint(low, high))
        path = directory / f"f{i:05d}.{ext}"
        path.write_bytes(data)
        out[str(path)] = sha256(data)
    return out


def file_parts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file parts of the server's successful records."""
    return [p for r in records for p in r["parts"] if p["filename"] is not None]


def assert_exactly_once(records: list[dict[str, Any]], expected: dict[str, str]) -> None:
    """Every expected file is in the server's records exactly once, with its SHA-256."""
    by_name = {os.path.basename(p): digest for p, digest in expected.items()}
    parts = file_parts(records)
    counts = collections.Counter(p["filename"] for p in parts)
    twice = sorted(n for n, c in counts.items() if c > 1)
    missing = sorted(set(by_name) - set(counts))
    extra = sorted(set(counts) - set(by_name))
    assert not twice, f"{len(twice)} files received more than once, e.g. {twice[:5]}"
    assert not missing, f"{len(missing)} files never received, e.g. {missing[:5]}"
    assert not extra, f"unexpected files received: {extra[:5]}"
    bad = [p["filename"] for p in parts if p["sha256"] != by_name[p["filename"]]]
    assert not bad, f"{len(bad)} files arrived corrupted, e.g. {bad[:5]}"


class SlowUploadServer(UploadServer):
    """An UploadServer that takes ``delay`` seconds per request, so a job can be killed
    half-way."""

    delay = 0.01

    def record(self, path: str, parts: list[dict[str, Any]], size: int) -> None:
        time.sleep(self.delay)
        super().record(path, parts, size)


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def wait_quiet(server: UploadServer, quiet: float = 0.3, limit: float = 10.0) -> None:
    """Waits (bounded) until the server has recorded nothing new for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    count, since = server.received_count, time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the server did not settle"
        time.sleep(0.02)
        if server.received_count != count:
            count, since = server.received_count, time.monotonic()
