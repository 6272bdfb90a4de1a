"""``poster-rs ship`` run for real (issue 6, point 2) against ``poster-rs serve --port 0`` in
another subprocess: the summary line, ``--glob``, ``--field``, ``--name``, ``--retries``, the exit
status, and a second run with the same ``--log`` that skips everything.

Every subprocess has a timeout; the server's stdout is drained by a thread and read with one.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-m", "poster_rs"]
#: ``python -m dummyserver``, run from the repository root (it is not installed).
TEST_SERVER = [
    "env",
    f"PYTHONPATH={Path(__file__).resolve().parent.parent}",
    sys.executable,
    "-m",
    "dummyserver",
]
RUN_TIMEOUT = 60
SUMMARY = re.compile(
    r"^(?P<ok>\d+) ok, (?P<failed>\d+) failed, (?P<skipped>\d+) skipped \(already in the log\); "
    r"(?P<bytes>[\d,]+) bytes in (?P<seconds>[\d.]+) s \((?P<rate>[\d,.]+) MB/s\)$"
)
#: What ``poster-rs serve`` prints for each part it received. Found anywhere in its output, not
#: per line: concurrent requests' lines can run together (see ``Serve.parts_printed``).
PART = re.compile(
    r"'(?P<name>[^']*)': (?:file '(?P<filename>[^']*)'|field), (?P<size>\d+) bytes, "
    r"sha256 (?P<sha256>[0-9a-f]{64})"
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Serve:
    """``poster-rs serve --port 0 --dir DIR [extra...]`` in a subprocess; stdout is drained by a
    thread into ``lines`` (the first one, ``Serving on http://...``, gives the URL)."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        # Injected faults come from the test server (dummyserver/), not from the product.
        server = TEST_SERVER if "--fail-rate" in extra else [*CLI, "serve"]
        self.proc = subprocess.Popen(
            [*server, "--port", "0", "--dir", str(directory), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        try:
            first = self.lines.get(timeout=20)
        except queue.Empty:
            self.stop()
            raise AssertionError("poster-rs serve printed nothing in 20 s") from None
        match = re.match(r"Serving on (http://127\.0\.0\.1:\d+/) ", first)
        if match is None:
            self.stop()
            raise AssertionError(f"unexpected first line: {first!r}")
        self.url = match.group(1)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def printed(self) -> list[str]:
        """The lines printed since the last call."""
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def parts_printed(self, count: int, timeout: float = 10.0) -> list[re.Match[str]]:
        """The parts the server reports next: waits (at most ``timeout`` s) until ``count``
        have been printed, then takes whatever else comes within 0.2 s.

        The server prints one line per part from its request threads, and lines of concurrent
        requests can run together ("...sha256 X'file': file ...\\n\\n"), so parts are found
        in the text as a whole."""
        text = ""
        deadline = time.monotonic() + timeout
        while len(PART.findall(text)) < count and time.monotonic() < deadline:
            try:
                text += self.lines.get(timeout=max(deadline - time.monotonic(), 0.01)) + "\n"
            except queue.Empty:
                break
        time.sleep(0.2)
        text += "\n".join(self.printed())
        return list(PART.finditer(text))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(*extra: str) -> Serve:
        server = Serve(tmp_path / f"store{len(started)}", *extra)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def ship(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "ship", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = result.stdout.splitlines()
    assert lines, f"no output; stderr: {result.stderr!r}"
    match = SUMMARY.match(lines[-1])
    assert match, f"not a summary line: {lines[-1]!r}"
    out: dict[str, Any] = {k: int(match[k]) for k in ("ok", "failed", "skipped")}
    out["bytes"] = int(match["bytes"].replace(",", ""))
    out["seconds"] = float(match["seconds"])
    out["rate"] = float(match["rate"].replace(",", ""))
    return out


def make_tree(root: Path, layout: dict[str, int], seed: int = 1) -> dict[str, str]:
    """Files at the relative paths of ``layout`` (path: size) with random content;
    returns ``{basename: sha256}``."""
    rng = random.Random(seed)
    out = {}
    for rel, size in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        path.write_bytes(data)
        out[path.name] = sha256(data)
    return out


def stored(directory: Path) -> dict[str, str]:
    if not directory.exists():
        return {}
    return {p.name: sha256(p.read_bytes()) for p in directory.iterdir()}


def log_entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_ship_directory_summary_log_and_rerun(tmp_path: Path, serve: Callable[..., Serve]) -> None:
    server = serve()
    layout = {f"src/f{i:03d}.bin": 1000 + 37 * i for i in range(40)}
    layout.update({f"src/nested/deeper/g{i}.dat": 5000 + i for i in range(5)})
    expected = make_tree(tmp_path, layout)
    log = tmp_path / "results.jsonl"
    first = ship(server.url + "upload", str(tmp_path / "src"), "--log", str(log), "-j", "4")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""  # no bar when stderr is not a terminal, no failure
    counts = summary(first)
    assert (counts["ok"], counts["failed"], counts["skipped"]) == (45, 0, 0)
    assert counts["rate"] > 0
    entries = log_entries(log)
    assert len(entries) == 45
    assert all(e["ok"] and e["status"] == 200 and e["attempts"] == 1 for e in entries)
    assert counts["bytes"] == sum(e["bytes"] for e in entries)
    assert counts["bytes"] > sum(layout.values())
    assert stored(server.directory) == expected
    received = server.parts_printed(45)
    assert sorted(m["filename"] for m in received) == sorted(expected)
    assert {m["filename"]: m["sha256"] for m in received} == expected

    # The same command with the same log: everything is skipped, nothing is sent.
    second = ship(server.url + "upload", str(tmp_path / "src"), "--log", str(log), "-j", "4")
    assert second.returncode == 0, second.stderr
    counts = summary(second)
    assert (counts["ok"], counts["failed"], counts["skipped"], counts["bytes"]) == (0, 0, 45, 0)
    assert len(log_entries(log)) == 45
    assert stored(server.directory) == expected
    assert server.parts_printed(0) == []


def test_glob_filters_files(tmp_path: Path, serve: Callable[..., Serve]) -> None:
    server = serve()
    layout = {"src/a.txt": 10, "src/b.bin": 20, "src/sub/c.txt": 30, "src/sub/d.csv": 40}
    layout["loose.txt"] = 50
    layout["loose.bin"] = 60
    expected = make_tree(tmp_path, layout)
    paths = [str(tmp_path / "src"), str(tmp_path / "loose.txt"), str(tmp_path / "loose.bin")]
    result = ship(server.url, *paths, "--glob", "*.txt")
    assert result.returncode == 0, result.stderr
    assert summary(result)["ok"] == 3
    want = {n: d for n, d in expected.items() if n.endswith(".txt")}
    assert stored(server.directory) == want


def test_progress_bar_on_request(tmp_path: Path, serve: Callable[..., Serve]) -> None:
    server = serve()
    make_tree(tmp_path, {f"src/p{i}.bin": 3000 for i in range(7)})
    result = ship(server.url, str(tmp_path / "src"), "--progress")
    assert result.returncode == 0, result.stderr
    assert "ship" in result.stderr
    assert "7/7" in result.stderr
    assert summary(result)["ok"] == 7


def test_fields_and_part_name_arrive_with_every_file(
    tmp_path: Path, serve: Callable[..., Serve]
) -> None:
    server = serve()
    expected = make_tree(tmp_path, {f"src/r{i}.json": 100 + i for i in range(12)})
    log = tmp_path / "log.jsonl"
    result = ship(
        server.url + "batch",
        str(tmp_path / "src"),
        "--field", "tag=nightly",
        "--field", "note=résumé ☃ = yes",
        "--field", "empty=",
        "--name", "upload",
        "-j", "3",
        "--log", str(log),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert summary(result)["ok"] == 12
    entries = log_entries(log)
    assert len(entries) == 12
    for entry in entries:
        reply = json.loads(entry["response"])
        assert reply["path"] == "/batch"
        parts = [(p["name"], p.get("value"), p["filename"]) for p in reply["parts"]]
        filename = entry["path"].rsplit("/", 1)[-1]
        assert parts == [
            ("tag", "nightly", None),
            ("note", "résumé ☃ = yes", None),
            ("empty", "", None),
            ("upload", None, filename),
        ]
        assert reply["parts"][-1]["sha256"] == expected[filename]
    assert stored(server.directory) == expected


def test_exit_status_non_zero_when_some_files_fail_for_good(
    tmp_path: Path, serve: Callable[..., Serve]
) -> None:
    server = serve("--max-body", "4K")
    layout = {f"src/small{i}.bin": 500 for i in range(6)}
    layout.update({f"src/big{i}.bin": 20_000 for i in range(3)})
    expected = make_tree(tmp_path, layout)
    log = tmp_path / "log.jsonl"
    result = ship(server.url, str(tmp_path / "src"), "--log", str(log), "-j", "3")
    assert result.returncode == 22
    counts = summary(result)
    assert (counts["ok"], counts["failed"], counts["skipped"]) == (6, 3, 0)
    failures = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert len(failures) == 3
    assert all("big" in line and "HTTP 413" in line for line in failures)
    assert stored(server.directory) == {n: d for n, d in expected.items() if "small" in n}
    # Not retried: one attempt each. A re-run with the same log tries only the failed ones.
    assert all(e["attempts"] == 1 for e in log_entries(log))
    again = ship(server.url, str(tmp_path / "src"), "--log", str(log), "-j", "3")
    assert again.returncode == 22
    counts = summary(again)
    assert (counts["ok"], counts["failed"], counts["skipped"]) == (0, 3, 6)


def test_retries_against_a_failing_server(tmp_path: Path, serve: Callable[..., Serve]) -> None:
    server = serve("--fail-rate", "0.3", "--fail-seed", "11")
    expected = make_tree(tmp_path, {f"src/x{i:02d}.bin": 2000 + i for i in range(30)})
    log = tmp_path / "log.jsonl"
    result = ship(server.url, str(tmp_path / "src"), "--log", str(log), "-j", "8", "--retries", "8")
    assert result.returncode == 0, result.stderr
    assert summary(result)["ok"] == 30
    entries = log_entries(log)
    assert any(e["attempts"] > 1 for e in entries)
    assert stored(server.directory) == expected


def test_retries_zero_gives_up_at_once(tmp_path: Path, serve: Callable[..., Serve]) -> None:
    server = serve("--fail-rate", "0.5", "--fail-seed", "3")
    make_tree(tmp_path, {f"src/y{i:02d}.bin": 1000 for i in range(20)})
    log = tmp_path / "log.jsonl"
    result = ship(server.url, str(tmp_path / "src"), "--log", str(log), "--retries", "0")
    assert result.returncode == 22
    counts = summary(result)
    assert counts["failed"] > 0
    assert counts["ok"] + counts["failed"] == 20
    entries = log_entries(log)
    assert all(e["attempts"] == 1 for e in entries)
    assert "gave up after 1 attempts" in result.stderr


def test_missing_path_and_nothing_to_ship(tmp_path: Path, serve: Callable[..., Serve]) -> None:
    server = serve()
    make_tree(tmp_path, {"src/a.bin": 10})
    missing = ship(server.url, str(tmp_path / "src"), str(tmp_path / "nope"))
    assert missing.returncode == 26
    assert "no such file or directory" in missing.stderr
    nothing = ship(server.url, str(tmp_path / "src"), "--glob", "*.txt")
    assert nothing.returncode == 2
    assert "no files to upload" in nothing.stderr
    assert stored(server.directory) == {}


def test_connection_refused_fails_with_status(tmp_path: Path) -> None:
    import socket

    make_tree(tmp_path, {"src/a.bin": 10})
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = ship(f"http://127.0.0.1:{port}/", str(tmp_path / "src"), "--retries", "1")
    assert result.returncode == 22
    assert summary(result)["failed"] == 1
    assert "refused" in result.stderr.lower()
