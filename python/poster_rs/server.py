"""``poster-rs serve``: a receiving server for multipart uploads, on aiohttp.web.

aiohttp's HTTP/1.1 parser (llhttp) does the framing, strictly: a malformed chunk size, junk in
place of a CRLF, a negative or non-numeric Content-Length, over-long header lines and too many
headers or trailers are answered 400 by the library. This module adds what a receiving server
facing hostile clients needs on top: a header timeout (a client must send its request head
within ``header_timeout`` seconds of connecting or of its previous answer) and a body idle
timeout, a capped number of connections and of uploads in progress, ``max_body`` on every
framing, limits on parts and part headers, an optional bearer token, a Host/Origin allow-list,
and files created safely under one directory (see ``_store``). Parsing happens on the event
loop; hashing and disk writes happen in worker threads, in blocks of about a megabyte.

The answer to an upload is JSON: ``path``, ``bytes``, ``seconds`` and ``parts`` (each part's
``name``, ``filename``, ``content_type``, ``size``, ``sha256``, and ``stored_as`` for a stored
file or ``value`` for a short text field). After the answer nothing of the request is kept but
two counters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from aiohttp import web

from ._form import BLOCK, DIGEST_INLINE_MAX, FormError, FormLimits, FormReceiver, ReceivedPart
from ._poster_rs import form_boundary
from ._store import UploadDirectory, safe_filename

__all__ = ["ReceivedPart", "UploadServer", "exposure_warning", "safe_filename"]

#: Names a server bound to a loopback address answers to unless told otherwise: a Host header
#: naming anything else is a DNS-rebinding attempt.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

_CLIENT_GONE = (ConnectionError, asyncio.IncompleteReadError)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (the ``cli`` extra installs it where it is
    available), asyncio's own otherwise. aiohttp received and hashed a 1 GiB upload here at
    611-710 MB/s on uvloop, 409-484 MB/s on asyncio's loop."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _host_name(value: str) -> str:
    """The host of a Host header (``name:port``, ``[v6]:port``), lower-case, without a final
    dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def exposure_warning(host: str, port: int, *, token: str | None, storing: bool) -> str | None:
    """The warning printed when the server listens beyond loopback without a token."""
    if _is_loopback(host) or token is not None:
        return None
    return (
        f"WARNING: poster-rs serve is listening on {host} port {port} without a token: anyone "
        f"who can reach it can upload{' and store files' if storing else ''}. "
        "Use --token (and --allow-host)."
    )


class _ClientErrorLog(logging.Handler):
    """aiohttp's log of failed requests: client mistakes (bad framing, early disconnects) are
    one line on stderr with ``verbose``, nothing otherwise; anything else is a bug and is
    printed with its traceback."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if (
            exc is None
            or isinstance(exc, (*_CLIENT_GONE, web.HTTPException, OSError))
            or (type(exc).__module__.startswith("aiohttp.http_exceptions"))
        ):
            if self.verbose:
                detail = f": {str(exc).strip().splitlines()[0]}" if exc is not None else ""
                print(f"poster-rs serve: {record.getMessage()}{detail}", file=sys.stderr)
            return
        print(logging.Formatter().format(record), file=sys.stderr, flush=True)


class _ListeningSite(web.BaseSite):
    """Serves on a socket bound beforehand; past ``max_connections`` open connections a new one
    is answered 503 and closed at once, so no client can exhaust descriptors or memory."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, max_connections: int) -> None:
        super().__init__(runner)
        self._sock = sock
        self._max_connections = max_connections
        self._refused: set[asyncio.BaseTransport] = set()

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        limit = self._max_connections

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= limit:
                return _Overloaded(self._refused)
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol, sock=self._sock)

    async def stop(self) -> None:
        for transport in list(self._refused):
            transport.close()
        await super().stop()


