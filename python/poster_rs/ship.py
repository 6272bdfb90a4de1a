"""Shipping jobs: upload many files (or forms) concurrently, with retries, resume and a log.

``ship(jobs, url, workers=8, log="results.jsonl")`` uploads every job on a
``concurrent.futures.Executor`` (threads by default; a process pool or a Dask ``distributed``
client's executor work the same), retries connection failures and 408/429/5xx answers with
exponential backoff and jitter (honouring ``Retry-After``), re-encoding the body for every
attempt so nothing is sent from a consumed stream, and appends one JSON line per finished job
to the log, so that a re-run with the same log skips what was acknowledged. Only network
failures are retried: an error of the job itself (a file missing, unreadable or changed while
it was sent) is reported at once. Proxies come from the environment (``HTTP_PROXY``,
``HTTPS_PROXY``, ``NO_PROXY``) as for ``urllib``; ``deadline`` bounds each attempt as a whole.

Jobs are read lazily, a window at a time, so a generator of millions of paths starts at once;
``batch``/``batch_bytes`` send several files per request as repeated parts, with results kept
per file. How requests travel is ``_ship_transport``; the log is ``_results_log``.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import hashlib
import importlib
import json
import logging
import os
import random
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ._results_log import (
    DEFAULT_SYNC_INTERVAL,
    DEFAULT_SYNC_LINES,
    ResultsLog,
    iter_entries,
    read_done,
)
from ._ship_transport import (
    ConnectionPool,
    Response,
    RetryableError,
    Transport,
    parse_retry_after,
    register_pool,
    send,
)
from .progress import ByteCounter

__all__ = [
    "RetryPolicy",
    "UploadJob",
    "UploadResult",
    "collect_files",
    "count_files",
    "iter_files",
    "read_done",
    "read_log",
    "ship",
    "ship_iter",
]

#: Answers worth another try: timeouts, rate limits and server-side failures.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Response bodies are kept in results up to this many bytes.
RESPONSE_KEEP = 64 * 1024

#: Requests per task on an executor of other processes (a process pool, Dask), at most, and
#: bytes of file data from which a task takes no more.
TASK_REQUESTS = 16
TASK_BYTES = 4 << 20

_logger = logging.getLogger(__name__)


class _FilePath(os.PathLike[str]):
    """A path for ``multipart_encode``: what a ``pathlib.Path`` gives it (``__fspath__``),
    at a tenth of the cost of building one (a batch of 64 small files builds 64)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


@dataclass(frozen=True)
class UploadJob:
    """One request: a file (``path``, sent as the part ``name``) and/or a whole ``form``
    (anything ``multipart_encode`` takes), plus ``fields``, to ``url`` with ``method``."""

    url: str
    path: str | None = None
    name: str = "file"
    fields: tuple[tuple[str, str], ...] = ()
    form: Any = None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    key: str | None = None

    @property
    def id(self) -> str:
        """What identifies the job in the results log."""
        if self.key is not None:
            return self.key
        if self.path is not None:
            return f"{self.method} {self.url} {self.name}={os.path.abspath(self.path)}"
        digest = hashlib.sha256(repr((self.fields, self.form)).encode("utf-8")).hexdigest()[:16]
        return f"{self.method} {self.url} form:{digest}"

    def params(self) -> list[Any]:
        params: list[Any] = list(self.fields)
        if self.form is not None:
            form = self.form
            params.extend(form.items() if isinstance(form, Mapping) else form)
        if self.path is not None:
            # A (name, path) pair is sized and rendered in Rust without a MultipartParam.
            params.append((self.name, _FilePath(self.path)))
        return params


@dataclass
class UploadResult:
    """What happened to one job."""

    key: str
    url: str
    path: str | None
    ok: bool
    status: int | None
    bytes: int
    duration: float
    attempts: int
    response: str | None = None
    error: str | None = None
    skipped: bool = False

    def as_json(self) -> str:
        # Every field is a scalar or a string: no deep copy (dataclasses.asdict) needed, and
        # this runs once per finished job on the thread that hands out the jobs.
        data = {name: getattr(self, name) for name in _LOGGED_FIELDS}
        data["time"] = time.time()
        # ASCII only: a kill can cut the line, but never inside a character.
        return json.dumps(data, ensure_ascii=True)


