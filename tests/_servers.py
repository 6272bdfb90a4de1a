"""Real HTTP servers on 127.0.0.1 for the upload tests, and the payload they check.

- ``WerkzeugServer``: a WSGI app on werkzeug's threaded dev server (optionally HTTPS) that parses
  uploads with ``request.form`` / ``request.files``, and has ``/redirect/<code>?to=URL``,
  ``/auth`` (HTTP Basic) and ``/proxy-auth`` (407 + Proxy-Authorization) routes;
- ``AiohttpServer``: an ``aiohttp.web`` app in a thread with its own event loop, parsing with
  ``await request.post()``;
- ``ThreadedUploadServer``: ``poster_rs.server.UploadServer`` (the Rust core's parser);
- ``RawServer``: a socket server whose connections are handled by a test's function, for the
  behaviours no framework shows (early answers, dropped connections, ``Expect`` handling).

Every server binds 127.0.0.1 on an ephemeral port, runs in a daemon thread and is stopped with
bounded joins (the fixtures that start them are in ``_fixtures``). Parsing servers answer
with a JSON *record* (also kept in ``.requests``):
``method``, ``path``, ``headers`` (lower-case names), ``fields`` ``[[name, value]]``, ``files``
``[[name, filename, content_type, size, sha256]]`` and ``body_bytes``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import poster_rs
import trustme
from poster_rs.server import UploadServer

MiB = 1 << 20
#: Every client call in these tests uses this socket timeout: a hang fails, it never blocks.
TIMEOUT = 20.0
USER, PASSWORD = "alice", "s3cret"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


# --- the payload ------------------------------------------------------------------------------


@dataclass
class FilePart:
    name: str
    filename: str
    content_type: str
    path: Path
    size: int
    sha256: str


@dataclass
class Payload:
    """Text fields and files on disk: what every upload sends and every server must report."""

    fields: list[tuple[str, str]]
    files: list[FilePart]

    def params(self) -> list[poster_rs.MultipartParam]:
        out = [poster_rs.MultipartParam(name, value) for name, value in self.fields]
        for part in self.files:
            param = poster_rs.MultipartParam.from_file(part.name, str(part.path))
            param.filename = part.filename
            param.filetype = part.content_type
            out.append(param)
        return out

    def encode(self) -> tuple[Any, dict[str, str]]:
        return poster_rs.multipart_encode(self.params())

    def expected(self) -> tuple[list[list[Any]], list[list[Any]]]:
        fields = sorted([name, value] for name, value in self.fields)
        files = sorted([p.name, p.filename, p.content_type, p.size, p.sha256] for p in self.files)
        return fields, files

    @property
    def file_bytes(self) -> int:
        return sum(p.size for p in self.files)


def make_payload(root: Path, sizes: tuple[int, ...]) -> Payload:
    root.mkdir(parents=True, exist_ok=True)
    fields = [
        ("title", "poster_rs ✓ — résumé"),
        ("count", "42"),
        ("empty", ""),
        ("multi", "line one\r\nline two"),
    ]
    files = []
    text = b"hello, world\n" * 50
    notes = root / "notes.txt"
    notes.write_bytes(text)
    files.append(FilePart("notes", "notes.txt", "text/plain", notes, len(text), sha256(text)))
    for index, size in enumerate(sizes):
        data = os.urandom(size)
        path = root / f"blob{index}.bin"
        path.write_bytes(data)
        files.append(
            FilePart(
                f"blob{index}",
                f"blob{index}.bin",
                "application/octet-stream",
                path,
                size,
                sha256(data),
            )
        )
    return Payload(fields, files)


def check_upload(record: dict[str, Any], payload: Payload) -> None:
    """Every field value and every file's name, filename, type, size and SHA-256."""
    fields, files = payload.expected()
    assert sorted(record["fields"]) == fields, (record["fields"], fields)
    got_files = sorted(
        [name, filename, (ctype or "").split(";")[0].strip(), size, digest]
        for name, filename, ctype, size, digest in record["files"]
    )
    assert got_files == files, (got_files, files)


def upload_server_record(reply: dict[str, Any]) -> dict[str, Any]:
    """``UploadServer``'s JSON answer in the record shape of the other servers."""
    fields = [[p["name"], p["value"]] for p in reply["parts"] if p["filename"] is None]
    files = [
        [p["name"], p["filename"], p["content_type"], p["size"], p["sha256"]]
        for p in reply["parts"]
        if p["filename"] is not None
    ]
    return {"fields": fields, "files": files, "body_bytes": reply["bytes"]}


# --- TLS ----------------------------------------------------------------------------------------


@dataclass
class TLS:
    ca: trustme.CA
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    ca_file: Path


# --- werkzeug -----------------------------------------------------------------------------------


