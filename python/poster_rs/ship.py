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
"""

from __future__ import annotations

import base64
import concurrent.futures
import email.utils
import errno
import fnmatch
import functools
import hashlib
import http.client
import json
import os
import pathlib
import random
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._deadline import Deadline, schedule
from ._poster_rs import FileChangedError, NotSeekableError
from ._results_log import ResultsLog, iter_entries, read_done
from .encode import multipart_encode
from .streaminghttp import StreamingHTTPConnection, StreamingHTTPSConnection

__all__ = [
    "RetryPolicy",
    "UploadJob",
    "UploadResult",
    "collect_files",
    "read_done",
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
        # ASCII only: a kill can cut the line, but never inside a character.
        return json.dumps(data, ensure_ascii=True)


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
    #: Seconds one attempt may take as a whole (connect, send, answer), or None.
    deadline: float | None = None
    #: ``urllib.request.getproxies()``-style mapping: scheme → proxy URL, ``"no"`` → bypass list.
    proxies: Mapping[str, str] = field(default_factory=dict)


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


#: errno values of failures on the way to the server, worth another try.
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH",
        "ENETUNREACH", "ENETDOWN", "ENETRESET", "EHOSTDOWN", "EADDRNOTAVAIL", "ENOTCONN",
        "ESHUTDOWN", "EPROTO",
    )
    if hasattr(errno, name)
)  # fmt: skip


def _is_network_error(exc: BaseException) -> bool:
    """Whether a failed attempt failed on the network (retry) rather than on the job's own data
    (a file missing, unreadable or changed: report at once, another try would fail the same)."""
    if isinstance(exc, http.client.HTTPException):
        return True
    if not isinstance(exc, OSError) or isinstance(exc, (FileChangedError, NotSeekableError)):
        return False
    if exc.filename is not None:  # errors of files carry their path, socket errors never do
        return False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False  # a certificate will not verify on the next attempt either
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror, ssl.SSLError)):
        return True
    return exc.errno in _NETWORK_ERRNOS


@dataclass(frozen=True)
class _Route:
    """How requests for one (scheme, host, port) travel: straight, or through an HTTP proxy
    (plain HTTP in absolute form; HTTPS in a CONNECT tunnel)."""

    scheme: str
    host: str
    port: int
    proxy: tuple[str, int] | None = None
    proxy_headers: tuple[tuple[str, str], ...] = ()

    def target(self, url: urllib.parse.SplitResult) -> str:
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        if self.proxy is not None and self.scheme == "http":
            netloc = url.netloc.rpartition("@")[2]
            return f"http://{netloc}{path}"
        return path

    def connect(self, options: _Options) -> http.client.HTTPConnection:
        timeout = options.timeout
        if options.deadline is not None:
            timeout = min(timeout, options.deadline)
        host, port = self.proxy or (self.host, self.port)
        if self.scheme == "http":
            return StreamingHTTPConnection(host, port, timeout=timeout)
        context = ssl.create_default_context(
            cafile=options.verify if isinstance(options.verify, str) else None
        )
        if options.verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = StreamingHTTPSConnection(host, port, timeout=timeout, context=context)
        if self.proxy is not None:
            conn.set_tunnel(self.host, self.port, headers=dict(self.proxy_headers))
        return conn


def _bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """``NO_PROXY`` as curl and requests read it: ``*``, or comma-separated names that match
    the host or a domain it is in (a leading dot optional), optionally with ``:port``."""
    host = host.lower()
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".").strip("[]")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _route(url: urllib.parse.SplitResult, proxies: Mapping[str, str]) -> _Route:
    if url.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {url.scheme!r} in {url.geturl()!r}")
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy_url = proxies.get(url.scheme)
    if not proxy_url or _bypasses_proxy(host, port, proxies.get("no", "")):
        return _Route(url.scheme, host, port)
    proxy = urllib.parse.urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
    if proxy.scheme != "http" or not proxy.hostname:
        raise ValueError(f"unsupported proxy {proxy_url!r}: only http://host:port proxies")
    headers: tuple[tuple[str, str], ...] = ()
    if proxy.username is not None:
        user = urllib.parse.unquote(proxy.username)
        password = urllib.parse.unquote(proxy.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers = (("Proxy-Authorization", f"Basic {token}"),)
    return _Route(url.scheme, host, port, (proxy.hostname, proxy.port or 80), headers)


class _ConnectionPool:
    """Keep-alive connections of one worker thread, one per route."""

    def __init__(self) -> None:
        self.connections: dict[_Route, http.client.HTTPConnection] = {}
        self.routes: dict[tuple[str, str], _Route] = {}

    def route(self, url: urllib.parse.SplitResult, options: _Options) -> _Route:
        key = (url.scheme, url.netloc)
        route = self.routes.get(key)
        if route is None:
            route = self.routes[key] = _route(url, options.proxies)
        return route

    def get(self, route: _Route, options: _Options) -> http.client.HTTPConnection:
        conn = self.connections.get(route)
        if conn is None:
            conn = self.connections[route] = route.connect(options)
        return conn

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()

    # A worker thread of a caller's executor drops its pool when the thread ends.
    __del__ = close

    def discard(self, route: _Route) -> None:
        conn = self.connections.pop(route, None)
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


def _cut_off(conn: http.client.HTTPConnection) -> None:
    """Shuts the connection's socket down from the deadline thread: a blocked send or recv
    returns at once. The raw socket's shutdown, not SSLSocket's, which would drop its TLS state
    under the worker's feet."""
    sock = getattr(conn.sock, "_sock", conn.sock)  # a _PrefixedSocket wraps the real one
    if isinstance(sock, socket.socket):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _attempt(job: UploadJob, options: _Options) -> tuple[int, int, bytes]:
    """One try: returns ``(status, body bytes sent, response body)`` or raises ``_RetryableError``
    for what deserves another try."""
    url = urllib.parse.urlsplit(job.url)
    pool = _pool()
    route = pool.route(url, options)
    target = route.target(url)
    # Encoded afresh for every attempt: a retry never sends from a consumed stream, and a file
    # that changed since the last attempt is measured again.
    stream, headers = multipart_encode(job.params())
    headers.update(dict(job.headers))
    if route.scheme == "http":
        headers.update(dict(route.proxy_headers))
    if options.expect_continue:
        headers.setdefault("Expect", "100-continue")
    with stream:
        for first_try in (True, False):
            conn = pool.get(route, options)
            reused = conn.sock is not None
            watch: Deadline | None = None
            if options.deadline is not None:
                watch = schedule(options.deadline, functools.partial(_cut_off, conn))
            try:
                conn.request(job.method, target, body=stream, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except BaseException as exc:
                if watch is not None:
                    watch.cancel()
                # Left mid-request, the connection would break the worker's next job.
                pool.discard(route)
                if watch is not None and watch.expired:
                    raise _RetryableError(
                        f"deadline of {options.deadline:g} s exceeded ({type(exc).__name__})"
                    ) from exc
                if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    if reused and first_try:
                        # The server had closed the kept-alive connection: once more, on a new one.
                        stream.seek(0)
                        continue
                    raise _RetryableError(f"connection lost: {exc}") from exc
                if _is_network_error(exc):
                    raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
                raise
            if watch is not None:
                watch.cancel()
                if watch.expired:  # fired as the answer came in: the socket is shut down
                    pool.discard(route)
            if response.will_close:
                pool.discard(route)
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
            # The job itself is wrong (missing or unreadable file, bad URL): retrying cannot help.
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
    """The last entry of every job in a results log (a line cut short by a kill is ignored).
    Holds every entry in memory: to resume, ``read_done`` keeps only the done keys."""
    return {entry["key"]: entry for entry in iter_entries(path)}


def _as_job(item: Any, url: str | None, name: str, fields: tuple[tuple[str, str], ...],
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
    jobs: Iterable[Any],
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
) -> Generator[UploadResult, None, None]:
    """Uploads every job and yields one ``UploadResult`` per job as it finishes.

    ``jobs``: ``UploadJob``s, paths (uploaded to ``url`` as the part ``name`` with ``fields``)
    or forms. ``workers`` requests run at once, on ``executor`` if given (its own worker
    count then applies) or on a thread pool. ``log``: a JSON Lines results log; jobs it
    records as done are skipped (yielded with ``skipped=True``). ``progress``: a bar on stderr
    (default: when stderr is a terminal). ``callback(result)`` is called for every job.
    ``verify``: TLS verification (``False``, or a CA bundle path). ``deadline``: seconds one
    attempt may take as a whole, however the server trickles (``timeout`` bounds each socket
    operation). ``proxies``: scheme → ``http://[user:pass@]host:port``, ``"no"`` → hosts that
    bypass it; ``None`` (default) reads ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY``, ``{}``
    uses none.

    The log is locked while the run holds it: a second run given the same log raises
    ``BlockingIOError`` before it sends anything.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if deadline is not None and not deadline > 0:
        raise ValueError("deadline must be a positive number of seconds")
    field_pairs = tuple(fields.items() if isinstance(fields, Mapping) else fields)
    header_pairs = tuple(headers.items() if isinstance(headers, Mapping) else headers)
    policy = retry or RetryPolicy(retries=retries)
    if proxies is None:
        proxies = urllib.request.getproxies()
    options = _Options(timeout, policy, verify, expect_continue, deadline, dict(proxies))
    job_list = [_as_job(j, url, name, field_pairs, method, header_pairs) for j in jobs]
    # Locked before it is read: a second run sharing the log fails here, having sent nothing.
    results_log = ResultsLog(log) if log is not None else None
    done = results_log.done_keys() if results_log is not None else set()
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(show, len(job_list))
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
            if not result.skipped and results_log is not None:
                results_log.write(result.as_json())
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
        if results_log is not None:
            results_log.close()
        bar.close()


def ship(jobs: Iterable[Any], url: str | None = None, **options: Any) -> list[UploadResult]:
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