#: What a results-log line records of an UploadResult (``skipped`` is never logged).
_LOGGED_FIELDS = tuple(f.name for f in fields(UploadResult) if f.name != "skipped")


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are retried: up to ``retries`` more attempts, waiting
    ``uniform(0, min(max_delay, base_delay * 2**n))`` (full jitter) or what ``Retry-After``
    asks (up to ``max_retry_after``)."""

    retries: int = 5
    base_delay: float = 0.25
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    statuses: frozenset[int] = field(default_factory=lambda: RETRY_STATUSES)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


@dataclass(frozen=True)
class _Options:
    transport: Transport
    policy: RetryPolicy


def _fail_all(
    jobs: Sequence[UploadJob], started: float, attempts: int, error: str, status: int | None = None
) -> list[UploadResult]:
    elapsed = time.perf_counter() - started
    return [
        UploadResult(job.id, job.url, job.path, False, status, 0, elapsed, attempts, error=error)
        for job in jobs
    ]


def _batch_params(jobs: Sequence[UploadJob]) -> list[Any]:
    """One body for all ``jobs``: the shared fields once, then every file as a repeated part."""
    if len(jobs) == 1:
        return jobs[0].params()
    first = jobs[0]
    return [*first.fields, *((job.name, _FilePath(job.path or "")) for job in jobs)]


def _shares(jobs: Sequence[UploadJob], response: Response) -> list[int]:
    """Each job's bytes of a batch body: its own part, the shared fields going to the first job
    and the closing delimiter to the last, so that the shares add up to the body."""
    starts = response.part_starts
    if len(jobs) == 1 or len(starts) != len(jobs) + len(jobs[0].fields) + 1:
        return [response.sent] + [0] * (len(jobs) - 1)
    first_file = len(jobs[0].fields)
    shares = [starts[first_file + i + 1] - starts[first_file + i] for i in range(len(jobs))]
    shares[0] += starts[first_file]
    shares[-1] += response.sent - starts[-1]
    return shares


def _label(jobs: Sequence[UploadJob]) -> str:
    return jobs[0].id if len(jobs) == 1 else f"batch of {len(jobs)} files from {jobs[0].id}"


def run_batch(
    jobs: Sequence[UploadJob], options: _Options, counter: ByteCounter | None = None
) -> list[UploadResult]:
    """Runs one request carrying ``jobs`` (one job, or several files of the same url, method,
    part name, fields and headers) with retries; returns one result per job. A batch is retried
    whole; a file that cannot be read is reported on its own and the rest are sent without it.
    A module-level function, so process pools and Dask can pickle it; each worker thread keeps
    its own connection pool. ``counter`` (threads only) counts body bytes as they go out."""
    started = time.perf_counter()
    jobs = list(jobs)
    failed: list[UploadResult] = []
    first = jobs[0]
    headers = dict(first.headers)
    attempts = 0
    last_error = ""
    status: int | None = None
    policy = options.policy
    while jobs:
        attempts += 1
        cb = counter.callback() if counter is not None else None
        try:
            response = send(first.method, first.url, _batch_params(jobs), headers,
                            options.transport, cb)  # fmt: skip
        except RetryableError as exc:
            if cb is not None:
                cb.rewind()
            last_error = str(exc)
            status = None
            retry_after = None
        except (OSError, ValueError, TypeError) as exc:
            if cb is not None:
                cb.rewind()
            error = f"{type(exc).__name__}: {exc}"
            bad = _job_of_file(jobs, exc) if len(jobs) > 1 else None
            if bad is None:
                # The job itself is wrong (missing or unreadable file, bad URL): retrying
                # cannot help.
                return failed + _fail_all(jobs, started, attempts, error)
            # One file of a batch cannot be read: it fails alone, the others go without it.
            failed += _fail_all([bad], started, attempts, error)
            jobs.remove(bad)
            attempts -= 1
            continue
        else:
            status = response.status
            _logger.info(
                "%s %s: HTTP %d, %d bytes, %d file(s), attempt %d",
                first.method, first.url, status, response.sent, len(jobs), attempts,
            )  # fmt: skip
            if status not in policy.statuses:
                return failed + _finish(jobs, response, started, attempts)
            if cb is not None:
                cb.rewind()
            last_error = f"HTTP {status} {response.reason}"
            retry_after = parse_retry_after(response.retry_after)
        if attempts > policy.retries:
            break
        delay = policy.delay(attempts - 1, retry_after)
        _logger.warning(
            "retrying %s in %.2f s: attempt %d of %d failed: %s",
            _label(jobs), delay, attempts, policy.retries + 1, last_error,
        )  # fmt: skip
        time.sleep(delay)
    return failed + _fail_all(
        jobs, started, attempts, f"gave up after {attempts} attempts: {last_error}", status
    )


def _job_of_file(jobs: Sequence[UploadJob], exc: BaseException) -> UploadJob | None:
    filename = getattr(exc, "filename", None)
    if filename is None:
        return None
    wanted = os.path.abspath(os.fsdecode(filename))
    return next((j for j in jobs if j.path and os.path.abspath(j.path) == wanted), None)


def _finish(
    jobs: Sequence[UploadJob], response: Response, started: float, attempts: int
) -> list[UploadResult]:
    status = response.status
    text = response.body[:RESPONSE_KEEP].decode("utf-8", "replace")
    ok = 200 <= status < 300
    elapsed = time.perf_counter() - started
    error = None if ok else f"HTTP {status}"
    shares = _shares(jobs, response)
    return [
        UploadResult(job.id, job.url, job.path, ok, status, share, elapsed, attempts, text, error)
        for job, share in zip(jobs, shares, strict=True)
    ]


def run_batches(groups: Sequence[Sequence[UploadJob]], options: _Options) -> list[UploadResult]:
    """``run_batch`` of each group in turn: one task of a process pool or Dask, several
    requests."""
    return [result for group in groups for result in run_batch(group, options)]


def run_job(job: UploadJob, options: _Options) -> UploadResult:
    """Runs one job with retries (``run_batch`` of one)."""
    return run_batch((job,), options)[0]


def read_log(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last entry of every job in a results log (a line cut short by a kill is ignored).
    Holds every entry in memory: to resume, ``read_done`` keeps only the done keys."""
    return {entry["key"]: entry for entry in iter_entries(path)}