def _werkzeug_app(server: WerkzeugServer) -> Callable[..., Any]:
    from werkzeug.wrappers import Request, Response

    def json_response(record: dict[str, Any], status: int = 200, **headers: str) -> Response:
        return Response(
            json.dumps(record), status=status, headers=headers, content_type="application/json"
        )

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "request_uri": environ.get("REQUEST_URI", ""),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "fields": [],
            "files": [],
        }
        server.requests.append(record)
        path = request.path
        challenge = None
        if path == "/auth":
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                challenge = (401, "WWW-Authenticate")
        elif path == "/proxy-auth":
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if request.headers.get("Proxy-Authorization") != expected:
                challenge = (407, "Proxy-Authenticate")
        if path.startswith("/redirect/") or challenge is not None or request.method == "GET":
            # Read the whole body (closing with unread input would reset the connection).
            body = request.get_data(cache=False)
            record["body_bytes"] = len(body)
            record["body_sha256"] = sha256(body)
            if challenge is not None:
                code, header = challenge
                return json_response(record, code, **{header: 'Basic realm="poster"'})(
                    environ, start_response
                )
            if path.startswith("/redirect/"):
                code = int(path.rsplit("/", 1)[1])
                return json_response(record, code, Location=request.args["to"])(
                    environ, start_response
                )
            return json_response(record)(environ, start_response)
        for name, value in request.form.items(multi=True):
            record["fields"].append([name, value])
        for name, storage in request.files.items(multi=True):
            digest = hashlib.sha256()
            size = 0
            while block := storage.stream.read(MiB):
                digest.update(block)
                size += len(block)
            storage.close()
            record["files"].append(
                [name, storage.filename, storage.content_type, size, digest.hexdigest()]
            )
        record["body_bytes"] = request.content_length
        return json_response(record)(environ, start_response)

    return app


class WerkzeugServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log(self, type: str, message: str, *args: Any) -> None:
                pass

        self.requests: list[dict[str, Any]] = []
        self.scheme = "https" if ssl_context is not None else "http"
        self.server = make_server(
            "127.0.0.1",
            0,
            _werkzeug_app(self),
            threaded=True,
            request_handler=QuietHandler,
            ssl_context=ssl_context,
        )
        self.port = self.server.server_address[1]
        self.url = f"{self.scheme}://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> WerkzeugServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# --- aiohttp.web --------------------------------------------------------------------------------


class AiohttpServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: Any = None

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "fields": [],
            "files": [],
        }
        self.requests.append(record)
        if request.method == "GET":
            body = await request.read()
            record["body_bytes"] = len(body)
            return web.json_response(record)
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                digest = hashlib.sha256()
                size = 0
                while block := value.file.read(MiB):
                    digest.update(block)
                    size += len(block)
                value.file.close()
                record["files"].append(
                    [name, value.filename, value.content_type, size, digest.hexdigest()]
                )
            else:
                record["fields"].append([name, value])
        record["body_bytes"] = request.content_length
        return web.json_response(record)

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"

    def __enter__(self) -> AiohttpServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.runner is not None:
                asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(
                    timeout=10
                )
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            self.loop.close()


# --- poster_rs.server.UploadServer --------------------------------------------------------------


class ThreadedUploadServer:
    def __init__(self, directory: str | None = None, **kwargs: Any) -> None:
        self.server = UploadServer("127.0.0.1", 0, directory, **kwargs)
        self.url = self.server.url

    def __enter__(self) -> ThreadedUploadServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


# --- raw sockets --------------------------------------------------------------------------------


@dataclass
class Head:
    method: str
    target: str
    headers: dict[str, str]
    rest: bytes  # body bytes read together with the head


def read_head(conn: socket.socket, limit: int = 65536) -> Head:
    data = b""
    while b"\r\n\r\n" not in data:
        block = conn.recv(4096)
        if not block:
            raise ConnectionError(f"closed before the end of the head: {data!r}")
        data += block
        if len(data) > limit:
            raise ValueError("head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Head(method, target, headers, rest)


def recv_exactly(conn: socket.socket, size: int, already: bytes = b"") -> bytes:
    chunks = [already]
    have = len(already)
    while have < size:
        block = conn.recv(min(size - have, MiB))
        if not block:
            raise ConnectionError(f"closed after {have} of {size} bytes")
        chunks.append(block)
        have += len(block)
    return b"".join(chunks)


def count_incoming(conn: socket.socket, idle: float = 0.5, limit: float = 5.0) -> int:
    """Reads and discards until EOF, an error, ``idle`` seconds of silence or ``limit``
    seconds in all; returns how many bytes came."""
    count = 0
    deadline = time.monotonic() + limit
    conn.settimeout(idle)
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            block = conn.recv(MiB)
            if not block:
                break
            count += len(block)
    return count


def http_response(
    status: int, reason: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def reset_close(conn: socket.socket) -> None:
    """Closes with a TCP reset."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


Handler = Callable[[socket.socket, "RawServer"], None]


@dataclass
class RawServer:
    """Accepts connections on 127.0.0.1 and runs ``handler(conn, server)`` for each in a thread.
    Handlers store what they saw in ``server.seen`` (a list); exceptions land in ``errors``."""

    handler: Handler
    seen: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._threads: list[threading.Thread] = []
        self._done = threading.Semaphore(0)
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            self.handler(conn, self)
        except BaseException as exc:  # recorded for the test, never raised in a thread
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._done.release()

    def wait_done(self, count: int = 1, timeout: float = 10.0) -> None:
        """Waits (bounded) until ``count`` connections have been fully handled."""
        deadline = time.monotonic() + timeout
        for _ in range(count):
            left = deadline - time.monotonic()
            assert self._done.acquire(timeout=max(left, 0)), "server handler did not finish"

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._acceptor.join(timeout=5)
        self.sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


def parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """Parses a whole body with werkzeug's form parser into the record shape."""
    import io

    from werkzeug.formparser import parse_form_data

    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _, form, files = parse_form_data(environ)
    record: dict[str, Any] = {"fields": [list(item) for item in form.items(multi=True)]}
    record["files"] = []
    for name, storage in files.items(multi=True):
        data = storage.read()
        storage.close()
        record["files"].append(
            [name, storage.filename, storage.content_type, len(data), sha256(data)]
        )
    return record
