"""Shipping jobs (issue 6): ``poster_rs.ship`` against real servers on 127.0.0.1.

- 2,000 small files with 8 workers arrive exactly once with the right SHA-256;
- a server failing a random 10 % of requests (503, 429 + Retry-After, reset mid-body) still ends
  with every file received once and intact; other 4xx are never retried;
- a ``poster-rs ship`` killed half-way and re-run with its log uploads only the rest;
- the same job on a ``ProcessPoolExecutor`` and on a local Dask cluster;
- ``Retry-After``, bounded exponential backoff, the callback, the progress bar, the log.

Every server binds an ephemeral port on 127.0.0.1; every wait is bounded (``bounded`` runs a
call in a thread and fails the test if it has not returned in time; subprocesses have timeouts).
"""

from __future__ import annotations

import collections
import concurrent.futures
import gc
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import warnings
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
from poster_rs import RetryPolicy, UploadJob, UploadResult, ship, ship_iter
from poster_rs.ship import collect_files, read_log

# The test server: poster-rs serve with injected faults and a log of what it received.
from dummyserver import FaultPlan
from dummyserver import RecordingUploadServer as UploadServer

#: The module (``poster_rs.ship`` is the function: the package re-exports it under that name).
SHIP_MODULE = sys.modules["poster_rs.ship"]


#: Socket timeout for every ship() call here: a stuck request fails, it never blocks.
TIMEOUT = 20.0
#: Retries that keep fault tests fast: many tries, tiny delays.
FAST_RETRY = RetryPolicy(retries=12, base_delay=0.005, max_delay=0.05, max_retry_after=2.0)


# --- helpers ----------------------------------------------------------------------------------


def assert_results_ok(results: list[UploadResult], expected: dict[str, str]) -> None:
    assert len(results) == len(expected)
    failed = [(r.path, r.status, r.error) for r in results if not r.ok]
    assert not failed, f"{len(failed)} jobs failed, e.g. {failed[:3]}"
    assert sorted(r.path or "" for r in results) == sorted(expected)
    assert len({r.key for r in results}) == len(results)
    for r in results:
        assert r.path is not None
        assert r.status == 200
        assert not r.skipped
        assert r.attempts >= 1
        assert r.duration >= 0
        assert r.error is None
        assert r.bytes > os.path.getsize(r.path)  # the file plus the multipart framing


