"""Shipping jobs: upload many files (or forms) concurrently, with retries, resume and a log.

``ship(jobs, url, workers=8, log="results.jsonl")`` uploads every job on a
``concurrent.futures.Executor`` (threads by default; a process pool or a Dask ``distributed``
client's executor work the same), retries connection failures and 408/429/5xx answers with
exponential backoff and jitter (honouring ``Retry-After``), re-encoding the body for every
attempt so nothing is sent from a consumed stream, and appends one fsynced JSON line per
finished job to the log, so that a re-run with the same log skips what was acknowledged.
"""

from __future__ import annotations

import concurrent.futures
import email.utils
import fnmatch
import hashlib
import http.client
import json
import os
import pathlib
import random
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .encode import multipart_encode
from .streaminghttp import StreamingHTTPConnection, StreamingHTTPSConnection

__all__ = [
    "RetryPolicy",
    "UploadJob",
    "UploadResult",
    "collect_files",
    "read_log",
    "ship",
    "ship_iter",
]

#: Answers worth another try: timeouts, rate limits and server-side failures.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Response bodies are kept in results up to this many bytes.
RESPONSE_KEEP = 64 * 1024


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
            params.append((self.name, pathlib.Path(self.path)))
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
        data = asdict(self)
        data.pop("skipped")
        data["time"] = time.time()
        return json.dumps(data, ensure_ascii=False)


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
    timeout: float
    policy: RetryPolicy
    verify: bool | str
    expect_continue: bool


class _RetryableError(Exception):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class _ConnectionPool:
    """Keep-alive connections of one worker thread, one per (scheme, host, port)."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def get(self, url: urllib.parse.SplitResult, options: _Options) -> http.client.HTTPConnection:
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.scheme, url.hostname or "", port)
        conn = self.connections.get(key)
        if conn is None:
            if url.scheme == "https":
                context = ssl.create_default_context(
                    cafile=options.verify if isinstance(options.verify, str) else None
                )
                if options.verify is False:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                conn = StreamingHTTPSConnection(
                    key[1], port, timeout=options.timeout, context=context
                )
            elif url.scheme == "http":
                conn = StreamingHTTPConnection(key[1], port, timeout=options.timeout)
            else:
                raise ValueError(f"unsupported URL scheme {url.scheme!r} in {url.geturl()!r}")
            self.connections[key] = conn
        return conn

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()

    # A worker thread of a caller's executor drops its pool when the thread ends.
    __del__ = close

    def discard(self, url: urllib.parse.SplitResult) -> None:
        port = url.port or (443 if url.scheme == "https" else 80)
        conn = self.connections.pop((url.scheme, url.hostname or "", port), None)
        if conn is not None:
            conn.close()


_local = threading.local()


def _pool() -> _ConnectionPool:
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = _ConnectionPool()
    return pool


def _register_pool(pools: list[_ConnectionPool], lock: threading.Lock) -> None:
    """Thread initializer of ship()'s own executor: its pools are closed when the run ends."""
    with lock:
        pools.append(_pool())


