"""A receiving server for uploads: parses multipart/form-data with python-multipart as the body
streams in, hashes every part, and stores files under a directory with safe names.

It is what ``poster-rs serve`` runs and the target of the demo and of shipping-job tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import socket
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

import python_multipart
from python_multipart.multipart import parse_options_header

__all__ = ["FaultPlan", "ReceivedPart", "UploadServer", "safe_filename"]

READ_SIZE = 1 << 20
#: Text fields larger than this are hashed but not echoed back.
ECHO_MAX = 4096

_UNSAFE = re.compile(r"[^\w.\- ()+,=@\[\]]", re.UNICODE)


def safe_filename(filename: str | None) -> str:
    """A file name that cannot leave its directory: the last path component (``/`` or ``\\``),
    without control characters or characters outside a conservative set, never ``.``/``..``,
    never empty, at most 200 bytes of UTF-8."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name:
        name = "upload"
    while len(name.encode("utf-8")) > 200:
        name = name[:-1]
    return name


@dataclass
class ReceivedPart:
    """What the server saw of one part."""

    name: str
    filename: str | None
    content_type: str | None
    size: int = 0
    sha256: str = ""
    stored_as: str | None = None
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.stored_as is not None:
            out["stored_as"] = self.stored_as
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass
class FaultPlan:
    """Failures injected on purpose, for testing clients' retries: each request fails with
    probability ``rate``, as one of ``kinds`` (``"503"``, ``"429"`` with ``Retry-After``,
    ``"reset"`` mid-body)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("503", "429", "reset")
    retry_after: int = 1
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        with self._lock:
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            return self._rng.choice(self.kinds)


class _PartSink:
    """Receives one part's data: hashes it, writes files to disk, keeps small values."""

    def __init__(self, part: ReceivedPart, directory: str | None, server: UploadServer) -> None:
        self.part = part
        self.hash = hashlib.sha256()
        self.file: BinaryIO | None = None
        self.value = bytearray()
        if part.filename is not None and directory is not None:
            self.path = server.reserve_path(part.filename)
            self.file = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
            part.stored_as = os.path.basename(self.path)

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.part.size += len(data)
        if self.file is not None:
            self.file.write(data)
        elif self.part.filename is None and len(self.value) <= ECHO_MAX:
            self.value += data

    def finish(self) -> None:
        self.part.sha256 = self.hash.hexdigest()
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.part.filename is None and len(self.value) <= ECHO_MAX:
            self.part.value = self.value.decode("utf-8", "replace")

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class _FormReceiver:
    """Drives python-multipart's streaming parser and collects the parts."""

    def __init__(self, boundary: bytes, directory: str | None, server: UploadServer) -> None:
        self.parts: list[ReceivedPart] = []
        self.directory = directory
        self.server = server
        self.sink: _PartSink | None = None
        self.headers: dict[str, str] = {}
        self.field = bytearray()
        self.value = bytearray()
        self.finished = False
        callbacks = {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }
        self.parser = python_multipart.MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.decode("latin-1").lower()] = self.value.decode("utf-8", "replace")
        self.field.clear()
        self.value.clear()

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get("content-disposition", ""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = params.get(b"filename")
        filename = None if raw_filename is None else raw_filename.decode("utf-8", "replace")
        part = ReceivedPart(name, filename, self.headers.get("content-type"))
        self.parts.append(part)
        self.sink = _PartSink(part, self.directory, self.server)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self.sink is not None
        self.sink.write(data[start:end])

    def on_part_end(self) -> None:
        if self.sink is not None:
            self.sink.finish()
            self.sink = None

    def on_end(self) -> None:
        self.finished = True

    def abort(self) -> None:
        if self.sink is not None:
            self.sink.abort()
            self.sink = None


class _BodyError(Exception):
    pass


class _UploadHandler(BaseHTTPRequestHandler):
    server: UploadServer
    protocol_version = "HTTP/1.1"
    server_version = "poster-rs-serve"
    # The reply's header and body go out in separate writes; with Nagle on, the second waits
    # for the client's delayed ACK (40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _answer_early(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        """Replies before reading the body, then closes without a reset: the client may still
        be sending, and closing with unread input would reset the connection and could destroy
        the reply before the client reads it."""
        self.close_connection = True
        self._drain = True
        self._reply(status, payload, {**(extra or {}), "Connection": "close"})

    def finish(self) -> None:
        super().finish()
        if getattr(self, "_drain", False):
            try:
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.2)
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline and self.connection.recv(1 << 16):
                    pass
            except OSError:
                pass

    def _declared_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return None if value is None else int(value)

    def handle_expect_100(self) -> bool:
        length = self._declared_length()
        limit = self.server.max_body
        if limit is not None and length is not None and length > limit:
            self._answer_early(
                413, {"error": f"body of {length} bytes is over the {limit}-byte limit"}
            )
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._reply(200, {"server": "poster-rs serve", "received": self.server.received_count})

    def do_PUT(self) -> None:
        self.do_POST()

    def _body_chunks(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise _BodyError("connection closed inside a chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    data = self.rfile.read(min(left, READ_SIZE))
                    if not data:
                        raise _BodyError("connection closed inside a chunk")
                    left -= len(data)
                    yield data
                self.rfile.readline(1024)
            return
        length = self._declared_length()
        if length is None:
            raise _BodyError("no Content-Length and not chunked")
        left = length
        while left:
            data = self.rfile.read(min(left, READ_SIZE))
            if not data:
                raise _BodyError(f"connection closed with {left} of {length} body bytes unread")
            left -= len(data)
            yield data

    def do_POST(self) -> None:
        server = self.server
        fault = server.faults.draw() if server.faults is not None else None
        if fault == "503":
            self._answer_early(503, {"error": "injected failure"})
            return
        if fault == "429":
            retry_after = str(server.faults.retry_after)  # type: ignore[union-attr]
            self._answer_early(429, {"error": "injected rate limit"}, {"Retry-After": retry_after})
            return
        length = self._declared_length()
        if server.max_body is not None and length is not None and length > server.max_body:
            self._answer_early(413, {"error": "body too large"})
            return
        content_type, params = parse_options_header(self.headers.get("Content-Type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in params:
            self._answer_early(415, {"error": "expected multipart/form-data with a boundary"})
            return
        receiver = _FormReceiver(params[b"boundary"], server.directory, server)
        received = 0
        started = time.perf_counter()
        try:
            for chunk in self._body_chunks():
                received += len(chunk)
                if fault == "reset" and received >= max((length or 0) // 2, 1):
                    receiver.abort()
                    self._reset()
                    return
                receiver.parser.write(chunk)
            receiver.parser.finalize()
        except (_BodyError, ValueError, python_multipart.exceptions.ParseError, OSError) as exc:
            receiver.abort()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._reply(400, {"error": f"bad upload: {exc}"}, {"Connection": "close"})
            return
        if not receiver.finished:
            receiver.abort()
            self.close_connection = True
            self._reply(400, {"error": "multipart body ended before its closing delimiter"})
            return
        elapsed = time.perf_counter() - started
        parts = [p.as_dict() for p in receiver.parts]
        server.record(self.path, parts, received)
        if server.print_parts:
            lines = "\n".join(_describe(part) for part in parts)
            with server.print_lock:  # one request's lines stay together
                print(lines, flush=True)
        self._reply(200, {"path": self.path, "bytes": received, "seconds": elapsed, "parts": parts})

    def _reset(self) -> None:
        """Drops the connection with a TCP reset, as a crashing proxy would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.close()
        except OSError:
            pass


def _describe(part: dict[str, Any]) -> str:
    what = f"file {part['filename']!r}" if part["filename"] is not None else "field"
    return f"{part['name']!r}: {what}, {part['size']} bytes, sha256 {part['sha256']}"


class UploadServer(ThreadingHTTPServer):
    """``poster-rs serve``: an HTTP server that accepts multipart uploads (POST or PUT), stores
    file parts under ``directory`` (if given) and answers with JSON describing every part
    (name, filename, size, SHA-256)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        directory: str | os.PathLike[str] | None = None,
        *,
        max_body: int | None = None,
        faults: FaultPlan | None = None,
        print_parts: bool = False,
        verbose: bool = False,
    ) -> None:
        self.directory = None if directory is None else os.fspath(directory)
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
        self.max_body = max_body
        self.faults = faults
        self.print_parts = print_parts
        self.verbose = verbose
        self._lock = threading.Lock()
        self.print_lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self._names: set[str] = set()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _UploadHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def received_count(self) -> int:
        with self._lock:
            return len(self.received)

    def record(self, path: str, parts: list[dict[str, Any]], size: int) -> None:
        with self._lock:
            self.received.append({"path": path, "bytes": size, "parts": parts})

    def reserve_path(self, filename: str) -> str:
        """A new path under the directory for ``filename``: sanitised, never overwriting."""
        assert self.directory is not None
        base = safe_filename(filename)
        stem, dot, ext = base.rpartition(".")
        if not dot:
            stem, ext = base, ""
        with self._lock:
            candidate = base
            counter = 1
            while candidate in self._names or os.path.exists(
                os.path.join(self.directory, candidate)
            ):
                candidate = f"{stem}-{counter}.{ext}" if ext else f"{stem}-{counter}"
                counter += 1
            self._names.add(candidate)
        path = os.path.join(self.directory, candidate)
        real_dir = os.path.realpath(self.directory)
        if os.path.dirname(os.path.realpath(path)) != real_dir:
            raise ValueError(f"refusing to store {filename!r} outside {self.directory}")
        return path

    def start(self) -> UploadServer:
        """Serves in a background thread; returns self."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="poster-rs-serve", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> UploadServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