class CountingFaults(FaultPlan):
    """A FaultPlan that counts what it injected."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.injected: collections.Counter[str] = collections.Counter()

    def draw(self) -> str | None:
        kind = super().draw()
        if kind is not None:
            with self._lock:
                self.injected[kind] += 1
        return kind


class ScriptedServer(ThreadingHTTPServer):
    """A small HTTP/1.1 keep-alive server: reads each request body, answers what ``script``
    says for the path (a list of ``(status, headers)`` consumed in turn, then 200), or always
    ``<code>`` for ``/always/<code>``. ``requests`` records ``(path, body bytes, status)``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.lock = threading.Lock()
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.requests: list[tuple[str, int, int]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def decide(self, path: str) -> tuple[int, dict[str, str]]:
        with self.lock:
            steps = self.script.get(path)
            if steps:
                return steps.pop(0)
        match = re.fullmatch(r"/always/(\d{3})", path)
        return (int(match.group(1)), {}) if match else (200, {})

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _, _ in self.requests if p == path)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, headers = self.server.decide(self.path)
        with self.server.lock:
            self.server.requests.append((self.path, len(body), status))
        reply = json.dumps({"status": status, "bytes": len(body)}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@pytest.fixture
def upload_server(tmp_path: Path) -> Iterator[UploadServer]:
    with UploadServer("127.0.0.1", 0, tmp_path / "store") as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def one_file(tmp_path: Path) -> str:
    path = tmp_path / "one.txt"
    path.write_bytes(b"one small file\n" * 10)
    return str(path)


# --- volume: 2,000 files, exactly once ----------------------------------------------------------


def test_2000_files_8_workers_arrive_exactly_once(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    expected = make_files(tmp_path / "src", 2000, seed=2000)
    results = bounded(
        ship, list(expected), upload_server.url + "upload", workers=8, timeout=TIMEOUT,
        progress=False,
    )  # fmt: skip
    assert_results_ok(results, expected)
    assert all(r.attempts == 1 for r in results)  # no faults: no retries
    records = upload_server.received
    assert len(records) == 2000
    assert_exactly_once(records, expected)
    # Each result's byte count is the body the server read, and its response is the server's.
    sent = {os.path.basename(r.path): r for r in results}
    for record in records:
        (part,) = record["parts"]
        result = sent[part["filename"]]
        assert result.bytes == record["bytes"]
        assert record["path"] == "/upload"
        assert part["name"] == "file"
        reply = json.loads(result.response or "")
        assert reply["parts"][0]["sha256"] == expected[result.path]
    # The stored files are the originals, byte for byte.
    store = tmp_path / "store"
    stored = {p.name: sha256(p.read_bytes()) for p in store.iterdir()}
    assert stored == {os.path.basename(p): d for p, d in expected.items()}


# --- faults: retries, rewound bodies, never 4xx -----------------------------------------------


def test_random_10_percent_faults_every_file_once_and_intact(tmp_path: Path) -> None:
    expected = make_files(tmp_path / "src", 1000, seed=10)
    faults = CountingFaults(rate=0.1, seed=1234, retry_after=0)
    with UploadServer("127.0.0.1", 0, tmp_path / "store", faults=faults) as server:
        results = bounded(
            ship, list(expected), server.url, workers=8, retry=FAST_RETRY, timeout=TIMEOUT,
            progress=False,
        )  # fmt: skip
        records = list(server.received)
    assert_results_ok(results, expected)
    # Every kind of fault was injected, and each failed request was tried again.
    assert set(faults.injected) == {"503", "429", "reset"}, faults.injected
    assert sum(faults.injected.values()) >= 50
    assert sum(r.attempts > 1 for r in results) >= 40
    # A reset drops a request the server does not record: once in its successful records.
    assert_exactly_once(records, expected)


def test_reset_mid_body_of_large_files_resends_whole_rewound_body(tmp_path: Path) -> None:
    """Multi-MiB bodies cut off half-way (or refused early while they are still going out):
    every retry sends the whole body again, from its first byte."""
    expected = make_files(tmp_path / "src", 8, low=3 << 20, high=4 << 20, seed=3)
    faults = CountingFaults(rate=0.5, kinds=("reset", "503", "429"), seed=7, retry_after=0)
    with UploadServer("127.0.0.1", 0, tmp_path / "store", faults=faults) as server:
        results = bounded(
            ship, list(expected), server.url, workers=3, retry=FAST_RETRY, timeout=TIMEOUT,
            progress=False,
        )  # fmt: skip
        records = list(server.received)
    assert_results_ok(results, expected)
    assert faults.injected["reset"] >= 2, faults.injected
    assert_exactly_once(records, expected)
    for record in records:
        (part,) = record["parts"]
        assert part["size"] == os.path.getsize(tmp_path / "src" / part["filename"])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_not_retried(scripted: ScriptedServer, one_file: str, status: int) -> None:
    path = f"/always/{status}"
    started = time.perf_counter()
    (result,) = bounded(
        ship, [one_file], scripted.url.rstrip("/") + path, retries=5, timeout=TIMEOUT,
        progress=False,
    )  # fmt: skip
    assert not result.ok
    assert result.status == status
    assert result.attempts == 1
    assert result.error == f"HTTP {status}"
    assert json.loads(result.response or "")["status"] == status
    assert scripted.count(path) == 1
    assert time.perf_counter() - started < 5


def test_413_from_max_body_is_not_retried(tmp_path: Path) -> None:
    small = make_files(tmp_path / "small", 3, low=100, high=200, seed=1)
    big = make_files(tmp_path / "big", 3, low=64 << 10, high=128 << 10, seed=2)
    with UploadServer("127.0.0.1", 0, tmp_path / "store", max_body=8192) as server:
        results = bounded(
            ship, [*small, *big], server.url, workers=2, retries=5, timeout=TIMEOUT,
            progress=False,
        )  # fmt: skip
        records = list(server.received)
    by_path = {r.path: r for r in results}
    for path in big:
        result = by_path[path]
        assert (result.ok, result.status, result.attempts) == (False, 413, 1)
        assert result.error == "HTTP 413"
    assert all(by_path[p].ok for p in small)
    assert_exactly_once(records, small)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(
    scripted: ScriptedServer, one_file: str, status: int
) -> None:
    scripted.script["/flaky"] = [(status, {}), (status, {})]
    (result,) = bounded(
        ship, [one_file], scripted.url + "flaky", retry=FAST_RETRY, timeout=TIMEOUT,
        progress=False,
    )  # fmt: skip
    assert (result.ok, result.status, result.attempts) == (True, 200, 3)
    # Every attempt carried the whole body.
    sizes = {n for p, n, _ in scripted.requests if p == "/flaky"}
    assert len(sizes) == 1
    assert sizes == {result.bytes}


def test_gives_up_after_retries(scripted: ScriptedServer, one_file: str) -> None:
    policy = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.02)
    started = time.perf_counter()
    (result,) = bounded(
        ship, [one_file], scripted.url + "always/503", retry=policy, timeout=TIMEOUT,
        progress=False,
    )  # fmt: skip
    assert not result.ok
    assert result.status == 503
    assert result.attempts == 4
    assert result.bytes == 0
    assert result.error is not None
    assert result.error.startswith("gave up after 4 attempts")
    assert "503" in result.error
    assert scripted.count("/always/503") == 4
    assert time.perf_counter() - started < 5


def test_connection_refused_is_retried_then_reported(one_file: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    policy = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)
    (result,) = bounded(
        ship, [one_file], f"http://127.0.0.1:{port}/", retry=policy, timeout=5, progress=False
    )
    assert not result.ok
    assert result.status is None
    assert result.attempts == 3
    assert "refused" in (result.error or "").lower()


def test_missing_file_fails_at_once_without_retry(
    upload_server: UploadServer, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.bin")
    (result,) = bounded(ship, [missing], upload_server.url, retries=5, progress=False)
    assert (result.ok, result.status, result.attempts, result.bytes) == (False, None, 1, 0)
    assert (result.error or "").startswith("FileNotFoundError")
    assert upload_server.received == []


# --- Retry-After and backoff ------------------------------------------------------------------


def test_retry_after_is_honoured(scripted: ScriptedServer, one_file: str) -> None:
    scripted.script["/limited"] = [(429, {"Retry-After": "1"})]
    started = time.perf_counter()
    (result,) = bounded(
        ship, [one_file], scripted.url + "limited", retries=3, timeout=TIMEOUT, progress=False
    )
    elapsed = time.perf_counter() - started
    assert (result.ok, result.status, result.attempts) == (True, 200, 2)
    assert elapsed >= 1.0
    assert result.duration >= 1.0
    assert elapsed < 5
    assert scripted.count("/limited") == 2


def test_retry_after_is_capped_by_policy(scripted: ScriptedServer, one_file: str) -> None:
    scripted.script["/limited"] = [(503, {"Retry-After": "3600"})]
    policy = RetryPolicy(retries=2, max_retry_after=0.2)
    started = time.perf_counter()
    (result,) = bounded(
        ship, [one_file], scripted.url + "limited", retry=policy, timeout=TIMEOUT, progress=False
    )
    assert (result.ok, result.attempts) == (True, 2)
    assert 0.2 <= time.perf_counter() - started < 3


def test_backoff_is_exponential_and_capped(
    scripted: ScriptedServer, one_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With jitter pinned to its upper bound, the waits double from ``base_delay`` up to
    ``max_delay``, and there is one per retry."""
    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(
        sleep=sleeps.append, perf_counter=time.perf_counter, time=time.time
    )
    fake_random = types.SimpleNamespace(uniform=lambda low, high: high)
    monkeypatch.setattr(SHIP_MODULE, "time", fake_time)
    monkeypatch.setattr(SHIP_MODULE, "random", fake_random)
    policy = RetryPolicy(retries=6, base_delay=0.01, max_delay=0.1)
    (result,) = bounded(
        ship, [one_file], scripted.url + "always/500", retry=policy, timeout=TIMEOUT,
        progress=False,
    )  # fmt: skip
    assert result.attempts == 7
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.1, 0.1])


def test_backoff_full_jitter_bounds() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=5.0, max_retry_after=60.0)
    for attempt in range(12):
        cap = min(5.0, 0.25 * 2**attempt)
        delays = [policy.delay(attempt, None) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # actually jittered over the range, not pinned at 0
    assert policy.delay(3, 7.0) == 7.0
    assert policy.delay(3, 1e9) == 60.0
    assert policy.delay(3, -5.0) == 0.0


# --- callback, progress -----------------------------------------------------------------------


def test_callback_called_once_per_job_including_skipped(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    expected = make_files(tmp_path / "src", 30, seed=30)
    paths = list(expected)
    log = tmp_path / "log.jsonl"
    bounded(ship, paths[:10], upload_server.url, log=log, progress=False, timeout=TIMEOUT)
    seen: list[UploadResult] = []
    lock = threading.Lock()

    def callback(result: UploadResult) -> None:
        with lock:
            seen.append(result)

    results = bounded(
        ship, paths, upload_server.url, log=log, workers=4, callback=callback, progress=False,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert len(seen) == len(paths) == len(results)
    assert sorted(r.path or "" for r in seen) == sorted(paths)
    assert [id(r) for r in seen] == [id(r) for r in results]  # the same objects, same order
    assert sum(r.skipped for r in seen) == 10
    assert {r.path for r in seen if r.skipped} == set(paths[:10])


def test_progress_false_prints_nothing(
    tmp_path: Path, upload_server: UploadServer, capfd: pytest.CaptureFixture[str]
) -> None:
    expected = make_files(tmp_path / "src", 20, seed=20)
    results = bounded(ship, list(expected), upload_server.url, progress=False, timeout=TIMEOUT)
    assert all(r.ok for r in results)
    out, err = capfd.readouterr()
    assert err == ""
    assert out == ""


def test_progress_true_shows_a_bar_on_stderr(
    tmp_path: Path, upload_server: UploadServer, capfd: pytest.CaptureFixture[str]
) -> None:
    expected = make_files(tmp_path / "src", 20, seed=21)
    bounded(ship, list(expected), upload_server.url, progress=True, timeout=TIMEOUT)
    out, err = capfd.readouterr()
    assert out == ""
    # In bytes as they go out (issue 13), with the files done.
    assert "20/20 files" in err
    assert "B/s" in err


# --- the results log and resume -----------------------------------------------------------------


def test_log_records_every_job_and_rerun_skips_ok_ones(tmp_path: Path) -> None:
    small = make_files(tmp_path / "small", 5, low=100, high=200, seed=1)
    big = make_files(tmp_path / "big", 3, low=20 << 10, high=30 << 10, seed=2)
    log = tmp_path / "results.jsonl"
    with UploadServer("127.0.0.1", 0, tmp_path / "store", max_body=8192) as server:
        first = bounded(ship, [*small, *big], server.url, log=log, progress=False)
        assert sum(r.ok for r in first) == 5
        lines = log.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 8
        entries = [json.loads(line) for line in lines]
        for entry in entries:
            assert {"key", "url", "path", "ok", "status", "bytes", "attempts", "time"} <= set(entry)
        logged = read_log(log)
        assert {e["path"] for e in logged.values() if e["ok"]} == set(small)
        assert {e["path"] for e in logged.values() if not e["ok"]} == set(big)
        # Failed jobs are not "done": a re-run sends them (and only them) again.
        server.max_body = None
        count = len(server.received)
        second = bounded(ship, [*small, *big], server.url, log=log, progress=False)
        assert {r.path for r in second if r.skipped} == set(small)
        assert {r.path for r in second if not r.skipped and r.ok} == set(big)
        assert_exactly_once(server.received[count:], big)
        # Everything is acknowledged now: a third run sends nothing.
        count = len(server.received)
        third = bounded(ship, [*small, *big], server.url, log=log, progress=False)
        assert all(r.skipped and r.ok and r.bytes == 0 for r in third)
        assert len(server.received) == count


def test_read_log_ignores_garbage_and_keeps_last_entry(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"key": "a", "ok": false}\n'
        "not json\n"
        "[1, 2]\n"
        '{"no key": 1}\n'
        '{"key": "a", "ok": true}\n'
        '{"key": "b", "ok": tr',
        encoding="utf-8",
    )
    assert read_log(log) == {"a": {"key": "a", "ok": True}}
    assert read_log(tmp_path / "missing.jsonl") == {}


CLI = [sys.executable, "-m", "poster_rs"]


def test_killed_cli_job_resumes_from_its_log(tmp_path: Path) -> None:
    total = 600
    src = tmp_path / "src"
    expected = make_files(src, total, seed=600)
    log = tmp_path / "results.jsonl"
    with SlowUploadServer("127.0.0.1", 0, tmp_path / "store") as server:
        args = [*CLI, "ship", server.url, str(src), "--log", str(log), "-j", "4", "--no-progress"]
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while count_lines(log) < total // 2:
                if proc.poll() is not None:
                    assert proc.stderr is not None
                    pytest.fail(
                        f"run 1 ended (status {proc.returncode}) before it was killed: "
                        f"{proc.stderr.read()!r}"
                    )
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
        assert proc.returncode == -signal.SIGKILL
        # Requests in flight at the kill may still be recorded: wait until the server is quiet.
        wait_quiet(server)
        run1_records = list(server.received)
        run1_ok = {e["path"] for e in read_log(log).values() if e["ok"]}
        assert total // 2 <= len(run1_ok) < total
        # Acknowledged means received: every file logged ok is in the server's records.
        run1_names = {p["filename"] for p in file_parts(run1_records)}
        assert {os.path.basename(p) for p in run1_ok} <= run1_names

        # A kill can cut the line being written: simulate one for a file not yet acknowledged.
        cut = next(p for p in sorted(expected) if p not in run1_ok)
        line = UploadResult(
            f"POST {server.url} file={cut}", server.url, cut, True, 200, 1234, 0.01, 1, "{}"
        ).as_json()
        with open(log, "a", encoding="utf-8") as f:
            f.write(line[: len(line) // 2])

        second = subprocess.run(
            [*CLI, "ship", server.url, str(src), "--log", str(log), "-j", "4"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        assert second.stderr == ""  # no progress bar off a terminal, no failures
        match = re.match(r"(\d+) ok, (\d+) failed, (\d+) skipped", second.stdout)
        assert match, second.stdout
        ok, failed, skipped = map(int, match.groups())
        assert failed == 0
        assert skipped == len(run1_ok)
        assert ok + skipped == total
        run2_records = server.received[len(run1_records) :]

    # Run 2 sent exactly the files run 1 had not acknowledged, each once.
    run2_expected = {p: d for p, d in expected.items() if p not in run1_ok}
    assert_exactly_once(run2_records, run2_expected)
    # Over both runs every file arrived intact (one in flight at the kill may have arrived twice).
    all_parts = file_parts(run1_records + run2_records)
    by_name = {os.path.basename(p): d for p, d in expected.items()}
    assert {p["filename"] for p in all_parts} == set(by_name)
    assert all(p["sha256"] == by_name[p["filename"]] for p in all_parts)
    assert len(all_parts) - total <= 8  # at most the requests in flight at the kill
    stored = {p.name for p in (tmp_path / "store").iterdir()}
    assert set(by_name) <= {re.sub(r"-\d+(?=\.bin$)", "", n) for n in stored}


# --- executors --------------------------------------------------------------------------------


def test_process_pool_executor(tmp_path: Path, upload_server: UploadServer) -> None:
    expected = make_files(tmp_path / "src", 200, seed=200)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as executor:
        results = bounded(
            ship, list(expected), upload_server.url, executor=executor, timeout=TIMEOUT,
            progress=False,
        )  # fmt: skip
    assert_results_ok(results, expected)
    assert_exactly_once(upload_server.received, expected)


def test_process_pool_executor_with_faults(tmp_path: Path) -> None:
    expected = make_files(tmp_path / "src", 200, seed=201)
    faults = CountingFaults(rate=0.1, seed=99, retry_after=0)
    context = multiprocessing.get_context("spawn")
    with (
        UploadServer("127.0.0.1", 0, faults=faults) as server,
        concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as executor,
    ):
        results = bounded(
            ship, list(expected), server.url, executor=executor, retry=FAST_RETRY,
            timeout=TIMEOUT, progress=False,
        )  # fmt: skip
        records = list(server.received)
    assert_results_ok(results, expected)
    assert sum(faults.injected.values()) > 0
    assert_exactly_once(records, expected)


def test_dask_distributed_executor(tmp_path: Path, upload_server: UploadServer) -> None:
    distributed = pytest.importorskip(
        "distributed", reason="dask distributed is not installed (pip install distributed)"
    )
    expected = make_files(tmp_path / "src", 200, seed=202)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            # None still binds the default 8787; a free port never collides with another cluster.
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = bounded(
            ship, list(expected), upload_server.url, executor=client.get_executor(),
            timeout=TIMEOUT, progress=False, limit=90,
        )  # fmt: skip
    assert_results_ok(results, expected)
    assert_exactly_once(upload_server.received, expected)


def test_user_thread_pool_executor(tmp_path: Path, upload_server: UploadServer) -> None:
    expected = make_files(tmp_path / "src", 100, seed=203)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as executor:
        results = bounded(
            ship, list(expected), upload_server.url, executor=executor, progress=False
        )
        # The caller's executor is not shut down by ship().
        assert executor.submit(lambda: 42).result(timeout=5) == 42
    assert_results_ok(results, expected)
    assert_exactly_once(upload_server.received, expected)


# --- TLS --------------------------------------------------------------------------------------


def test_https_with_a_ca_bundle_and_insecure(tmp_path: Path) -> None:
    import ssl

    import trustme
    from _servers import WerkzeugServer

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    expected = make_files(tmp_path / "src", 40, seed=443)
    paths = list(expected)
    with WerkzeugServer(ssl_context=server_context) as server:
        assert server.url.startswith("https://")
        results = bounded(
            ship, paths, server.url, workers=4, verify=str(ca_file), timeout=TIMEOUT,
            progress=False,
        )  # fmt: skip
        assert_results_ok(results, expected)
        insecure = bounded(
            ship, paths[:3], server.url, verify=False, timeout=TIMEOUT, progress=False
        )
        assert all(r.ok for r in insecure)
        # The system's CAs do not know this one: the upload fails, the error says why.
        policy = RetryPolicy(retries=1, base_delay=0.01, max_delay=0.01)
        (refused,) = bounded(
            ship, paths[:1], server.url, retry=policy, timeout=TIMEOUT, progress=False
        )
        assert not refused.ok
        assert "CERTIFICATE_VERIFY_FAILED" in (refused.error or "")
        files = [f for r in server.requests for f in r["files"]]
    by_name = {os.path.basename(p): d for p, d in expected.items()}
    counts = collections.Counter(name for _, name, _, _, _ in files)
    assert counts == collections.Counter({**dict.fromkeys(by_name, 1), **{
        os.path.basename(p): 2 for p in paths[:3]
    }})  # fmt: skip
    assert all(digest == by_name[name] for _, name, _, _, digest in files)


# --- jobs -------------------------------------------------------------------------------------


def test_forms_fields_methods_and_per_job_urls(tmp_path: Path, upload_server: UploadServer) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"contents of a")
    jobs: list[Any] = [
        UploadJob(upload_server.url + "put", str(path), name="doc", method="PUT", key="put-a"),
        {"title": "hello", "n": "1"},
        [("x", "1"), ("x", "2")],
    ]
    results = bounded(
        ship, jobs, upload_server.url + "forms", fields={"batch": "7"}, progress=False,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert all(r.ok for r in results)
    assert results[0].key != results[1].key
    records = sorted(upload_server.received, key=lambda r: r["path"])
    assert [r["path"] for r in records] == ["/forms", "/forms", "/put"]
    values = sorted(
        tuple((p["name"], p["value"]) for p in r["parts"]) for r in records if r["path"] == "/forms"
    )
    assert values == [
        (("batch", "7"), ("title", "hello"), ("n", "1")),
        (("batch", "7"), ("x", "1"), ("x", "2")),
    ]
    (put,) = (r for r in records if r["path"] == "/put")
    assert [(p["name"], p["filename"], p["sha256"]) for p in put["parts"]] == [
        ("doc", "a.txt", sha256(b"contents of a"))
    ]


def test_ship_iter_stops_early_without_hanging(tmp_path: Path, upload_server: UploadServer) -> None:
    expected = make_files(tmp_path / "src", 200, seed=204)

    def first_then_stop() -> UploadResult:
        iterator = ship_iter(list(expected), upload_server.url, workers=2, progress=False)
        first = next(iterator)
        iterator.close()
        return first

    first = bounded(first_then_stop, limit=30)
    assert first.ok
    assert upload_server.received_count < 200


def test_collect_files_walks_sorted_and_filters(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.txt", "d/a.bin", "d/sub/c.txt", "e.txt", "e.bin"):
        (tmp_path / name).write_text(name)
    root = str(tmp_path)
    assert collect_files([f"{root}/d", f"{root}/e.bin"]) == [
        f"{root}/d/a.bin",
        f"{root}/d/b.txt",
        f"{root}/d/sub/c.txt",
        f"{root}/e.bin",
    ]
    assert collect_files([f"{root}/d", f"{root}/e.txt", f"{root}/e.bin"], "*.txt") == [
        f"{root}/d/b.txt",
        f"{root}/d/sub/c.txt",
        f"{root}/e.txt",
    ]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        ship(["x"], "http://127.0.0.1:9/", workers=0)
    with pytest.raises(ValueError, match="url"):
        ship(["x"])
    with pytest.raises(TypeError):
        ship([42], "http://127.0.0.1:9/")


# --- bugs found (strict xfails: they pass once fixed, and then must lose the mark) ---------------


def test_entry_after_a_cut_line_is_not_lost(tmp_path: Path, upload_server: UploadServer) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"f{i}.txt"
        path.write_text(f"data {i}")
        paths.append(str(path))
    log = tmp_path / "log.jsonl"
    bounded(ship, paths[:2], upload_server.url, log=log, workers=1, progress=False)
    data = log.read_bytes()
    log.write_bytes(data[:-20])  # the second line cut short, as by a kill mid-write
    assert len(read_log(log)) == 1
    bounded(ship, paths, upload_server.url, log=log, workers=1, progress=False)
    assert len(read_log(log)) == 3  # fails: 2, the first new entry is glued to the cut line
    count = upload_server.received_count
    third = bounded(ship, paths, upload_server.url, log=log, workers=1, progress=False)
    assert all(r.skipped for r in third)
    assert upload_server.received_count == count


def test_failed_job_does_not_poison_the_next_one(scripted: ScriptedServer, one_file: str) -> None:
    jobs = [
        UploadJob(scripted.url, one_file, headers=(("X-Bad", "a\nb"),), key="bad"),
        UploadJob(scripted.url, one_file, key="good"),
    ]
    results = bounded(ship, jobs, workers=1, retries=0, progress=False, timeout=TIMEOUT)
    by_key = {r.key: r for r in results}
    assert not by_key["bad"].ok
    assert by_key["bad"].attempts == 1
    assert "Invalid header" in (by_key["bad"].error or "")
    assert by_key["good"].ok, by_key["good"].error  # fails: CannotSendRequest: Request-started
    assert by_key["good"].attempts == 1


def test_own_thread_pool_closes_its_connections(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    expected = make_files(tmp_path / "src", 20, seed=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        results = bounded(ship, list(expected), upload_server.url, workers=4, progress=False)
        gc.collect()
    assert all(r.ok for r in results)
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