def _attempt(job: UploadJob, options: _Options) -> tuple[int, int, bytes]:
    """One try: returns ``(status, body bytes sent, response body)`` or raises ``_RetryableError``
    for what deserves another try."""
    url = urllib.parse.urlsplit(job.url)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    # Encoded afresh for every attempt: a retry never sends from a consumed stream, and a file
    # that changed since the last attempt is measured again.
    stream, headers = multipart_encode(job.params())
    headers.update(dict(job.headers))
    if options.expect_continue:
        headers.setdefault("Expect", "100-continue")
    pool = _pool()
    with stream:
        for first_try in (True, False):
            conn = pool.get(url, options)
            reused = conn.sock is not None
            try:
                conn.request(job.method, target, body=stream, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                pool.discard(url)
                if reused and first_try:
                    # The server had closed the kept-alive connection: once more, on a new one.
                    stream.seek(0)
                    continue
                raise _RetryableError(f"connection lost: {exc}") from exc
            except ssl.SSLCertVerificationError:
                pool.discard(url)
                raise  # a certificate will not verify on the next attempt either
            except (OSError, http.client.HTTPException) as exc:
                pool.discard(url)
                raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                # Left mid-request, the connection would break the worker's next job.
                pool.discard(url)
                raise
            if response.will_close:
                pool.discard(url)
            status = response.status
            if status in options.policy.statuses:
                raise _RetryableError(
                    f"HTTP {status} {response.reason}",
                    status,
                    _parse_retry_after(response.getheader("Retry-After")),
                )
            return status, stream.total or stream.tell(), body
    raise _RetryableError("connection lost")


def run_job(job: UploadJob, options: _Options) -> UploadResult:
    """Runs one job with retries. A module-level function, so process pools and Dask can
    pickle it; each worker keeps its own connection pool."""
    started = time.perf_counter()
    attempts = 0
    last_error = ""
    status: int | None = None
    policy = options.policy
    while True:
        attempts += 1
        try:
            status, sent, body = _attempt(job, options)
        except _RetryableError as exc:
            last_error = str(exc)
            status = exc.status
            if attempts > policy.retries:
                break
            time.sleep(policy.delay(attempts - 1, exc.retry_after))
            continue
        except (OSError, ValueError, TypeError) as exc:
            # The job itself is wrong (missing file, bad URL): retrying cannot help.
            return UploadResult(
                job.id, job.url, job.path, False, None, 0,
                time.perf_counter() - started, attempts, error=f"{type(exc).__name__}: {exc}",
            )  # fmt: skip
        text = body[:RESPONSE_KEEP].decode("utf-8", "replace")
        ok = 200 <= status < 300
        return UploadResult(
            job.id, job.url, job.path, ok, status, sent, time.perf_counter() - started,
            attempts, response=text, error=None if ok else f"HTTP {status}",
        )  # fmt: skip
    return UploadResult(
        job.id, job.url, job.path, False, status, 0, time.perf_counter() - started,
        attempts, error=f"gave up after {attempts} attempts: {last_error}",
    )  # fmt: skip


def read_log(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last entry of every job in a results log (a line cut short by a kill is ignored)."""
    entries: dict[str, dict[str, Any]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    entries[entry["key"]] = entry
    except FileNotFoundError:
        pass
    return entries


class _Log:
    """Appends one JSON line per finished job and fsyncs it before the job counts as done."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.file = None if path is None else open(path, "a+b")  # noqa: SIM115
        if self.file is not None and self.file.tell() > 0:
            # A run killed mid-write leaves a cut line: end it, so the next entry is whole.
            self.file.seek(-1, os.SEEK_END)
            if self.file.read(1) != b"\n":
                self.file.write(b"\n")

    def write(self, result: UploadResult) -> None:
        if self.file is None:
            return
        self.file.write((result.as_json() + "\n").encode("utf-8"))
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


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


class _Progress:
    """An overall bar on stderr: files, bytes, rate, ETA."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm  # noqa: PLC0415 - only when a bar is shown

            self.bar = tqdm(total=total, unit="file", desc="ship", dynamic_ncols=True)
        self.bytes = 0
        self.started = time.perf_counter()

    def update(self, result: UploadResult) -> None:
        self.bytes += result.bytes
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(
                f"{self.bytes / (1 << 20):.1f} MiB, {self.bytes / elapsed / (1 << 20):.1f} MiB/s",
                refresh=False,
            )
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
) -> Iterator[UploadResult]:
    """Uploads every job and yields one ``UploadResult`` per job as it finishes.

    ``jobs``: ``UploadJob``s, paths (uploaded to ``url`` as the part ``name`` with ``fields``)
    or forms. ``workers`` requests run at once, on ``executor`` if given (its own worker
    count then applies) or on a thread pool. ``log``: a JSON Lines results log; jobs it
    records as done are skipped (yielded with ``skipped=True``). ``progress``: a bar on stderr
    (default: when stderr is a terminal). ``callback(result)`` is called for every job.
    ``verify``: TLS verification (``False``, or a CA bundle path).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    field_pairs = tuple(fields.items() if isinstance(fields, Mapping) else fields)
    header_pairs = tuple(headers.items() if isinstance(headers, Mapping) else headers)
    policy = retry or RetryPolicy(retries=retries)
    options = _Options(timeout, policy, verify, expect_continue)
    done = {k for k, e in read_log(log).items() if e.get("ok")} if log is not None else set()
    job_list = [_as_job(j, url, name, field_pairs, method, header_pairs) for j in jobs]
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(show, len(job_list))
    results_log = _Log(log)
    own_executor = executor is None
    own_pools: list[_ConnectionPool] = []
    pool = executor or concurrent.futures.ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="poster-rs-ship",
        initializer=_register_pool,
        initargs=(own_pools, threading.Lock()),
    )
    window = max(workers, 1) * 4
    pending: dict[concurrent.futures.Future[UploadResult], UploadJob] = {}
    queue = iter(job_list)
    try:

        def finish(result: UploadResult) -> UploadResult:
            if not result.skipped:
                results_log.write(result)
            bar.update(result)
            if callback is not None:
                callback(result)
            return result

        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                job = next(queue, None)
                if job is None:
                    exhausted = True
                    break
                if job.id in done:
                    skipped = UploadResult(
                        job.id, job.url, job.path, True, None, 0, 0.0, 0, skipped=True
                    )
                    yield finish(skipped)
                    continue
                pending[pool.submit(run_job, job, options)] = job
            if not pending:
                break
            finished, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                job = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # a worker process died, a pickling error, ...
                    result = UploadResult(
                        job.id, job.url, job.path, False, None, 0, 0.0, 1,
                        error=f"{type(exc).__name__}: {exc}",
                    )  # fmt: skip
                yield finish(result)
    finally:
        for future in pending:
            future.cancel()
        if own_executor:
            pool.shutdown(wait=True, cancel_futures=True)
            for connections in own_pools:
                connections.close()
        results_log.close()
        bar.close()


def ship(jobs: Iterable[ShipJob], url: str | None = None, **options: Any) -> list[UploadResult]:
    """``ship_iter`` run to the end: the list of results, in completion order."""
    return list(ship_iter(jobs, url, **options))


def collect_files(paths: Iterable[str | os.PathLike[str]], pattern: str | None = None) -> list[str]:
    """Files named by ``paths``: files as given, directories walked recursively (sorted),
    keeping names that match the glob ``pattern`` (all when ``None``)."""
    out: list[str] = []
    for given in paths:
        path = os.fspath(given)
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for file_name in sorted(files):
                    if pattern is None or fnmatch.fnmatch(file_name, pattern):
                        out.append(os.path.join(root, file_name))
        elif pattern is None or fnmatch.fnmatch(os.path.basename(path), pattern):
            out.append(path)
    return out