class _Overloaded(asyncio.Protocol):
    """A connection past the cap: answered 503, then closed."""

    ANSWER = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 34\r\n\r\n"
        b'{"error": "too many connections"}\n'
    )

    def __init__(self, open_ones: set[asyncio.BaseTransport]) -> None:
        self.open_ones = open_ones  # closed by the site when the server stops
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport).
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.open_ones.add(transport)
        transport.write(self.ANSWER)
        # Half-close and discard what the client sends for a moment: closing with its request
        # unread would reset the connection and could destroy the answer.
        transport.write_eof()
        asyncio.get_running_loop().call_later(1.0, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_ones.discard(self.transport)


def _json(
    status: int, payload: dict[str, Any], *, close: bool = False, **headers: str
) -> web.Response:
    response = web.Response(
        status=status,
        body=json.dumps(payload).encode("utf-8"),
        content_type="application/json",
        headers={key.replace("_", "-"): value for key, value in headers.items()},
    )
    if close:
        # Refused before its body was read: the connection cannot carry another request.
        response.force_close()
    return response


class UploadServer:
    """An HTTP server that accepts multipart uploads (POST or PUT), stores file parts under
    ``directory`` (if given) and answers with JSON describing every part.

    The socket is bound by the constructor (``OSError`` if it cannot be); ``start()`` serves in
    a background thread (also as a context manager), ``serve_forever()`` in this one.

    - ``max_body``: bodies over this many bytes are refused with 413 (before reading when the
      Content-Length says so, as soon as it is passed for a chunked body); nothing is stored.
    - ``max_parts``, ``max_part_header``: parts per request, bytes of header lines per part
      (413 past either).
    - ``token``: requests must carry ``Authorization: Bearer <token>`` (401 otherwise).
    - ``allow_hosts``: the names the Host header (and an Origin header, if sent) may carry
      (403 otherwise); bound to a loopback address, the default is localhost, 127.0.0.1 and ::1.
    - ``header_timeout``: seconds a client has to send its request head, from connecting or
      from its previous answer; ``read_timeout``: seconds a body may send nothing.
    - ``max_connections``: open connections at once; ``max_uploads``: bodies being received at
      once (a further upload waits up to ``read_timeout``, then gets 503).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        directory: str | os.PathLike[str] | None = None,
        *,
        max_body: int | None = None,
        max_parts: int = FormLimits.max_parts,
        max_part_header: int = FormLimits.max_part_header,
        token: str | None = None,
        allow_hosts: Iterable[str] | None = None,
        header_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_connections: int = 512,
        max_uploads: int = 32,
        backlog: int = 512,
        print_parts: bool = False,
        verbose: bool = False,
    ) -> None:
        self.max_body = max_body
        self.limits = FormLimits(max_parts=max_parts, max_part_header=max_part_header)
        self.token = token
        self.header_timeout = header_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_uploads = max_uploads
        self.print_parts = print_parts
        self.verbose = verbose
        self.received_count = 0  # uploads answered 200
        self.bytes_received = 0
        self._print_lock = threading.Lock()
        self.store = None if directory is None else UploadDirectory(directory)
        self.directory = None if self.store is None else self.store.path
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self.socket = socket.create_server((host, port), family=family, backlog=backlog)
        except BaseException:
            if self.store is not None:
                self.store.close()
            raise
        self.socket.setblocking(False)
        bound = self.socket.getsockname()[0]
        if allow_hosts is not None:
            self.allow_hosts: frozenset[str] | None = frozenset(_host_name(h) for h in allow_hosts)
        elif _is_loopback(bound):
            self.allow_hosts = frozenset(LOOPBACK_NAMES)
        else:
            self.allow_hosts = None
        warning = exposure_warning(
            bound, self.socket.getsockname()[1], token=token, storing=directory is not None
        )
        if warning is not None:
            print(warning, file=sys.stderr, flush=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(max_uploads, 8), thread_name_prefix="poster-rs-serve-io"
        )
        self._uploads: asyncio.Semaphore | None = None
        self._receiving = 0  # uploads being received now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    # --- running ----------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle, expect_handler=self._expect)
        return app

    async def _serve(self, ready: threading.Event | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._uploads = asyncio.Semaphore(self.max_uploads)
        # Loggers of this server only, not registered with logging (nothing outlives it).
        log = logging.Logger("poster_rs.serve")
        log.addHandler(_ClientErrorLog(self.verbose))
        access = logging.Logger("poster_rs.serve.access", logging.INFO)
        if self.verbose:
            access.addHandler(logging.StreamHandler(sys.stderr))
        runner = web.AppRunner(
            self._app(),
            handle_signals=False,
            logger=log,
            access_log=access if self.verbose else None,
            # The idle timeout between requests also bounds the time to send a request head,
            # from the moment of connecting: a slowloris client is dropped after it.
            keepalive_timeout=self.header_timeout,
            # Seconds spent reading and discarding the rest of a refused body, so that the
            # answer is read before the connection closes.
            lingering_time=2.0,
            read_bufsize=BLOCK,
        )
        await runner.setup()
        try:
            await _ListeningSite(runner, self.socket, self.max_connections).start()
            if ready is not None:
                ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> UploadServer:
        """Serves in a background thread; returns self once it accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=new_event_loop) as runner:
                    runner.run(self._serve(ready))
            except BaseException as exc:  # reported by start() or stop()
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="poster-rs-serve", daemon=True)
        self._thread.start()
        if not ready.wait(30) or failure:
            self.stop()
            cause = failure[0] if failure else None
            raise RuntimeError("poster-rs serve did not start") from cause
        return self

    def serve_forever(self) -> None:
        """Serves in this thread until ``stop()`` is called from another one (or Ctrl-C)."""
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(self._serve(None))
        finally:
            self.close()

    def stop(self) -> None:
        """Stops serving and releases everything. Called for a background server (``start``),
        it waits up to 10 s for its thread; for ``serve_forever`` in another thread, it tells
        that loop to finish (which then releases everything itself)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just finished
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=10)
            self.close()
        elif loop is None:
            self.close()  # never served

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.socket.close()
        self._pool.shutdown(wait=True)
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> UploadServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- hooks (a test server adds fault injection and a log of requests with these) ---------

    def record(self, path: str, parts: list[dict[str, Any]], size: int) -> None:
        """Called on the event loop for every upload answered 200: counts it, and prints its
        parts when ``print_parts`` is set."""
        self.received_count += 1
        self.bytes_received += size
        if self.print_parts:
            self._print("\n".join(_describe(part) for part in parts))

    def _print(self, lines: str) -> None:
        """Prints one request's lines together; a stdout that cannot take them (a closed pipe,
        an encoding without these characters) costs the lines, never the upload."""
        with self._print_lock:
            try:
                print(lines, flush=True)
            except UnicodeEncodeError:
                encoding = sys.stdout.encoding or "ascii"
                with contextlib.suppress(OSError):
                    print(lines.encode(encoding, "backslashreplace").decode(encoding), flush=True)
            except OSError:  # e.g. `poster-rs serve | head`: the reader is gone
                self.print_parts = False

    async def body_chunks(self, request: web.Request) -> AsyncIterator[bytes]:
        """The request body as it arrives; ``TimeoutError`` once it has sent nothing for
        ``read_timeout`` seconds while waited for."""
        content = request.content
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        # One timer for the whole body, re-armed only when it fires: an asyncio.timeout around
        # every chunk (16,000 a GiB) cost 5 us each, more than parsing the chunk.
        waiting_since: float | None = None
        expired = False
        timer: asyncio.TimerHandle

        def check() -> None:
            nonlocal expired, timer
            if waiting_since is not None and loop.time() - waiting_since >= self.read_timeout:
                expired = True
                task.cancel()
            else:
                start = loop.time() if waiting_since is None else waiting_since
                timer = loop.call_at(start + self.read_timeout, check)

        timer = loop.call_at(loop.time() + self.read_timeout, check)
        try:
            while True:
                waiting_since = loop.time()
                try:
                    # readchunk hands over the buffers aiohttp received one by one; readany
                    # would join whatever is waiting into a new bytes object, a copy.
                    chunk, _ = await content.readchunk()
                except asyncio.CancelledError:
                    if expired and task.uncancel() == 0:
                        raise TimeoutError from None
                    raise
                waiting_since = None
                if chunk:
                    yield chunk
                elif content.at_eof():
                    return
        finally:
            timer.cancel()

    async def handle_upload(self, request: web.Request) -> web.StreamResponse:
        """Receives one upload that passed the checks made on its head."""
        boundary = _boundary(request)
        assert boundary is not None  # checked by _refusal
        try:
            receiver = FormReceiver(boundary, self.store, self.limits)
        except FormError as exc:
            return _json(exc.status, {"error": exc.message}, close=True)
        assert self._uploads is not None
        try:
            async with asyncio.timeout(self.read_timeout):
                await self._uploads.acquire()
        except TimeoutError:
            return _json(503, {"error": "too many uploads at once"}, close=True, Retry_After="1")
        self._receiving += 1
        try:
            return await self._receive(request, receiver)
        finally:
            self._receiving -= 1
            self._uploads.release()

    # --- requests ----------------------------------------------------------------------------

    def _refusal(self, request: web.BaseRequest) -> web.Response | None:
        """The answer to a request refused on its head alone, or None."""
        if self.allow_hosts is not None:
            host = _host_name(request.headers.get("Host", ""))
            if host not in self.allow_hosts:
                return _json(403, {"error": f"Host {host!r} is not allowed"}, close=True)
            origin = request.headers.get("Origin")
            if origin is not None:
                try:
                    origin_host = urllib.parse.urlsplit(origin).hostname or origin
                except ValueError:  # "http://[::1" and the like
                    origin_host = origin
                if _host_name(origin_host) not in self.allow_hosts:
                    return _json(403, {"error": f"Origin {origin!r} is not allowed"}, close=True)
        if self.token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("utf-8", "replace"), self.token.encode("utf-8")
            ):
                return _json(
                    401, {"error": "a valid bearer token is required"}, close=True,
                    WWW_Authenticate='Bearer realm="poster-rs serve"',
                )  # fmt: skip
        if request.method in ("GET", "HEAD"):
            return None
        if request.method not in ("POST", "PUT"):
            return _json(405, {"error": f"{request.method} is not allowed"}, close=True,
                         Allow="GET, HEAD, POST, PUT")  # fmt: skip
        length = request.content_length
        if self.max_body is not None and length is not None and length > self.max_body:
            return _json(
                413, {"error": f"body too large: {length} bytes, over the {self.max_body}-byte"
                      " limit"}, close=True,
            )  # fmt: skip
        if _boundary(request) is None:
            return _json(415, {"error": "expected multipart/form-data with a boundary"}, close=True)
        return None

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: a request that would be refused is refused before its body
        is sent; otherwise the client is told to go on."""
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _json(417, {"error": "only Expect: 100-continue is understood"}, close=True)
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if request.method in ("GET", "HEAD"):
            return _json(200, {"server": "poster-rs serve", "received": self.received_count})
        return await self.handle_upload(request)

    async def _receive(self, request: web.Request, receiver: FormReceiver) -> web.StreamResponse:
        started = time.perf_counter()
        received = 0
        # The batch being hashed and written while the next one is read and parsed; a batch is
        # handed over only once the previous one is done.
        batch: list[concurrent.futures.Future[None]] = []

        def hand_over() -> list[concurrent.futures.Future[None]]:
            size = receiver.pending
            work = receiver.take_work()
            # Where a batch is digested and written, chosen by measurement (2 cores, curl
            # alongside, 1 GiB, alternating runs). A lone upload that stores nothing is hashed
            # on the event loop, the GIL released while hashing: 775-836 MB/s, against 654-766
            # in a worker, whose thread and GIL hand-overs cost 0.2-0.3 s of CPU a GiB, and
            # 542-847 (median 694 against 800) on a hashing thread per part. One that stores
            # files is digested and written by one worker, batch after batch, a part that goes
            # on past its batch hashed on a thread of its own: 565-728 MB/s, against 498-562
            # hashed by the writing worker. Beside other uploads, the loop stays free.
            alone = self._receiving == 1
            if size <= DIGEST_INLINE_MAX or (alone and not receiver.has_files):
                receiver.digest(work, hash_aside=receiver.has_files or not alone)
                if receiver.has_files:
                    return [self._pool.submit(receiver.store_files, work)]
                return []
            if receiver.has_files:
                return [self._pool.submit(receiver.digest_and_store, work)]
            return [self._pool.submit(receiver.digest, work)]

        try:
            async for chunk in self.body_chunks(request):
                received += len(chunk)
                if self.max_body is not None and received > self.max_body:
                    raise FormError(413, f"body too large: over the {self.max_body}-byte limit")
                receiver.feed(chunk)
                if receiver.pending >= BLOCK:
                    await _finished(batch)
                    batch = hand_over()
            receiver.finalize()
            await _finished(batch)
            batch = hand_over()
            await _finished(batch)
        except FormError as exc:
            await self._abort(receiver, batch)
            return _json(exc.status, {"error": exc.message}, close=True)
        except TimeoutError:
            await self._abort(receiver, batch)
            return _json(408, {"error": f"no body data for {self.read_timeout} s"}, close=True)
        except _CLIENT_GONE:
            await self._abort(receiver, batch)
            raise  # aiohttp drops the connection quietly
        except OSError as exc:  # the file system: full, read-only, ...
            await self._abort(receiver, batch)
            return _json(507, {"error": f"cannot store the upload: {exc}"}, close=True)
        except BaseException:
            # Cancelled (the server is stopping) or a bug: still leave no partial file, and
            # close no descriptor a worker may still write to.
            concurrent.futures.wait(batch)
            receiver.abort()
            raise
        elapsed = time.perf_counter() - started
        parts = [part.as_dict() for part in receiver.parts]
        self.record(request.path_qs, parts, received)
        return _json(
            200, {"path": request.path_qs, "bytes": received, "seconds": elapsed, "parts": parts}
        )

    async def _abort(
        self, receiver: FormReceiver, batch: list[concurrent.futures.Future[None]]
    ) -> None:
        """Removes a failed upload's files once no worker touches them any more."""
        with contextlib.suppress(Exception):
            await _finished(batch)
        await asyncio.get_running_loop().run_in_executor(self._pool, receiver.abort)


async def _finished(batch: list[concurrent.futures.Future[None]]) -> None:
    """Waits until every job of ``batch`` has ended, then raises the first failure."""
    if batch:
        await asyncio.wait([asyncio.wrap_future(job) for job in batch])
        for job in batch:
            job.result()


def _boundary(request: web.BaseRequest) -> bytes | None:
    """The boundary of a ``multipart/form-data`` request, as sent; None for another type."""
    # Read from the raw bytes: a header value is not text, and one with non-Latin-1 bytes must
    # end in a refusal, not in an encoding error.
    raw = next((v for k, v in request.raw_headers if k.lower() == b"content-type"), b"")
    return form_boundary(raw)


def _describe(part: dict[str, Any]) -> str:
    what = f"file {part['filename']!r}" if part["filename"] is not None else "field"
    return f"{part['name']!r}: {what}, {part['size']} bytes, sha256 {part['sha256']}"
