"""The ``poster-rs`` command: ``post`` uploads a form, ``serve`` receives uploads, ``demo`` does
both on this machine and checks every byte arrived."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import FileChangedError, __version__
from . import _exitcodes as exitcodes
from ._curl_options import (
    basic_authorization,
    open_with_retries,
    proxy_handler,
    stdin_param,
    throttled,
    write_output,
)
from ._deadline import Deadline
from .encode import MultipartParam, multipart_encode
from .ship import count_files, iter_files, ship_iter
from .stream import ChunkedMultipartStream, MultipartStream
from .streaminghttp import (
    StreamingHTTPConnection,
    StreamingHTTPHandler,
    StreamingHTTPRedirectHandler,
    StreamingHTTPSConnection,
    StreamingHTTPSHandler,
)

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"256M"`` → 268435456; ``K``, ``M``, ``G``, ``T`` are binary multiples."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)] if unit else value
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (use e.g. 4096, 64K, 256M, 1G)"
        ) from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"size must not be negative: {text!r}")
    return size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def _positive_size(text: str) -> int:
    size = parse_size(text)
    if size < 1:
        raise argparse.ArgumentTypeError(f"size must be at least 1 byte: {text!r}")
    return size


def _split_options(spec: str) -> list[str]:
    """Splits curl's ``value;key=value;...`` at semicolons outside double quotes."""
    fields: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in spec:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            fields.append("".join(current))
            current = []
            continue
        current.append(ch)
    fields.append("".join(current))
    return fields


