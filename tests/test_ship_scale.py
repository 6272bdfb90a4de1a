"""Shipping at scale (issue 13), against real servers on 127.0.0.1:

- a generator of 1,000,000 paths starts uploading at once and is consumed a window at a time;
- batches: several files per request as repeated parts, per-file results, a failing batch
  retried whole, an unreadable file failing alone, batches by bytes, kill and resume;
- progress in bytes: the public tqdm and rich adapters, the ship bar moving inside a file;
- logging: INFO per request, WARNING per retry, ``-v`` on the CLI;
- the log's group commit: far fewer fsyncs than lines, everything synced at the end.

Every wait is bounded (``bounded``, subprocess timeouts).
"""

from __future__ import annotations

import collections
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _ship_helpers import (
    SlowUploadServer,
    assert_exactly_once,
    bounded,
    count_lines,
    file_parts,
    make_files,
    sha256,
    wait_quiet,
)
from _ship_servers import FlakyServer
from poster_rs import RetryPolicy, UploadJob, multipart_encode, ship, ship_iter
from poster_rs.progress import ByteCounter, rich_callback, tqdm_callback
from poster_rs.ship import read_done, read_log

# The test server: poster-rs serve with a log of what it received (dummyserver/).
from dummyserver import RecordingUploadServer as UploadServer

CLI = [sys.executable, "-m", "poster_rs"]
TIMEOUT = 20.0
FAST_RETRY = RetryPolicy(retries=4, base_delay=0.01, max_delay=0.02)
RESULTS_LOG_MODULE = sys.modules["poster_rs._results_log"]


@pytest.fixture
def upload_server(tmp_path: Path) -> Iterator[UploadServer]:
    with UploadServer("127.0.0.1", 0, tmp_path / "store") as server:
        yield server


# --- streaming jobs ---------------------------------------------------------------------------