#: One upload: an ``UploadJob``, or with ``url=`` a file's path or a form (a mapping, or a list or
#: tuple of ``(name, value)`` pairs and ``MultipartParam``s, as ``multipart_encode`` takes).
ShipJob = (
    UploadJob | str | bytes | os.PathLike[str] | Mapping[str, Any] | list[Any] | tuple[Any, ...]
)


def _as_job(item: ShipJob, url: str | None, name: str, fields: tuple[tuple[str, str], ...],
            method: str, headers: tuple[tuple[str, str], ...]) -> UploadJob:  # fmt: skip
    if isinstance(item, UploadJob):
        return item
    if url is None:
        raise ValueError("ship() needs url= for jobs given as paths")
    if isinstance(item, (str, bytes, os.PathLike)):
        return UploadJob(url, os.fsdecode(item), name, fields, None, method, headers)
    if isinstance(item, (Mapping, list, tuple)):
        return UploadJob(url, None, name, fields, item, method, headers)
    raise TypeError(f"a job must be an UploadJob, a path or a form, not {type(item).__name__}")


def _file_size(path: str | None) -> int:
    if path is None:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _Batcher:
    """Groups file jobs going to the same place into batches of at most ``count`` files and
    (unless one file is larger) ``size`` bytes. Forms, and everything when batching is off,
    go alone."""

    def __init__(self, count: int, size: int | None) -> None:
        self.count = count
        self.size = size
        self.open: dict[tuple[Any, ...], list[UploadJob]] = {}
        self.bytes: dict[tuple[Any, ...], int] = {}

    def add(self, job: UploadJob) -> list[tuple[UploadJob, ...]]:
        if (self.count == 1 and self.size is None) or job.path is None or job.form is not None:
            return [(job,)]
        key = (job.url, job.method, job.name, job.fields, job.headers)
        out = []
        group = self.open.setdefault(key, [])
        if self.size is not None:
            size = _file_size(job.path)
            if group and self.bytes[key] + size > self.size:
                out.append(tuple(group))
                group.clear()
                self.bytes[key] = 0
            self.bytes[key] = self.bytes.get(key, 0) + size
        group.append(job)
        if len(group) >= self.count:
            out.append(tuple(group))
            del self.open[key]
            self.bytes.pop(key, None)
        return out

    def flush(self) -> list[tuple[UploadJob, ...]]:
        out = [tuple(group) for group in self.open.values() if group]
        self.open.clear()
        self.bytes.clear()
        return out


