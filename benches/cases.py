"""The benchmark cases: peers, poster_rs and the physical limits.

A case's ``prepare(wl, ctx)`` runs untimed in the case's own process (imports, building the
field lists a caller would already hold, writing curl's config file) and returns ``run``, the
timed part. ``run(sink)`` does the whole job a user would time: open the files, build the
encoder, produce and consume the body (or upload it). With ``sink=None`` the body is only
counted; in the verification run ``sink`` is a ``verify.Summarizer`` fed every chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mmap
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .workloads import FILE_TYPE, MiB, Workload

#: requests (through urllib3 2.x) reads a body that has ``read()`` 16 KiB at a time.
TOOLBELT_BLOCK = 16384


@dataclass
class Result:
    """What ``run`` returns. Encode: bytes produced, declared length, Content-Type.
    Upload: the server's JSON reply (``reply``); ``nbytes`` is the payload sent."""

    nbytes: int = 0
    declared: int | None = None
    content_type: str | None = None
    reply: dict[str, Any] | None = None
    child_peak: int | None = None  # peak RSS of a tool process (curl), bytes


@dataclass
class Ctx:
    url: str  # base URL of the discard server, e.g. http://127.0.0.1:1234
    verify: bool
    timeout: float
    tmpdir: str

    @property
    def path(self) -> str:
        return "/verify" if self.verify else "/discard"

    @property
    def target(self) -> str:
        return self.url + self.path


class UnavailableError(Exception):
    """The case cannot run here (a missing module or tool); reported as n/a."""


@dataclass
class Case:
    id: str  # unique: "<mode>:<name>"
    name: str
    mode: str  # encode | encode-cold | upload | length
    kind: str  # poster | peer | limit
    prepare: Callable[[Workload, Ctx], Callable[[Any], Result]]
    workloads: tuple[str, ...]
    cold: bool = False
    note: str = ""


def drain(chunks: Iterable[bytes], sink: Any) -> int:
    n = 0
    if sink is None:
        for chunk in chunks:
            n += len(chunk)
    else:
        feed = sink.feed
        for chunk in chunks:
            feed(chunk)
            n += len(chunk)
    return n


def _open_all(wl: Workload, stack: contextlib.ExitStack) -> list[tuple[str, Any]]:
    return [(f.name, stack.enter_context(open(f.path, "rb"))) for f in wl.files]


def _reply_json(raw: bytes | str) -> dict[str, Any]:
    try:
        return json.loads(raw)
    except ValueError:
        return {"error": f"not JSON: {raw[:200]!r}"}


# --------------------------------------------------------------------------- poster_rs


def _poster_params(wl: Workload, *, typed: bool = True) -> list[tuple[str, Any]]:
    """The form every peer gets: each file with its base name and ``FILE_TYPE`` given. Untyped,
    a bare path: poster_rs then asks ``mimetypes``, whose first use in a process reads the
    system's type tables (~4.5 ms) that no peer is made to read."""
    files = (
        (f.name, (f.filename, Path(f.path), FILE_TYPE) if typed else Path(f.path)) for f in wl.files
    )
    return [*wl.fields, *files]


def enc_poster(
    wl: Workload, ctx: Ctx, with_cb: bool = False, typed: bool = True
) -> Callable[[Any], Result]:
    import poster_rs

    params = _poster_params(wl, typed=typed)
    calls = [0]

    def cb(param: Any, current: int, total: Any) -> None:
        calls[0] += 1

    def run(sink: Any) -> Result:
        if with_cb:
            stream, headers = poster_rs.multipart_encode(params, cb=cb)
        else:
            stream, headers = poster_rs.multipart_encode(params)
        with stream:
            n = drain(stream, sink)
        if with_cb and calls[0] == 0:
            raise RuntimeError("the progress callback was never called")
        return Result(n, int(headers["Content-Length"]), headers["Content-Type"])

    return run