def test_million_path_generator_starts_at_once_and_is_read_a_window_at_a_time(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    path = tmp_path / "tiny.txt"
    path.write_bytes(b"tiny\n")
    consumed = 0

    def paths() -> Iterator[str]:
        nonlocal consumed
        for _ in range(1_000_000):
            consumed += 1
            yield str(path)

    workers = 4
    running = ship_iter(paths(), upload_server.url, workers=workers, progress=False)
    try:
        started = time.monotonic()
        first = bounded(next, running)
        assert first.ok
        assert time.monotonic() - started < 5  # not after listing a million jobs
        for _ in range(299):
            assert bounded(next, running).ok
        # 300 results out; the generator was read no further than the window ahead of them.
        assert 300 <= consumed <= 300 + workers * 4 + 1
    finally:
        running.close()
    assert consumed < 400


def test_cli_walks_directories_as_it_goes(tmp_path: Path) -> None:
    """The walk the CLI uploads from yields the first file before it has listed the tree: a
    directory created after the first file came out is still found (a walk done up front
    would have missed it)."""
    from poster_rs.ship import iter_files

    root = tmp_path / "tree"
    for d in range(3):
        make_files(root / f"d{d}", 2, seed=d)
    walk = iter_files([root])
    first = next(walk)
    # Created after the walk began, in a directory it has not listed yet: found all the same.
    make_files(root / "d2" / "late", 2, seed=9)
    rest = list(walk)
    assert Path(first).parent.name == "d0"
    assert sum(Path(p).parent.name == "late" for p in rest) == 2


# --- batches ---------------------------------------------------------------------------------


def test_batches_by_count_carry_repeated_parts_and_per_file_results(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    expected = make_files(tmp_path / "src", 100, seed=100)
    results = bounded(
        ship, sorted(expected), upload_server.url + "b", batch=10, workers=3,
        fields={"tag": "x"}, progress=False, timeout=TIMEOUT,
    )  # fmt: skip
    assert len(results) == 100
    assert all(r.ok and r.status == 200 and r.attempts == 1 for r in results)
    assert sorted(r.path for r in results) == sorted(expected)
    records = upload_server.received
    assert len(records) == 10
    for record in records:
        names = [(p["name"], p["filename"] is None) for p in record["parts"]]
        assert names == [("tag", True)] + [("file", False)] * 10  # fields once, files repeated
    assert_exactly_once(records, expected)
    # Per-file shares add up to the bodies sent.
    assert sum(r.bytes for r in results) == sum(rec["bytes"] for rec in records)
    # Each result carries its batch's response.
    by_file = {os.path.basename(r.path or ""): json.loads(r.response or "") for r in results}
    for name, reply in by_file.items():
        assert name in {p["filename"] for p in reply["parts"]}


def test_batches_by_bytes(tmp_path: Path, upload_server: UploadServer) -> None:
    expected = make_files(tmp_path / "src", 60, low=1000, high=30_000, seed=61)
    big = tmp_path / "src" / "zz_big.bin"
    big.write_bytes(os.urandom(100_000))  # larger than a batch: goes alone
    expected[str(big)] = sha256(big.read_bytes())
    limit = 64_000
    results = bounded(
        ship, sorted(expected), upload_server.url, batch_bytes=limit, workers=2, progress=False
    )
    assert all(r.ok for r in results)
    records = upload_server.received
    assert_exactly_once(records, expected)
    sizes = [sum(p["size"] for p in r["parts"]) for r in records]
    assert all(size <= limit for size, r in zip(sizes, records, strict=True) if len(r["parts"]) > 1)
    assert any(len(r["parts"]) == 1 and r["parts"][0]["size"] == 100_000 for r in records)
    assert len(records) < 40  # about two files per request on average, or more


def test_batch_and_batch_bytes_together(tmp_path: Path, upload_server: UploadServer) -> None:
    expected = make_files(tmp_path / "src", 30, low=100, high=200, seed=30)
    bounded(ship, sorted(expected), upload_server.url, batch=4, batch_bytes=1 << 20,
            workers=1, progress=False)  # fmt: skip
    counts = sorted(len(r["parts"]) for r in upload_server.received)
    assert counts == [2] + [4] * 7


def test_failing_batch_is_retried_whole(tmp_path: Path) -> None:
    expected = make_files(tmp_path / "src", 8, seed=8)
    with FlakyServer(fail=2) as server:
        results = bounded(
            ship, sorted(expected), server.url, batch=8, retry=FAST_RETRY, workers=1,
            progress=False,
        )  # fmt: skip
        sizes = list(server.sizes)
    assert [status for status, _ in sizes] == [503, 503, 200]
    assert len({size for _, size in sizes}) == 1  # every attempt carried the whole batch
    assert all(r.ok and r.attempts == 3 for r in results)
    assert sum(r.bytes for r in results) == sizes[-1][1]


def test_failed_batch_is_not_done_and_resumes(tmp_path: Path) -> None:
    expected = make_files(tmp_path / "src", 6, seed=6)
    log = tmp_path / "log.jsonl"
    policy = RetryPolicy(retries=1, base_delay=0.01, max_delay=0.01)
    with FlakyServer(fail=2) as server:
        first = bounded(ship, sorted(expected), server.url, batch=6, retry=policy, log=log,
                        progress=False)  # fmt: skip
        assert all(not r.ok and r.status == 503 for r in first)
        assert read_done(log) == set()
        assert len(read_log(log)) == 6
        second = bounded(ship, sorted(expected), server.url, batch=6, log=log, progress=False)
        assert all(r.ok and not r.skipped for r in second)
        assert len(read_done(log)) == 6


def test_unreadable_file_of_a_batch_fails_alone(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    expected = make_files(tmp_path / "src", 5, seed=5)
    missing = str(tmp_path / "src" / "missing.bin")
    (tmp_path / "src" / "a dir").mkdir()
    jobs = [*sorted(expected), missing, str(tmp_path / "src" / "a dir")]
    results = bounded(ship, jobs, upload_server.url, batch=10, retries=3, progress=False)
    by_path = {r.path: r for r in results}
    assert not by_path[missing].ok
    assert (by_path[missing].error or "").startswith("FileNotFoundError")
    assert (by_path[str(tmp_path / "src" / "a dir")].error or "").startswith("IsADirectoryError")
    assert all(by_path[p].ok for p in expected)
    assert all(r.attempts == 1 for r in results)
    assert len(upload_server.received) == 1
    assert_exactly_once(upload_server.received, expected)


def test_forms_are_never_batched(tmp_path: Path, upload_server: UploadServer) -> None:
    (path,) = make_files(tmp_path / "src", 1, seed=1)
    jobs: list[Any] = [{"a": "1"}, {"b": "2"}, path, UploadJob(upload_server.url, path, key="k")]
    results = bounded(ship, jobs, upload_server.url, batch=10, progress=False)
    assert all(r.ok for r in results)
    assert len(upload_server.received) == 3  # two forms alone, the two file jobs together


def test_killed_batched_cli_job_resumes_exactly(tmp_path: Path) -> None:
    total = 480
    src = tmp_path / "src"
    expected = make_files(src, total, seed=480)
    log = tmp_path / "results.jsonl"
    slow = SlowUploadServer("127.0.0.1", 0, tmp_path / "store")
    slow.delay = 0.05  # per batch of 8
    with slow as server:
        args = [*CLI, "ship", server.url, str(src), "--log", str(log), "-j", "2", "--batch", "8",
                "--no-progress"]  # fmt: skip
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while count_lines(log) < total // 2:
                if proc.poll() is not None:
                    assert proc.stderr is not None
                    pytest.fail(f"run 1 ended ({proc.returncode}): {proc.stderr.read()!r}")
                if time.monotonic() > deadline:
                    pytest.fail("run 1 did not log half of the files within 60 s")
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            assert proc.stderr is not None
            proc.stderr.close()
        wait_quiet(server)
        run1 = list(server.received)
        done = {e["path"] for e in read_log(log).values() if e["ok"]}
        assert total // 2 <= len(done) < total
        # A batch is logged whole or not at all: the done files are whole batches received.
        received_batches = [{p["filename"] for p in r["parts"]} for r in run1]
        done_names = {os.path.basename(p) for p in done}
        for names in received_batches:
            assert names <= done_names or not names & done_names
        assert done_names <= {p["filename"] for p in file_parts(run1)}

        second = subprocess.run(
            [*CLI, "ship", server.url, str(src), "--log", str(log), "-j", "2", "--batch", "8"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        match = re.match(r"(\d+) ok, (\d+) failed, (\d+) skipped", second.stdout)
        assert match, second.stdout
        ok, failed, skipped = map(int, match.groups())
        assert (ok + skipped, failed, skipped) == (total, 0, len(done))
        run2 = server.received[len(run1) :]
    assert_exactly_once(run2, {p: d for p, d in expected.items() if p not in done})
    assert len(read_done(log)) == total


# --- progress in bytes --------------------------------------------------------------------------


def test_tqdm_callback_counts_body_bytes_and_rewinds(tmp_path: Path) -> None:
    tqdm = pytest.importorskip("tqdm").tqdm
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 << 20))
    out = io.StringIO()
    bar = tqdm(file=out, unit="B", mininterval=0)
    stream, headers = multipart_encode({"f": data, "x": "y"}, cb=tqdm_callback(bar))
    with stream:
        seen = []
        for _ in stream:
            seen.append(bar.n)
            assert bar.n >= sum(1 for _ in seen)  # moving while the body streams
        assert bar.n == bar.total == int(headers["Content-Length"])
        assert len(set(seen)) > 2
        stream.seek(0)  # a retry or a redirect sends it again
        for _ in stream:
            pass
    assert bar.n == bar.total
    bar.close()
    # Made by the adapter, the bar is closed at the end of the body.
    stream, _ = multipart_encode({"f": data}, cb=tqdm_callback(file=io.StringIO()))
    with stream:
        assert sum(len(c) for c in stream) == stream.total


def test_rich_callback_moves_a_task(tmp_path: Path) -> None:
    rich_progress = pytest.importorskip("rich.progress")
    rich_console = pytest.importorskip("rich.console")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(2 << 20))
    console = rich_console.Console(file=io.StringIO())
    with rich_progress.Progress(console=console) as progress:
        task = progress.add_task("up", total=None)
        stream, headers = multipart_encode({"f": data}, cb=rich_callback(progress, task=task))
        with stream:
            for _ in stream:
                pass
        (state,) = progress.tasks
        assert state.completed == state.total == int(headers["Content-Length"])


def test_byte_counter_from_many_threads() -> None:
    counter = ByteCounter()

    def body() -> None:
        cb = counter.callback()
        for current in range(0, 100_001, 1000):
            cb(None, current, 100_000)

    threads = [threading.Thread(target=body) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert counter.value == 800_000
    cb = counter.callback()
    cb(None, 5000, 10_000)
    cb.rewind()
    assert counter.value == 800_000


class _SlowReader(BaseHTTPRequestHandler):
    """Reads bodies 256 KiB at a time, 20 ms apart: a big file takes a while to go out."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        left = int(self.headers["Content-Length"])
        while left:
            data = self.rfile.read(min(left, 256 << 10))
            if not data:
                return
            left -= len(data)
            time.sleep(0.02)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_ship_bar_moves_inside_a_big_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(24 << 20)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowReader)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        (result,) = bounded(ship, [str(path)], url, progress=True, timeout=TIMEOUT, limit=60)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert result.ok
    _, err = capfd.readouterr()
    # Intermediate states of the one file: several byte counts before 100 %.
    counts = set(re.findall(r"\| *([\d.]+)M/24\.0M", err))
    assert len(counts) >= 3, err[-2000:]
    assert "1/1 files" in err


# --- logging ------------------------------------------------------------------------------------


def test_logger_info_per_request_and_warning_per_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (path,) = make_files(tmp_path / "src", 1, seed=1)
    caplog.set_level(logging.INFO, logger="poster_rs")
    with FlakyServer(fail=1) as server:
        (result,) = bounded(ship, [path], server.url, retry=FAST_RETRY, progress=False)
    assert result.ok
    records = [r for r in caplog.records if r.name.startswith("poster_rs")]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(infos) == 2
    assert all(m.startswith(f"POST {server.url}: HTTP ") for m in infos)
    (warning,) = warnings
    assert result.key in warning
    assert "attempt 1 of 5 failed: HTTP 503" in warning
    assert re.search(r"in \d+\.\d\d s", warning)


def test_library_logging_is_silent_by_default(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = (
        "import sys; from poster_rs import ship, RetryPolicy;"
        "r = ship([sys.argv[1]], sys.argv[2], retry=RetryPolicy(retries=1, base_delay=0.01),"
        " progress=False); print(r[0].attempts)"
    )
    (path,) = make_files(tmp_path / "src", 1, seed=2)
    with FlakyServer(fail=1) as server:
        result = subprocess.run(
            [sys.executable, "-c", code, path, server.url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    assert result.stderr == ""  # a retry happened, and the library said nothing


def test_cli_verbose_shows_requests_and_retries(tmp_path: Path) -> None:
    make_files(tmp_path / "src", 2, seed=3)
    with FlakyServer(fail=1) as server:
        result = subprocess.run(
            [*CLI, "ship", server.url, str(tmp_path / "src"), "-v", "-j", "1"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert sum(line.startswith("poster-rs: INFO POST ") for line in lines) == 3
    assert sum(line.startswith("poster-rs: WARNING retrying ") for line in lines) == 1


# --- group commit -------------------------------------------------------------------------------


def test_log_group_commit_syncs_far_less_than_per_line(
    tmp_path: Path, upload_server: UploadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = make_files(tmp_path / "src", 400, low=100, high=200, seed=400)
    syncs = collections.Counter[str]()
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        syncs["n"] += 1
        real_fsync(fd)

    monkeypatch.setattr(RESULTS_LOG_MODULE.os, "fsync", counting_fsync)
    log = tmp_path / "log.jsonl"
    started = time.monotonic()
    bounded(ship, sorted(expected), upload_server.url, log=log, progress=False)
    elapsed = time.monotonic() - started
    assert len(read_done(log)) == 400
    # At most one per 0.2 s, one per 1,000 lines, one when the log is opened and one at close.
    assert 1 <= syncs["n"] <= elapsed / 0.2 + 3
    assert syncs["n"] < 100

    # By lines: every 10 lines at least.
    syncs.clear()
    log2 = tmp_path / "log2.jsonl"
    bounded(ship, sorted(expected)[:100], upload_server.url, log=log2, log_sync_lines=10,
            log_sync_interval=3600, progress=False)  # fmt: skip
    assert syncs["n"] == 100 // 10 + 1  # ten full groups, and the sync at close


def test_process_pool_tasks_carry_several_requests_and_lose_none(tmp_path: Path) -> None:
    """On another process's executor one task runs several requests (small files), big files
    go alone; batches by bytes on top: every file arrives exactly once."""
    import concurrent.futures
    import multiprocessing

    expected = make_files(tmp_path / "src", 90, low=1000, high=9000, seed=90)
    big = tmp_path / "src" / "zz_big.bin"
    big.write_bytes(os.urandom(5 << 20))  # over a task's bytes: a task of its own
    expected[str(big)] = sha256(big.read_bytes())
    context = multiprocessing.get_context("spawn")
    with (
        UploadServer("127.0.0.1", 0, tmp_path / "store") as server,
        concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as executor,
    ):
        results = bounded(
            ship, sorted(expected), server.url, executor=executor, batch_bytes=20_000,
            progress=False, timeout=TIMEOUT, limit=90,
        )  # fmt: skip
        records = list(server.received)
    assert len(results) == len(expected)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert_exactly_once(records, expected)
    assert any(len(r["parts"]) > 1 for r in records)