class _ShipBar:
    """The bar of a shipping job on stderr, in bytes of file data (rate and ETA once the total
    is known), with files done in its postfix. Bytes move as they go out when the workers are
    threads of this process (``counter``); otherwise as jobs finish."""

    def __init__(
        self, enabled: bool, counter: ByteCounter | None, totals: Callable[[], tuple[int, int]]
    ) -> None:
        self.bar: Any = None
        self.counter = counter
        self.adjust = 0
        self.files = 0
        self.total_files: int | None = None
        self.shown = 0.0
        if not enabled:
            return
        tqdm = importlib.import_module("tqdm").tqdm
        self.bar = tqdm(
            total=None, unit="B", unit_scale=True, unit_divisor=1024, desc="ship",
            dynamic_ncols=True, file=sys.stderr,
        )  # fmt: skip
        threading.Thread(target=self._count, args=(totals,), daemon=True).start()

    def _count(self, totals: Callable[[], tuple[int, int]]) -> None:
        files, size = totals()
        self.total_files = files
        bar = self.bar
        if bar is not None:
            bar.total = size

    def finished(self, result: UploadResult) -> None:
        if self.bar is None:
            return
        self.files += 1
        # Done (or given up) counts as its file's size; what the counter saw of it was its body.
        seen = result.bytes if self.counter is not None and result.ok else 0
        self.adjust += _file_size(result.path) - seen
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        bar = self.bar
        if bar is None:
            return
        now = time.perf_counter()
        if not force and now - self.shown < 0.1:
            return
        self.shown = now
        done = self.adjust + (self.counter.value if self.counter is not None else 0)
        of = f"/{self.total_files}" if self.total_files is not None else ""
        bar.set_postfix_str(f"{self.files}{of} files", refresh=False)
        bar.update(done - bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.refresh(force=True)
            self.bar.close()
            self.bar = None


def _totals_of(jobs: Iterable[Any]) -> Callable[[], tuple[int, int]]:
    """Counts the files and bytes of a collection of jobs (for the bar, in the background);
    a one-pass iterator cannot be counted ahead: (0, 0) then, and the bar shows no total."""

    def count() -> tuple[int, int]:
        if not isinstance(jobs, Sequence):
            return 0, 0
        size = 0
        for item in list(jobs):
            if isinstance(item, UploadJob):
                size += _file_size(item.path)
            elif isinstance(item, (str, bytes, os.PathLike)):
                size += _file_size(os.fsdecode(item))
        return len(jobs), size

    return count


def ship_iter(
    jobs: Iterable[ShipJob],
    url: str | None = None,
    *,
    name: str = "file",
    fields: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    method: str = "POST",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    workers: int = 8,
    retries: int = 5,
    retry: RetryPolicy | None = None,
    timeout: float = 60.0,
    log: str | os.PathLike[str] | None = None,
    executor: concurrent.futures.Executor | None = None,
    progress: bool | None = None,
    callback: Callable[[UploadResult], object] | None = None,
    verify: bool | str = True,
    expect_continue: bool = False,
    deadline: float | None = None,
    proxies: Mapping[str, str] | None = None,
    limit_rate: float | None = None,
    batch: int | None = None,
    batch_bytes: int | None = None,
    log_sync_interval: float = DEFAULT_SYNC_INTERVAL,
    log_sync_lines: int = DEFAULT_SYNC_LINES,
    totals: Callable[[], tuple[int, int]] | None = None,
) -> Generator[UploadResult, None, None]:
    """Uploads every job and yields one ``UploadResult`` per job as it finishes.

    ``jobs``: ``UploadJob``s, paths (uploaded to ``url`` as the part ``name`` with ``fields``)
    or forms, consumed lazily: at most a window of jobs (a few per worker) is held at once, so
    a generator of millions of paths starts uploading at once. ``workers`` requests run at
    once, on ``executor`` if given (its own worker count then applies) or on a thread pool.

    ``batch=N`` / ``batch_bytes=SIZE``: several file jobs going to the same place (url, method,
    part name, fields, headers) share one request, their files as repeated parts, up to N
    files and SIZE bytes of file data (a larger file goes alone). Results stay per file; a
    batch that fails is retried whole, one that succeeds records every file in the log.

    ``log``: a JSON Lines results log; jobs it records as done are skipped (yielded with
    ``skipped=True``). The log is locked while the run holds it: a second run given the same
    log raises ``BlockingIOError`` before it sends anything. Each line reaches the operating
    system when its job finishes (a killed run loses none); the disk is synced at most every
    ``log_sync_interval`` seconds or ``log_sync_lines`` lines, and when the run ends, so a
    power loss can forget at most that window, whose files a re-run sends again.

    ``progress``: a bar on stderr in bytes, with files, rate and ETA (default: when stderr is
    a terminal); ``totals()`` counts the files and bytes to come, in the background, for the
    ETA (by default the jobs are counted if they are a sequence). ``callback(result)`` is
    called for every job. ``verify``: TLS verification (``False``, or a CA bundle path).
    ``deadline``: seconds one attempt may take as a whole, however the server trickles
    (``timeout`` bounds each socket operation). ``proxies``: scheme →
    ``http://[user:pass@]host:port``, ``"no"`` → hosts that bypass it; ``None`` (default) reads
    ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY``, ``{}`` uses none. ``limit_rate``: a
    bandwidth cap in bytes per second for the whole run (per process with a process pool).

    Logging: the ``poster_rs`` logger gets an INFO record per request and a WARNING per retry.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if deadline is not None and not deadline > 0:
        raise ValueError("deadline must be a positive number of seconds")
    if batch is not None and batch < 1:
        raise ValueError("batch must be at least 1")
    if batch_bytes is not None and batch_bytes < 1:
        raise ValueError("batch_bytes must be at least 1")
    if limit_rate is not None and not limit_rate > 0:
        raise ValueError("limit_rate must be a positive number of bytes per second")
    field_pairs = tuple(fields.items() if isinstance(fields, Mapping) else fields)
    header_pairs = tuple(headers.items() if isinstance(headers, Mapping) else headers)
    policy = retry or RetryPolicy(retries=retries)
    if proxies is None:
        proxies = urllib.request.getproxies()
    transport = Transport(timeout, verify, expect_continue, deadline, dict(proxies), limit_rate)
    options = _Options(transport, policy)
    # Locked before it is read: a second run sharing the log fails here, having sent nothing.
    results_log = (
        ResultsLog(log, sync_interval=log_sync_interval, sync_lines=log_sync_lines)
        if log is not None
        else None
    )
    own_executor = executor is None
    own_pools: list[ConnectionPool] = []
    pool: concurrent.futures.Executor | None = None
    bar: _ShipBar | None = None
    pending: dict[
        concurrent.futures.Future[list[UploadResult]], tuple[tuple[UploadJob, ...], ...]
    ] = {}
    try:
        done = results_log.done_keys() if results_log is not None else set()
        show = sys.stderr.isatty() if progress is None else progress
        threaded = own_executor or isinstance(executor, concurrent.futures.ThreadPoolExecutor)
        # Byte-level progress needs the streams' callbacks, which cost a little per part:
        # only while a bar is shown, and only where they can reach it (this process).
        counter = ByteCounter() if show and threaded else None
        bar = _ShipBar(show, counter, totals or _totals_of(jobs))
        pool = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="poster-rs-ship",
            initializer=register_pool,
            initargs=(own_pools, threading.Lock()),
        )
        batcher = _Batcher(batch or (1 << 62 if batch_bytes is not None else 1), batch_bytes)
        window = max(workers, 1) * 4
        # Another process's task costs pickling and a scheduler round trip (a Dask task, about
        # a millisecond): there, one task carries several requests of small files, run one
        # after another (up to TASK_REQUESTS, or TASK_BYTES of file data: big files go alone).
        per_task = 1 if threaded else TASK_REQUESTS
        waiting: list[tuple[UploadJob, ...]] = []
        waiting_bytes = 0
        queue = iter(jobs)
        # A bar or a log needs attention now and then, even while no job finishes.
        tick = 0.2 if (bar.bar is not None or results_log is not None) else None

        def finish(result: UploadResult) -> UploadResult:
            if not result.skipped and results_log is not None:
                results_log.write(result.as_json())
            assert bar is not None
            bar.finished(result)
            if callback is not None:
                callback(result)
            return result

        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                item = next(queue, None)
                if item is None:
                    exhausted = True
                    groups = batcher.flush()
                else:
                    job = _as_job(item, url, name, field_pairs, method, header_pairs)
                    if done and job.id in done:
                        yield finish(
                            UploadResult(
                                job.id, job.url, job.path, True, None, 0, 0.0, 0, skipped=True
                            )
                        )
                        continue
                    groups = batcher.add(job)
                if per_task == 1:
                    for group in groups:
                        pending[pool.submit(run_batch, group, options, counter)] = (group,)
                    continue
                for group in groups:
                    waiting.append(group)
                    waiting_bytes += sum(_file_size(job.path) for job in group)
                    if len(waiting) >= per_task or waiting_bytes >= TASK_BYTES:
                        pending[pool.submit(run_batches, tuple(waiting), options)] = tuple(waiting)
                        waiting.clear()
                        waiting_bytes = 0
                if exhausted and waiting:
                    pending[pool.submit(run_batches, tuple(waiting), options)] = tuple(waiting)
                    waiting.clear()
            if not pending:
                break
            finished, _ = concurrent.futures.wait(
                pending, timeout=tick, return_when=concurrent.futures.FIRST_COMPLETED
            )
            bar.refresh()
            if results_log is not None:
                results_log.tick()
            for future in finished:
                task = pending.pop(future)
                try:
                    results = future.result()
                except Exception as exc:  # a worker process died, a pickling error, ...
                    jobs_lost = [job for group in task for job in group]
                    results = _fail_all(jobs_lost, time.perf_counter(), 1,
                                        f"{type(exc).__name__}: {exc}")  # fmt: skip
                for result in results:
                    yield finish(result)
    finally:
        for future in pending:
            future.cancel()
        if own_executor and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            for connections in own_pools:
                connections.close()
        if results_log is not None:
            results_log.close()
        if bar is not None:
            bar.close()


def ship(jobs: Iterable[ShipJob], url: str | None = None, **options: Any) -> list[UploadResult]:
    """``ship_iter`` run to the end: the list of results, in completion order."""
    return list(ship_iter(jobs, url, **options))


def iter_files(
    paths: Iterable[str | os.PathLike[str]], pattern: str | None = None
) -> Iterator[str]:
    """Files named by ``paths``, as a directory walk finds them (sorted within each directory),
    without listing a whole tree first: files as given, directories walked recursively,
    keeping names that match the glob ``pattern`` (all when ``None``)."""
    for given in paths:
        path = os.fspath(given)
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for file_name in sorted(files):
                    if pattern is None or fnmatch.fnmatch(file_name, pattern):
                        yield os.path.join(root, file_name)
        elif pattern is None or fnmatch.fnmatch(os.path.basename(path), pattern):
            yield path


def collect_files(paths: Iterable[str | os.PathLike[str]], pattern: str | None = None) -> list[str]:
    """``iter_files`` as a list."""
    return list(iter_files(paths, pattern))


def count_files(
    paths: Iterable[str | os.PathLike[str]], pattern: str | None = None
) -> tuple[int, int]:
    """How many files ``iter_files`` finds and their total size (for a progress bar's ETA)."""
    files = size = 0
    for path in iter_files(paths, pattern):
        files += 1
        size += _file_size(path)
    return files, size