def enc_poster_params(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    """poster's own road: the caller builds ``MultipartParam``s (timed, as a poster user does)
    and passes the list to ``multipart_encode``."""
    import poster_rs
    from poster_rs import MultipartParam

    fields = wl.fields

    def run(sink: Any) -> Result:
        params = [MultipartParam(name, value) for name, value in fields]
        params.extend(MultipartParam.from_file(f.name, f.path) for f in wl.files)
        stream, headers = poster_rs.multipart_encode(params)
        with stream:
            n = drain(stream, sink)
        return Result(n, int(headers["Content-Length"]), headers["Content-Type"])

    return run


def up_poster_urllib(wl: Workload, ctx: Ctx, *, sendfile: bool = False) -> Callable[[Any], Result]:
    import urllib.request

    import poster_rs

    try:
        from poster_rs.streaminghttp import StreamingHTTPConnection, register_openers
    except ImportError as exc:
        raise UnavailableError(f"poster_rs.streaminghttp not importable: {exc}") from None
    StreamingHTTPConnection.use_sendfile = sendfile
    opener = register_openers()
    params = _poster_params(wl)

    def run(sink: Any) -> Result:
        stream, headers = poster_rs.multipart_encode(params)
        with stream:
            request = urllib.request.Request(ctx.target, data=stream, headers=headers)
            with opener.open(request, timeout=ctx.timeout) as response:
                reply = _reply_json(response.read())
        return Result(wl.payload, reply=reply)

    return run


def up_poster_requests(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import poster_rs
    import requests

    params = _poster_params(wl)

    def run(sink: Any) -> Result:
        stream, headers = poster_rs.multipart_encode(params)
        with stream:
            r = requests.post(ctx.target, data=stream, headers=headers, timeout=ctx.timeout)
        r.raise_for_status()
        return Result(wl.payload, reply=_reply_json(r.content))

    return run


def up_poster_httpx(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import httpx
    import poster_rs

    params = _poster_params(wl)

    def run(sink: Any) -> Result:
        stream, headers = poster_rs.multipart_encode(params)
        with stream:
            r = httpx.post(ctx.target, content=stream, headers=headers, timeout=ctx.timeout)
        r.raise_for_status()
        return Result(wl.payload, reply=_reply_json(r.content))

    return run


def len_poster_get_headers(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import poster_rs

    params = _poster_params(wl)
    boundary = poster_rs.gen_boundary()

    def run(sink: Any) -> Result:
        headers = poster_rs.get_headers(params, boundary)
        n = 0
        if sink is not None:  # verification: the body really has that length
            stream, _ = poster_rs.multipart_encode(params, boundary)
            with stream:
                n = drain(stream, sink)
        return Result(n, int(headers["Content-Length"]), headers["Content-Type"])

    return run


def len_poster_encode(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import poster_rs

    params = _poster_params(wl)

    def run(sink: Any) -> Result:
        stream, headers = poster_rs.multipart_encode(params)
        with stream:
            n = drain(stream, sink) if sink is not None else 0
        return Result(n, int(headers["Content-Length"]), headers["Content-Type"])

    return run


# --------------------------------------------------------------------------- peers: encode


def enc_httpx(wl: Workload, ctx: Ctx, length_only: bool = False) -> Callable[[Any], Result]:
    import httpx

    data = dict(wl.fields) or None

    def run(sink: Any) -> Result:
        with contextlib.ExitStack() as stack:
            files = [
                (name, (os.path.basename(f.name), f, FILE_TYPE)) for name, f in _open_all(wl, stack)
            ]
            request = httpx.Request("POST", "http://127.0.0.1/", data=data, files=files)
            declared = int(request.headers["Content-Length"])
            n = 0 if length_only and sink is None else drain(request.stream, sink)
        return Result(n, declared, request.headers["Content-Type"])

    return run


def enc_toolbelt(wl: Workload, ctx: Ctx, length_only: bool = False) -> Callable[[Any], Result]:
    from requests_toolbelt import MultipartEncoder

    def run(sink: Any) -> Result:
        with contextlib.ExitStack() as stack:
            fields: list[Any] = list(wl.fields)
            fields += [
                (name, (os.path.basename(f.name), f, FILE_TYPE)) for name, f in _open_all(wl, stack)
            ]
            encoder = MultipartEncoder(fields)
            declared = encoder.len
            if length_only and sink is None:
                n = 0
            else:
                n = drain(iter(partial(encoder.read, TOOLBELT_BLOCK), b""), sink)
        return Result(n, declared, encoder.content_type)

    return run


class _CountingWriter:
    """The ``AbstractStreamWriter`` subset ``MultipartWriter.write`` uses."""

    def __init__(self, sink: Any) -> None:
        self.n = 0
        self.sink = sink

    async def write(self, chunk: bytes) -> None:
        self.n += len(chunk)
        if self.sink is not None:
            self.sink.feed(chunk)

    async def write_eof(self, chunk: bytes = b"") -> None:
        await self.write(chunk)

    async def drain(self) -> None:
        pass


def enc_aiohttp(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import aiohttp

    async def main(sink: Any) -> Result:
        with contextlib.ExitStack() as stack:
            form = aiohttp.FormData()
            for name, value in wl.fields:
                form.add_field(name, value)
            for name, f in _open_all(wl, stack):
                form.add_field(name, f, filename=os.path.basename(f.name), content_type=FILE_TYPE)
            writer = form()
            out = _CountingWriter(sink)
            await writer.write(out)
            return Result(out.n, writer.size, writer.content_type)

    return lambda sink: asyncio.run(main(sink))


def enc_urllib3(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import urllib3

    def run(sink: Any) -> Result:
        fields: list[Any] = list(wl.fields)
        for f in wl.files:
            with open(f.path, "rb") as fh:
                fields.append((f.name, (f.filename, fh.read(), FILE_TYPE)))
        body, content_type = urllib3.encode_multipart_formdata(fields)
        if sink is not None:
            sink.feed(body)
        return Result(len(body), len(body), content_type)

    return run


def enc_requests(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import requests

    data = dict(wl.fields) or None

    def run(sink: Any) -> Result:
        with contextlib.ExitStack() as stack:
            files = [
                (name, (os.path.basename(f.name), f, FILE_TYPE)) for name, f in _open_all(wl, stack)
            ]
            prepared = requests.Request(
                "POST", "http://127.0.0.1/", data=data, files=files
            ).prepare()
        body = prepared.body
        if sink is not None:
            sink.feed(body)
        return Result(
            len(body), int(prepared.headers["Content-Length"]), prepared.headers["Content-Type"]
        )

    return run


# --------------------------------------------------------------------------- peers: upload


def _watch_peak(proc: subprocess.Popen[Any], timeout: float) -> int | None:
    """Waits for ``proc``, sampling its VmHWM every 2 ms (``ru_maxrss`` of a child would
    include the pre-exec image of this Python process); returns the last sample, in bytes."""
    deadline = time.monotonic() + timeout
    peak = None
    path = f"/proc/{proc.pid}/status"
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"{proc.args[0]} timed out after {timeout} s")
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    return peak


def up_curl(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    curl = shutil.which("curl")
    if curl is None:
        raise UnavailableError("curl not found (apt-get install curl)")
    config = Path(ctx.tmpdir) / "curl.cfg"
    lines = [f'form = "{name}={value}"' for name, value in wl.fields]
    lines += [f'form = "{f.name}=@{f.path};type={FILE_TYPE}"' for f in wl.files]
    config.write_text("\n".join(lines) + "\n")
    out = Path(ctx.tmpdir) / "curl.out"

    def run(sink: Any) -> Result:
        argv = [curl, "-sS", "--max-time", str(int(ctx.timeout)), "-K", str(config)]
        argv += ["-o", str(out) if ctx.verify else os.devnull, "-w", "%{http_code}"]
        argv.append(ctx.target)
        with (
            tempfile.TemporaryFile("w+") as stdout,
            tempfile.TemporaryFile("w+") as stderr,
            subprocess.Popen(argv, stdout=stdout, stderr=stderr) as proc,
        ):
            peak = _watch_peak(proc, ctx.timeout + 10)
            stdout.seek(0)
            stderr.seek(0)
            code, err = stdout.read().strip(), stderr.read()
        if proc.returncode != 0 or code != "200":
            raise RuntimeError(f"curl exit {proc.returncode}, HTTP {code!r}: {err}")
        reply = _reply_json(out.read_bytes()) if ctx.verify else None
        return Result(wl.payload, reply=reply, child_peak=peak)

    return run


def up_requests(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import requests

    data = dict(wl.fields) or None

    def run(sink: Any) -> Result:
        with contextlib.ExitStack() as stack:
            files = [
                (name, (os.path.basename(f.name), f, FILE_TYPE)) for name, f in _open_all(wl, stack)
            ]
            r = requests.post(ctx.target, data=data, files=files, timeout=ctx.timeout)
        r.raise_for_status()
        return Result(wl.payload, reply=_reply_json(r.content))

    return run


def up_toolbelt(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import requests
    from requests_toolbelt import MultipartEncoder

    def run(sink: Any) -> Result:
        with contextlib.ExitStack() as stack:
            fields: list[Any] = list(wl.fields)
            fields += [
                (name, (os.path.basename(f.name), f, FILE_TYPE)) for name, f in _open_all(wl, stack)
            ]
            encoder = MultipartEncoder(fields)
            r = requests.post(
                ctx.target,
                data=encoder,
                headers={"Content-Type": encoder.content_type},
                timeout=ctx.timeout,
            )
        r.raise_for_status()
        return Result(wl.payload, reply=_reply_json(r.content))

    return run


def up_httpx(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import httpx

    data = dict(wl.fields) or None

    def run(sink: Any) -> Result:
        with contextlib.ExitStack() as stack:
            files = [
                (name, (os.path.basename(f.name), f, FILE_TYPE)) for name, f in _open_all(wl, stack)
            ]
            with httpx.Client(timeout=ctx.timeout) as client:
                r = client.post(ctx.target, data=data, files=files)
        r.raise_for_status()
        return Result(wl.payload, reply=_reply_json(r.content))

    return run


def up_aiohttp(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    import aiohttp

    async def main() -> Result:
        with contextlib.ExitStack() as stack:
            form = aiohttp.FormData()
            for name, value in wl.fields:
                form.add_field(name, value)
            for name, f in _open_all(wl, stack):
                form.add_field(name, f, filename=os.path.basename(f.name), content_type=FILE_TYPE)
            timeout = aiohttp.ClientTimeout(total=ctx.timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(ctx.target, data=form) as r,
            ):
                r.raise_for_status()
                raw = await r.read()
        return Result(wl.payload, reply=_reply_json(raw))

    return lambda sink: asyncio.run(main())


# --------------------------------------------------------------------------- limits


def _aligned(size: int) -> memoryview:
    """A page-aligned, pre-touched buffer. The limits use these because on this CPU kind a
    kernel copy into a destination 16 bytes past a 64-byte boundary (where glibc puts a fresh
    1 MiB ``malloc``, so where ``bytearray(1 MiB)`` lands) from a page-aligned source runs at
    about a third of the speed: a limit must not be measured at its worst alignment."""
    buf = mmap.mmap(-1, size)
    view = memoryview(buf)
    view[:] = bytes(size)
    return view


def lim_read(wl: Workload, ctx: Ctx, block: int = MiB) -> Callable[[Any], Result]:
    buf = _aligned(block)

    def run(sink: Any) -> Result:
        n = 0
        for f in wl.files:
            with open(f.path, "rb", buffering=0) as fh:
                while got := fh.readinto(buf):
                    n += got
        return Result(n)

    return run


def lim_memcpy(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    size = 256 * MiB  # the source is larger than any cache, so the copy reads RAM
    src = _aligned(size)
    for offset in range(0, size, MiB):
        src[offset : offset + MiB] = os.urandom(MiB)
    dst = _aligned(MiB)
    total = wl.payload

    def run(sink: Any) -> Result:
        n = 0
        offset = 0
        while n < total:
            step = min(MiB, total - n)
            dst[:step] = src[offset : offset + step]
            n += step
            offset = (offset + MiB) % size
        return Result(n)

    return run


def _raw_post(ctx: Ctx, length: int) -> tuple[socket.socket, bytes]:
    host, port = ctx.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=ctx.timeout)
    head = (
        f"POST {ctx.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {FILE_TYPE}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return sock, head


def _raw_reply(sock: socket.socket) -> dict[str, Any]:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"server answered {head[:60]!r}")
    return _reply_json(body)


def lim_sendall(wl: Workload, ctx: Ctx, block: int = MiB) -> Callable[[Any], Result]:
    total = wl.payload
    buf = _aligned(block)
    buf[:] = os.urandom(block)

    def run(sink: Any) -> Result:
        sock, head = _raw_post(ctx, total)
        with sock:
            sock.sendall(head)
            left = total
            while left >= block:
                sock.sendall(buf)
                left -= block
            if left:
                sock.sendall(buf[:left])
            reply = _raw_reply(sock)
        return Result(total, reply=reply)

    return run


def lim_sendfile(wl: Workload, ctx: Ctx) -> Callable[[Any], Result]:
    total = sum(f.size for f in wl.files)

    def run(sink: Any) -> Result:
        sock, head = _raw_post(ctx, total)
        with sock:
            sock.sendall(head)
            for f in wl.files:
                with open(f.path, "rb") as fh:
                    if sock.sendfile(fh) != f.size:  # os.sendfile, waiting while it blocks
                        raise RuntimeError(f"sendfile sent a short count for {f.path}")
            reply = _raw_reply(sock)
        return Result(total, reply=reply)

    return run


# --------------------------------------------------------------------------- registry

BIG_FILES = ("big", "files1000")
ENCODE_WL = ("big", "files1000", "fields100k")


def _cases() -> list[Case]:
    c: list[Case] = []

    def add(mode: str, name: str, kind: str, prepare: Any, wls: tuple[str, ...], **kw: Any):
        c.append(Case(f"{mode}:{name}", name, mode, kind, prepare, wls, **kw))

    # encode-only
    add("encode", "poster_rs", "poster", enc_poster, ENCODE_WL, note="iterate the stream")
    add(
        "encode",
        "poster_rs path only",
        "poster",
        partial(enc_poster, typed=False),
        ("big",),
        note="bare Path: content type guessed by mimetypes",
    )
    add(
        "encode",
        "poster_rs cb=",
        "poster",
        partial(enc_poster, with_cb=True),
        ("big",),
        note="progress callback on",
    )
    add(
        "encode",
        "poster_rs MultipartParam",
        "poster",
        enc_poster_params,
        ("fields100k",),
        note="MultipartParam(name, value) per field, built in the timed part",
    )
    add("encode", "httpx", "peer", enc_httpx, ENCODE_WL, note="iterate Request.stream")
    add(
        "encode",
        "requests-toolbelt",
        "peer",
        enc_toolbelt,
        ENCODE_WL,
        note=f"MultipartEncoder.read({TOOLBELT_BLOCK}), as requests reads it",
    )
    add("encode", "aiohttp", "peer", enc_aiohttp, ENCODE_WL, note="MultipartWriter.write")
    add(
        "encode",
        "urllib3",
        "peer",
        enc_urllib3,
        ENCODE_WL,
        note="encode_multipart_formdata (in memory)",
    )
    add("encode", "requests", "peer", enc_requests, ENCODE_WL, note="files= prepare (in memory)")
    add(
        "encode",
        "page-cache read",
        "limit",
        lim_read,
        BIG_FILES,
        note="readinto, 1 MiB page-aligned buffer",
    )
    add(
        "encode",
        "page-cache read 64 KiB",
        "limit",
        partial(lim_read, block=64 * 1024),
        BIG_FILES,
        note="readinto, 64 KiB buffer (httpx's read size)",
    )
    add("encode", "memcpy", "limit", lim_memcpy, BIG_FILES, note="256 MiB in RAM -> 1 MiB buffer")
    # cold page cache: the files are evicted with posix_fadvise(DONTNEED) first
    add("encode-cold", "poster_rs", "poster", enc_poster, ("big",), cold=True)
    add("encode-cold", "httpx", "peer", enc_httpx, ("big",), cold=True)
    add("encode-cold", "disk read", "limit", lim_read, ("big",), cold=True)
    # end-to-end uploads
    add(
        "upload", "poster_rs urllib", "poster", up_poster_urllib, ENCODE_WL, note="register_openers"
    )
    add(
        "upload",
        "poster_rs urllib sendfile",
        "poster",
        partial(up_poster_urllib, sendfile=True),
        BIG_FILES,
        note="register_openers, use_sendfile=True",
    )
    add("upload", "poster_rs requests", "poster", up_poster_requests, ENCODE_WL, note="data=stream")
    add("upload", "poster_rs httpx", "poster", up_poster_httpx, ENCODE_WL, note="content=stream")
    add("upload", "curl -F", "peer", up_curl, ENCODE_WL, note="subprocess, -K config")
    add("upload", "requests", "peer", up_requests, ENCODE_WL, note="files=")
    add("upload", "requests-toolbelt", "peer", up_toolbelt, ENCODE_WL, note="via requests")
    add("upload", "httpx", "peer", up_httpx, ENCODE_WL, note="files=")
    add("upload", "aiohttp", "peer", up_aiohttp, ENCODE_WL, note="FormData")
    add("upload", "sendall 1 MiB", "limit", lim_sendall, BIG_FILES, note="raw socket")
    add(
        "upload",
        "sendall 64 KiB",
        "limit",
        partial(lim_sendall, block=64 * 1024),
        BIG_FILES,
        note="raw socket",
    )
    add("upload", "sendfile", "limit", lim_sendfile, BIG_FILES, note="os.sendfile")
    # Content-Length from metadata
    add("length", "poster_rs get_headers", "poster", len_poster_get_headers, ("meta10k",))
    add("length", "poster_rs multipart_encode", "poster", len_poster_encode, ("meta10k",))
    add(
        "length",
        "httpx",
        "peer",
        partial(enc_httpx, length_only=True),
        ("meta10k",),
        note="open files + Request()",
    )
    add(
        "length",
        "requests-toolbelt",
        "peer",
        partial(enc_toolbelt, length_only=True),
        ("meta10k",),
        note="open files + MultipartEncoder().len",
    )
    return c


CASES: dict[str, Case] = {case.id: case for case in _cases()}

#: The reference limit of each mode, for the "x limit" column.
LIMIT_OF_MODE = {
    "encode": "page-cache read",
    "encode-cold": "disk read",
    "upload": "sendall 1 MiB",
}