def _unquote(value: str) -> str:
    """curl's quoted option values: ``"a;b.txt"`` is ``a;b.txt``, with ``\\"`` and ``\\\\``
    unescaped."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, i = value[1:-1], [], 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    return value


@dataclass
class FormOption:
    """One ``-F`` option, parsed but not yet touching any file."""

    name: str
    value: str | None = None
    path: str | None = None
    as_file: bool = True
    filetype: str | None = None
    filename: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def to_param(self) -> MultipartParam:
        """The parameter; a file is measured now, so a missing, unreadable or non-regular one
        raises ``OSError`` or ``ValueError`` here."""
        if self.path is None:
            return MultipartParam(self.name, self.value)
        if self.path == "-":  # curl's @- and <-: standard input
            param = stdin_param(self.name, self.as_file)
        else:
            param = MultipartParam.from_file(self.name, self.path)
        if not self.as_file:
            param.filename = None
            param.filetype = None
        if self.filetype is not None:
            param.filetype = self.filetype
        if self.filename is not None:
            param.filename = self.filename
        if self.headers:
            param.headers = list(self.headers)
        return param


def parse_form_spec(option: str) -> FormOption:
    """One ``-F`` option in curl's syntax: ``name=value``, ``name=@path[;type=T][;filename=F]``
    (a file part) or ``name=<path`` (a text field whose value is the file's content). Syntax
    errors raise ``ValueError``; no file is looked at."""
    name, sep, rest = option.partition("=")
    if not sep or not name:
        raise ValueError(f"-F {option!r}: expected name=value, name=@file or name=<file")
    if not rest.startswith(("@", "<")):
        return FormOption(name, value=rest)
    path, *options = _split_options(rest[1:])
    if not path:
        raise ValueError(f"-F {option!r}: no file name after {rest[0]!r}")
    spec = FormOption(name, path=os.path.expanduser(_unquote(path)), as_file=rest[0] == "@")
    for item in options:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        value = _unquote(value)
        if not eq:
            raise ValueError(f"-F {option!r}: option {item!r} is not key=value")
        if key == "type":
            spec.filetype = value
        elif key == "filename":
            spec.filename = value
        elif key == "headers":
            header, colon, header_value = value.partition(":")
            if not colon:
                raise ValueError(f"-F {option!r}: header {value!r} is not 'Name: value'")
            spec.headers.append((header.strip(), header_value.strip()))
        else:
            raise ValueError(f"-F {option!r}: unknown option {key!r} (type, filename, headers)")
    return spec


def parse_form_option(option: str) -> MultipartParam:
    """``parse_form_spec(option).to_param()``: the parameter of one ``-F`` option."""
    return parse_form_spec(option).to_param()


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise ValueError(f"-H {text!r}: expected 'Name: value'")
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"-H {text!r}: header contains CR, LF or NUL")
    return name.strip(), value.strip()


class _Progress:
    """Two progress bars on stderr: the whole upload and the current part, with rate and ETA.
    Called as poster's ``cb(param, current, total)``."""

    def __init__(self, enabled: bool) -> None:
        self.bars: tuple[Any, Any] | None = None
        self.spans: dict[int, tuple[int, int]] = {}
        self.param: Any = None
        if not enabled:
            return
        from tqdm import tqdm  # noqa: PLC0415 - only for a bar

        def bar(desc: str, position: int, leave: bool) -> Any:
            return tqdm(
                total=0,
                desc=desc,
                position=position,
                leave=leave,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
            )

        self.bars = (bar("total", 0, True), bar("", 1, False))

    @property
    def callback(self) -> Any:
        return self if self.bars is not None else None

    def start(self, stream: Any, params: Sequence[MultipartParam]) -> None:
        """Learns the body's size and where each parameter's part lies in it."""
        if self.bars is None:
            return
        self.bars[0].reset(total=stream.total)
        starts = stream.part_starts
        for index, param in enumerate(params[: max(len(starts) - 1, 0)]):
            self.spans[id(param)] = (starts[index], starts[index + 1] - starts[index])

    def __call__(self, param: Any, current: int, total: int | None) -> None:
        if self.bars is None:
            return
        overall, part_bar = self.bars
        overall.update(current - overall.n)
        span = None if param is None else self.spans.get(id(param))
        if span is None:
            return
        if param is not self.param:
            self.param = param
            part_bar.reset(total=span[1])
            part_bar.set_description_str((param.filename or param.name)[:30])
        part_bar.update(min(max(current - span[0], 0), span[1]) - part_bar.n)

    def close(self) -> None:
        if self.bars is not None:
            for bar in reversed(self.bars):
                bar.close()
            self.bars = None


def _ssl_context(cacert: str | None, insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cacert)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _DeadlineHTTPHandler(StreamingHTTPHandler):
    """``StreamingHTTPHandler`` whose connections a ``Deadline`` cuts off."""

    def __init__(self, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = self.deadline.connection_class(StreamingHTTPConnection)
        return self.do_open(connection, req, expect_timeout=self.expect_timeout)


class _DeadlineHTTPSHandler(StreamingHTTPSHandler):
    """``StreamingHTTPSHandler`` whose connections a ``Deadline`` cuts off."""

    def __init__(self, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = self.deadline.connection_class(StreamingHTTPSConnection)
        return self.do_open(
            connection,
            req,
            # HTTPSHandler keeps its SSL context in a private attribute typeshed does not list.
            context=self._context,  # type: ignore[attr-defined]
            expect_timeout=self.expect_timeout,
        )


def _opener(
    context: ssl.SSLContext | None,
    expect_continue: bool,
    deadline: Deadline | None = None,
    proxy: str | None = None,
) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler]
    if deadline is None:
        handlers = [
            StreamingHTTPHandler(expect_continue=expect_continue),
            StreamingHTTPRedirectHandler(),
            StreamingHTTPSHandler(context=context, expect_continue=expect_continue),
        ]
    else:
        handlers = [
            _DeadlineHTTPHandler(deadline, expect_continue=expect_continue),
            StreamingHTTPRedirectHandler(),
            _DeadlineHTTPSHandler(deadline, context=context, expect_continue=expect_continue),
        ]
    if proxy is not None:  # -x: this proxy, not the environment's
        handlers.append(proxy_handler(proxy))
    return urllib.request.build_opener(*handlers)


def _rewind(stream: Any) -> bool:
    """Puts a body back at its start for ``--retry``; False if it cannot be (stdin)."""
    try:
        stream.seek(0)
    except (OSError, ValueError):
        return False
    return True


def _warn(message: str) -> None:
    print(f"poster-rs: {message}", file=sys.stderr)


def _show_progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty()


def _url_problem(url: str) -> tuple[int, str] | None:
    """Why ``url`` cannot be posted to, as ``(exit status, message)``, or ``None``."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return (
            exitcodes.URL_MALFORMED,
            f"malformed URL {url!r}: spaces and control characters must be percent-encoded",
        )
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError as exc:
        return exitcodes.URL_MALFORMED, f"malformed URL {url!r}: {exc}"
    scheme = parts.scheme.lower()
    if not scheme:
        return (
            exitcodes.URL_MALFORMED,
            f"malformed URL {url!r}: expected http://HOST/... or https://HOST/...",
        )
    if scheme not in ("http", "https"):
        return exitcodes.PROTOCOL, f"unsupported protocol {scheme!r} in {url!r}: use http or https"
    if not parts.hostname:
        return exitcodes.URL_MALFORMED, f"malformed URL {url!r}: no host"
    return None


def _local_file_error(error: BaseException) -> bool:
    """Whether ``error`` comes from a local file (a path's ``OSError`` or a changed file) rather
    than from the network."""
    if isinstance(error, FileChangedError):
        return True
    return isinstance(error, OSError) and getattr(error, "filename", None) is not None


def _network_failure(
    error: BaseException,
    url: str,
    stream: MultipartStream | ChunkedMultipartStream,
    timeout: float,
) -> tuple[int, str]:
    """The exit status and message of an upload that failed with ``error`` (unwrapped from
    urllib's ``URLError``)."""
    if _local_file_error(error):
        return exitcodes.READ_ERROR, str(error)
    # How far the body got tells a broken send from a broken answer.
    body_sent = stream.current >= (stream.total or 0)
    host = urllib.parse.urlsplit(url).hostname
    if isinstance(error, socket.gaierror):
        return exitcodes.RESOLVE, f"cannot resolve host {host!r}: {error.strerror or error}"
    if isinstance(error, TimeoutError):
        return exitcodes.TIMEOUT, f"timed out: no progress for {timeout:g} s (--timeout)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return exitcodes.PEER_CERTIFICATE, f"cannot reach {url}: certificate not verified: {error}"
    if isinstance(error, ssl.SSLError) and stream.current == 0:
        return exitcodes.TLS_CONNECT, f"cannot reach {url}: TLS handshake failed: {error}"
    if isinstance(error, http.client.IncompleteRead):
        return exitcodes.PARTIAL, f"the answer ended early: {error!r}"
    if isinstance(error, ConnectionRefusedError):
        return exitcodes.CONNECT, f"cannot reach {url}: {error}"
    if isinstance(error, (ConnectionError, ssl.SSLError)):
        if body_sent:
            return exitcodes.RECV_ERROR, f"connection to {url} broke while receiving: {error}"
        return exitcodes.SEND_ERROR, f"connection to {url} broke while sending: {error}"
    if isinstance(error, http.client.HTTPException):
        return exitcodes.WEIRD_REPLY, f"{url} did not answer in HTTP: {error!r}"
    if isinstance(error, OSError):
        return exitcodes.CONNECT, f"cannot reach {url}: {error}"
    raise error


def _redirect_failure(error: urllib.error.HTTPError) -> tuple[int, str]:
    reason = str(error.reason)
    if reason.startswith(urllib.request.HTTPRedirectHandler.inf_msg):
        return exitcodes.TOO_MANY_REDIRECTS, f"too many redirects: {reason}"
    return exitcodes.PROTOCOL, f"HTTP {error.code}: {reason}"


def _fail(status: int, message: str) -> int:
    print(f"poster-rs: {message}", file=sys.stderr)
    return status


def _local_failure(error: BaseException) -> int:
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        # The encoder's messages name the part and the path already; the OS's only say what.
        path = os.fsdecode(error.filename)
        message = error.strerror if path in error.strerror else f"{path}: {error.strerror}"
        return _fail(exitcodes.READ_ERROR, message)
    return _fail(exitcodes.READ_ERROR, str(error))


def cmd_post(args: argparse.Namespace) -> int:
    problem = _url_problem(args.url)
    if problem is not None:
        return _fail(*problem)
    try:
        specs = [parse_form_spec(option) for option in args.form]
        extra_headers = dict(_parse_header(h) for h in args.header)
        if args.user is not None:
            extra_headers["Authorization"] = basic_authorization(args.user)
        if args.proxy is not None:
            proxy_handler(args.proxy)  # a bad -x is a usage error, found before any upload
    except ValueError as exc:
        return _fail(exitcodes.USAGE, str(exc))
    try:
        params = [spec.to_param() for spec in specs]
    except (OSError, ValueError) as exc:  # missing, unreadable, a directory, a FIFO, ...
        return _local_failure(exc)
    progress = _Progress(_show_progress(args.progress))
    try:
        stream, headers = multipart_encode(params, cb=progress.callback, escape=args.escape)
    except OSError as exc:
        progress.close()
        return _local_failure(exc)
    except (ValueError, TypeError) as exc:  # a header value that cannot be sent
        progress.close()
        return _fail(exitcodes.USAGE, str(exc))
    progress.start(stream, params)
    headers.update(extra_headers)
    method = args.request or "POST"
    body_source = throttled(stream, args.limit_rate)
    https = urllib.parse.urlsplit(args.url).scheme.lower() == "https"
    context = _ssl_context(args.cacert, args.insecure) if https else None
    deadline = Deadline(args.max_time) if args.max_time is not None else None
    opener = _opener(context, args.expect_continue, deadline, args.proxy)

    def attempt() -> tuple[int, bytes]:
        request = urllib.request.Request(args.url, data=body_source, headers=headers, method=method)
        with opener.open(request, timeout=args.timeout) as response:
            return response.status, response.read()

    started = time.perf_counter()
    status = 0
    failure: tuple[int, str] | None = None
    body = b""
    with stream, deadline or contextlib.nullcontext():
        try:
            # --retry: transient failures again, the body rewound; within --max-time.
            status, body = open_with_retries(
                attempt, args.retry, lambda: _rewind(stream), warn=_warn
            )
        except urllib.error.HTTPError as exc:
            with exc:
                if exc.code >= 400:
                    body = exc.read()
                    failure = exitcodes.HTTP_ERROR, f"HTTP {exc.code} {exc.reason}"
                else:
                    failure = _redirect_failure(exc)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if not isinstance(reason, BaseException):
                reason = OSError(reason)
            failure = _network_failure(reason, args.url, stream, args.timeout)
        except (OSError, http.client.HTTPException) as exc:
            failure = _network_failure(exc, args.url, stream, args.timeout)
        finally:
            progress.close()
    if deadline is not None and deadline.expired:
        # Whatever came back was cut short by the deadline.
        return _fail(
            exitcodes.TIMEOUT, f"operation timed out after {args.max_time:g} s (--max-time)"
        )
    elapsed = time.perf_counter() - started
    if failure is not None:
        if failure[0] == exitcodes.HTTP_ERROR:
            write_output(body, args.output, newline=False)
        return _fail(*failure)
    write_output(body, args.output)
    if args.verbose:
        size = stream.total or 0
        print(
            f"poster-rs: HTTP {status}, {size} bytes in {elapsed:.2f} s "
            f"({size / max(elapsed, 1e-9) / 1e6:.0f} MB/s)",
            file=sys.stderr,
        )
    return exitcodes.OK


def cmd_serve(args: argparse.Namespace) -> int:
    # aiohttp and the server take ~0.2 s to import: only the commands that serve pay for it.
    from .server import UploadServer  # noqa: PLC0415

    token = args.token if args.token is not None else os.environ.get("POSTER_RS_SERVE_TOKEN")
    try:
        server = UploadServer(
            args.host,
            args.port,
            args.dir,
            max_body=args.max_body,
            max_parts=args.max_parts,
            max_part_header=args.max_part_header,
            token=token or None,
            allow_hosts=args.allow_host or None,
            header_timeout=args.header_timeout,
            read_timeout=args.read_timeout,
            max_connections=args.max_connections,
            max_uploads=args.max_uploads,
            backlog=args.backlog,
            print_parts=True,
            verbose=args.verbose,
        )
    except OSError as exc:
        if exc.filename is not None:  # the storage directory, not the socket
            print(f"poster-rs serve: cannot store files in {args.dir}: {exc}", file=sys.stderr)
            return exitcodes.READ_ERROR
        print(f"poster-rs serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return exitcodes.CONNECT
    where = f"storing files in {os.path.abspath(args.dir)}" if args.dir else "not storing files"
    print(f"Serving on {server.url} ({where})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _make_sample(path: str, size: int) -> str:
    """Writes ``size`` random bytes to ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    block = 1 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(block, left))
            digest.update(data)
            f.write(data)
            left -= len(data)
    return digest.hexdigest()


@contextlib.contextmanager
def _workdir(keep: bool) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="poster-rs-demo-")
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from .server import UploadServer  # noqa: PLC0415 - see cmd_serve

    with _workdir(args.keep) as work:
        sample = os.path.join(work, "sample.bin")
        print(f"Creating a {args.size:,}-byte sample file {sample} ...", flush=True)
        sample_sha = _make_sample(sample, args.size)
        fields = {"title": "poster-rs demo", "note": "résumé ☃ — streamed from disk"}
        params = [MultipartParam(k, v) for k, v in fields.items()]
        params.append(MultipartParam.from_file("sample", sample))
        with UploadServer("127.0.0.1", 0, os.path.join(work, "received")) as server:
            progress = _Progress(_show_progress(args.progress))
            stream, headers = multipart_encode(params, cb=progress.callback)
            progress.start(stream, params)
            print(f"Encoded {len(params)} parts; request headers:")
            for key, value in headers.items():
                print(f"  {key}: {value}")
            print(f"Body size: {stream.total:,} bytes; uploading to {server.url} ...", flush=True)
            request = urllib.request.Request(server.url + "upload", data=stream, headers=headers)
            started = time.perf_counter()
            try:
                with stream, _opener(None, False).open(request, timeout=120) as response:
                    reply = json.loads(response.read())
            finally:
                progress.close()
            elapsed = time.perf_counter() - started
        print("The server received:")
        expected = {k: hashlib.sha256(v.encode("utf-8")).hexdigest() for k, v in fields.items()}
        expected["sample"] = sample_sha
        ok = True
        for part in reply["parts"]:
            match = expected.get(part["name"]) == part["sha256"]
            ok = ok and match
            kind = f"file {part['filename']!r}" if part["filename"] else "field"
            print(
                f"  {part['name']}: {kind}, {part['size']:,} bytes, "
                f"sha256 {part['sha256'][:16]}… {'OK' if match else 'MISMATCH'}"
            )
        ok = ok and {p["name"] for p in reply["parts"]} == set(expected)
        rate = (stream.total or 0) / max(elapsed, 1e-9)
        print(
            f"Uploaded {stream.total:,} bytes in {elapsed:.3f} s: {rate / 1e6:,.0f} MB/s "
            f"({rate / (1 << 20):,.0f} MiB/s)"
        )
        print("All SHA-256 digests verified." if ok else "VERIFICATION FAILED.")
        return 0 if ok else exitcodes.VERIFY_FAILED


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return seconds


def _field(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--field {text!r}: expected name=value")
    return name, value


def _verbose_logging() -> None:
    """Shows the ``poster_rs`` logger's records (requests, retries) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("poster-rs: %(levelname)s %(message)s"))
    logger = logging.getLogger("poster_rs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def cmd_ship(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"poster-rs ship: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return exitcodes.READ_ERROR
    if args.verbose:
        _verbose_logging()
    # Walked as the upload goes: a tree of millions of files starts uploading at once.
    seen = 0

    def files() -> Iterator[str]:
        nonlocal seen
        for path in iter_files(args.paths, args.glob):
            seen += 1
            yield path

    headers = dict(_parse_header(h) for h in args.header)
    verify: bool | str = args.cacert if args.cacert else not args.insecure
    ok = failed = skipped = sent = 0
    started = time.perf_counter()
    results = ship_iter(
        files(),
        args.url,
        name=args.name,
        fields=args.field,
        method=args.request,
        headers=headers,
        workers=args.jobs,
        retries=args.retries,
        timeout=args.timeout,
        deadline=args.max_time,
        log=args.log,
        progress=_show_progress(args.progress),
        verify=verify,
        batch=args.batch,
        batch_bytes=args.batch_bytes,
        limit_rate=args.limit_rate,
        totals=lambda: count_files(args.paths, args.glob),
    )
    try:
        for result in results:
            if result.skipped:
                skipped += 1
            elif result.ok:
                ok += 1
                sent += result.bytes
            else:
                failed += 1
                print(f"poster-rs ship: FAILED {result.path}: {result.error}", file=sys.stderr)
    except BlockingIOError as exc:
        print(f"poster-rs ship: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return exitcodes.USAGE
    except OSError as exc:  # the results log cannot be opened or written
        print(f"poster-rs ship: results log: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    if seen == 0:
        print("poster-rs ship: no files to upload", file=sys.stderr)
        return exitcodes.USAGE
    elapsed = time.perf_counter() - started
    print(
        f"{ok} ok, {failed} failed, {skipped} skipped (already in the log); "
        f"{sent:,} bytes in {elapsed:.2f} s ({sent / max(elapsed, 1e-9) / 1e6:,.1f} MB/s)"
    )
    return exitcodes.OK if failed == 0 else exitcodes.HTTP_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poster-rs", description="Streaming multipart/form-data uploads."
    )
    parser.add_argument("--version", action="version", version=f"poster-rs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    post = commands.add_parser("post", help="upload a form to a URL, as curl -F does")
    post.add_argument("url")
    post.add_argument(
        "-F",
        "--form",
        action="append",
        default=[],
        metavar="NAME=VALUE|NAME=@FILE[;type=T][;filename=F]|NAME=<FILE",
        help="a form part, in curl's syntax (repeatable)",
    )
    post.add_argument("-X", "--request", metavar="METHOD", help="HTTP method (default POST)")
    post.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra header"
    )
    post.add_argument("--cacert", metavar="FILE", help="CA certificates to verify the server with")
    post.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify TLS certificates"
    )
    post.add_argument(
        "--expect-continue",
        action="store_true",
        help="send 'Expect: 100-continue' for bodies of 1 MiB or more and wait for the go-ahead",
    )
    post.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up when the connection makes no progress for S seconds (60)",
    )
    post.add_argument(
        "-m",
        "--max-time",
        type=_positive_seconds,
        metavar="S",
        help="give up when the whole upload (connect, send, answer) takes over S seconds",
    )
    post.add_argument(
        "--escape", choices=["quoted", "html5", "poster"], default="quoted", help="name escaping"
    )
    post.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress bars even when stderr is not a terminal",
    )
    post.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )
    post.add_argument("-u", "--user", metavar="USER:PASSWORD", help="HTTP Basic credentials")
    post.add_argument(
        "-x", "--proxy", metavar="[http://][USER:PASSWORD@]HOST[:PORT]", help="use this proxy"
    )
    post.add_argument(
        "-o", "--output", metavar="FILE", help="write the response body to FILE, not stdout"
    )
    post.add_argument(
        "--retry",
        type=int,
        default=0,
        metavar="N",
        help="retry a transient failure (connection, timeout, 408/429/5xx) up to N times",
    )
    post.add_argument(
        "--limit-rate",
        type=_positive_size,
        metavar="SIZE",
        help="cap the upload at SIZE bytes per second (e.g. 500K)",
    )
    post.add_argument("-v", "--verbose", action="store_true", help="report status and rate")
    post.set_defaults(func=cmd_post)

    serve = commands.add_parser("serve", help="receive uploads, verify and store them")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--dir", help="store file parts here (safe names, never overwritten)")
    serve.add_argument("--max-body", type=parse_size, help="answer 413 above this size")
    serve.add_argument(
        "--max-parts", type=int, default=10_000, help="answer 413 past this many parts (10000)"
    )
    serve.add_argument(
        "--max-part-header",
        type=parse_size,
        default=16 << 10,
        help="answer 413 past this many bytes of headers in one part (16K)",
    )
    serve.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' (or set POSTER_RS_SERVE_TOKEN, which other "
        "users cannot read in the process list)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="answer only requests whose Host (and Origin) is NAME; repeatable (default on a "
        "loopback address: localhost, 127.0.0.1, ::1; elsewhere: any)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="drop a client that has not sent its request head S seconds after connecting "
        "or after its previous answer (10)",
    )
    serve.add_argument(
        "--read-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="drop an upload whose body sends nothing for S seconds (60)",
    )
    serve.add_argument(
        "--max-connections", type=int, default=512, help="open connections at once (512)"
    )
    serve.add_argument("--max-uploads", type=int, default=32, help="bodies received at once (32)")
    serve.add_argument("--backlog", type=int, default=512, help="listen backlog (512)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    ship = commands.add_parser(
        "ship", help="upload many files concurrently, with retries and a log"
    )
    ship.add_argument("url")
    ship.add_argument("paths", nargs="+", help="files, or directories (walked recursively)")
    ship.add_argument("--field", action="append", type=_field, default=[], metavar="NAME=VALUE")
    ship.add_argument("--name", default="file", help="the file part's field name (file)")
    ship.add_argument("-j", "--jobs", type=int, default=8, help="concurrent uploads (8)")
    ship.add_argument("--retries", type=int, default=5, help="retries per file (5)")
    ship.add_argument("--log", help="JSON Lines results log; a re-run skips what it records")
    ship.add_argument("--glob", help="only files whose name matches this pattern")
    ship.add_argument(
        "--batch",
        type=_positive_int,
        metavar="N",
        help="send up to N files per request, as repeated parts (results stay per file)",
    )
    ship.add_argument(
        "--batch-bytes",
        type=_positive_size,
        metavar="SIZE",
        help="send files together up to SIZE bytes per request (e.g. 8M; a larger file alone)",
    )
    ship.add_argument(
        "--limit-rate",
        type=_positive_size,
        metavar="SIZE",
        help="cap the upload rate of the whole run at SIZE bytes per second (e.g. 500K, 10M)",
    )
    ship.add_argument(
        "-v", "--verbose", action="store_true", help="log every request and retry on stderr"
    )
    ship.add_argument("-X", "--request", default="POST", metavar="METHOD")
    ship.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
    ship.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="socket timeout per operation"
    )
    ship.add_argument(
        "-m",
        "--max-time",
        type=_positive_seconds,
        metavar="S",
        help="give an attempt at most S seconds as a whole, however slowly the server answers",
    )
    ship.add_argument("--cacert", metavar="FILE")
    ship.add_argument("-k", "--insecure", action="store_true")
    ship.add_argument("--progress", dest="progress", action="store_true", default=None)
    ship.add_argument("--no-progress", dest="progress", action="store_false")
    ship.set_defaults(func=cmd_ship)

    demo = commands.add_parser(
        "demo", help="serve on 127.0.0.1, upload a sample file, verify and report the rate"
    )
    demo.add_argument("--size", type=parse_size, default=256 << 20, help="sample size (256M)")
    demo.add_argument("--keep", action="store_true", help="keep the work directory")
    demo.add_argument("--progress", dest="progress", action="store_true", default=None)
    demo.add_argument("--no-progress", dest="progress", action="store_false")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
