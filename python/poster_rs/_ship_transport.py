"""How a shipping job's request travels: routes (straight, or through an HTTP proxy from the
environment), per-thread keep-alive connection pools of poster_rs's own streaming connection
classes, an overall deadline per attempt, and which failures are the network's (worth another
try) rather than the job's own.
"""

from __future__ import annotations

import base64
import email.utils
import errno
import functools
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._throttle import ThrottledBody, shared_limiter
from ._watchdog import Alarm, schedule
from .encode import multipart_encode
from .errors import FileChangedError, NotSeekableError
from .streaminghttp import StreamingHTTPConnection, StreamingHTTPSConnection

__all__ = [
    "ConnectionPool",
    "Response",
    "RetryableError",
    "Transport",
    "is_network_error",
    "parse_retry_after",
    "register_pool",
    "send",
    "thread_pool",
]


@dataclass(frozen=True)
class Transport:
    """Connection settings of a run (picklable: sent to process-pool and Dask workers)."""

    timeout: float
    verify: bool | str
    expect_continue: bool
    #: Seconds one attempt may take as a whole (connect, send, answer), or None.
    deadline: float | None = None
    #: ``urllib.request.getproxies()``-style mapping: scheme → proxy URL, ``"no"`` → bypass list.
    proxies: Mapping[str, str] = field(default_factory=dict)
    #: Bytes per second for all the sends of this process, or None.
    limit_rate: float | None = None


@dataclass(frozen=True)
class Response:
    """What one attempt got back."""

    status: int
    reason: str
    retry_after: str | None
    #: Body bytes sent, and where each part starts in the body (plus the closing delimiter).
    sent: int
    part_starts: list[int]
    body: bytes


class RetryableError(Exception):
    """A failure on the network or a retryable answer: worth another attempt."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
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


def is_network_error(exc: BaseException) -> bool:
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

    def connect(self, options: Transport) -> http.client.HTTPConnection:
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


class ConnectionPool:
    """Keep-alive connections of one worker thread, one per route."""

    def __init__(self) -> None:
        self.connections: dict[_Route, http.client.HTTPConnection] = {}
        self.routes: dict[tuple[str, str], _Route] = {}

    def route(self, url: urllib.parse.SplitResult, options: Transport) -> _Route:
        key = (url.scheme, url.netloc)
        route = self.routes.get(key)
        if route is None:
            route = self.routes[key] = _route(url, options.proxies)
        return route

    def get(self, route: _Route, options: Transport) -> http.client.HTTPConnection:
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


def _forget_in_child() -> None:
    """A forked child must not send on its parent's sockets: its pools start empty."""
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_in_child)


def thread_pool() -> ConnectionPool:
    """The calling thread's connection pool."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = ConnectionPool()
    return pool


def register_pool(pools: list[ConnectionPool], lock: threading.Lock) -> None:
    """Thread initializer of ship()'s own executor: its pools are closed when the run ends."""
    with lock:
        pools.append(thread_pool())


def _cut_off(conn: http.client.HTTPConnection) -> None:
    """Shuts the connection's socket down from the deadline thread: a blocked send or recv
    returns at once. The raw socket's shutdown, not SSLSocket's, which would drop its TLS state
    under the worker's feet."""
    sock = getattr(conn.sock, "_sock", conn.sock)  # a _PrefixedSocket wraps the real one
    if isinstance(sock, socket.socket):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def send(
    method: str,
    url_text: str,
    params: list[Any],
    headers: Mapping[str, str],
    transport: Transport,
    cb: Callable[[Any, int, Any], object] | None = None,
) -> Response:
    """One attempt: encodes ``params`` afresh (a retry never sends from a consumed stream, and a
    file that changed since the last attempt is measured again), sends it on the thread's pooled
    connection and reads the answer. Raises ``RetryableError`` for network failures; errors of
    the data itself (``OSError`` of a file, ``ValueError``, ...) propagate as they are."""
    url = urllib.parse.urlsplit(url_text)
    pool = thread_pool()
    route = pool.route(url, transport)
    target = route.target(url)
    stream, request_headers = multipart_encode(params, cb=cb)
    request_headers.update(headers)
    if route.scheme == "http":
        request_headers.update(dict(route.proxy_headers))
    if transport.expect_continue:
        request_headers.setdefault("Expect", "100-continue")
    body: Any = stream
    if transport.limit_rate is not None:
        body = ThrottledBody(stream, shared_limiter(transport.limit_rate))
    with stream:
        for first_try in (True, False):
            conn = pool.get(route, transport)
            reused = conn.sock is not None
            watch: Alarm | None = None
            if transport.deadline is not None:
                watch = schedule(transport.deadline, functools.partial(_cut_off, conn))
            try:
                conn.request(method, target, body=body, headers=request_headers)
                response = conn.getresponse()
                body = response.read()
            except BaseException as exc:
                if watch is not None:
                    watch.cancel()
                # Left mid-request, the connection would break the worker's next job.
                pool.discard(route)
                if watch is not None and watch.expired:
                    raise RetryableError(
                        f"deadline of {transport.deadline:g} s exceeded ({type(exc).__name__})"
                    ) from exc
                if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    if reused and first_try:
                        # The server had closed the kept-alive connection: once more, on a new one.
                        stream.seek(0)
                        continue
                    raise RetryableError(f"connection lost: {exc}") from exc
                if is_network_error(exc):
                    raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
                raise
            if watch is not None:
                watch.cancel()
                if watch.expired:  # fired as the answer came in: the socket is shut down
                    pool.discard(route)
            if response.will_close:
                pool.discard(route)
            sent = stream.total or stream.tell()
            return Response(
                response.status,
                response.reason,
                response.getheader("Retry-After"),
                sent,
                list(stream.part_starts or ()),
                body,
            )
    raise RetryableError("connection lost")
