"""Streaming uploads through ``urllib.request``: poster 0.8.1's handlers, correct on Python 3.

``register_openers()`` installs (and returns) an opener whose handlers

- send a ``MultipartStream`` in its large chunks, with its Content-Length (or chunked when the
  length is unknown), and fill in ``Content-Type``/``Content-Length`` when the request lacks them;
- rewind the body before every send, so a 401/407 answered by an auth handler and a 307/308
  redirect re-send the whole body, while 301/302/303 turn a POST into a GET without a body;
- optionally send ``Expect: 100-continue`` and wait for the server's go-ahead, so a server that
  refuses the upload (401, 413, ...) answers before any body byte is sent;
- stop sending as soon as the server answers early, and return that response (or raise a clear
  error) instead of hanging;
- honour an SSL context given to ``StreamingHTTPSHandler(context=...)``.

The body goes out in 1 MiB ``send`` calls. ``StreamingHTTPConnection.use_sendfile = True``
sends file data with ``sendfile(2)`` instead (zero copy through Python); it is off because the
benchmark suite measured it slower on loopback here (2.7 GB/s against 4.8 GB/s for ``sendall``).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import select
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

from ._poster_rs import FileChangedError, Stream

__all__ = [
    "StreamingHTTPConnection",
    "StreamingHTTPHandler",
    "StreamingHTTPRedirectHandler",
    "StreamingHTTPSConnection",
    "StreamingHTTPSHandler",
    "get_handlers",
    "register_openers",
]

#: Block size for bodies that are file objects (http.client's default is 8 KiB).
BLOCKSIZE = 1 << 20
#: How long to wait for ``100 Continue`` before sending the body anyway (curl waits 1 s).
DEFAULT_EXPECT_TIMEOUT = 1.0
#: With ``expect_continue=True``, bodies from this size up (or of unknown size) ask first,
#: as curl does.
DEFAULT_EXPECT_THRESHOLD = 1 << 20

_START_ATTR = "_poster_rs_body_start"


class _PrefixedReader(io.RawIOBase):
    """Bytes already taken off a socket, then the socket: lets http.client parse a response
    whose first bytes were read while the body was going out."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        super().__init__()
        self._prefix = prefix
        # A socket file keeps the descriptor open after the socket object is closed (urllib
        # closes it right after getresponse(), before the response body is read).
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(view) or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def _without_interim(data: bytes) -> tuple[bytes, bool]:
    """Drops complete interim (1xx) responses from the start of ``data``. Returns what is left
    and whether that is known to be the start of a final response (False while it may still be
    an incomplete interim response)."""
    while True:
        if len(data) < 12:
            return data, False
        status = data[9:12]
        if not (data.startswith(b"HTTP/") and status[:1] == b"1"):
            return data, True
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return data, False
        data = data[end + 4 :]
        if not data:
            return data, False


def _recv_nowait(sock: Any) -> bytes | None:
    """What the peer has sent, without waiting: ``None`` if no application data is there (on
    TLS, records such as session tickets make a socket readable without any), ``b""`` at EOF."""
    saved = sock.gettimeout()
    try:
        sock.settimeout(0.0)
        return sock.recv(65536)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    finally:
        sock.settimeout(saved)


class _PrefixedSocket:
    """A socket stand-in whose ``makefile`` starts with bytes already read."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        self._sock = sock
        self._prefix = prefix

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_PrefixedReader(self._prefix, self._sock))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _ready(sock: Any, timeout: float | None, *, write: bool) -> tuple[bool, bool]:
    """``(readable, writable)`` within ``timeout`` seconds (``None``: wait for ever). poll(),
    not select(): descriptors above 1024 are common in jobs that ship thousands of files."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | (select.POLLOUT if write else 0))
    events = poller.poll(None if timeout is None else timeout * 1000)
    mask = 0
    for _, event in events:
        mask |= event
    readable = bool(mask & (select.POLLIN | select.POLLHUP | select.POLLERR))
    return readable, bool(mask & select.POLLOUT)


class _StreamingMixin:
    """What ``StreamingHTTPConnection`` and ``StreamingHTTPSConnection`` add to http.client."""

    sock: Any
    _buffer: list[bytes]
    _http_vsn: int
    _method: str | None
    response_class: type[http.client.HTTPResponse]

    #: Send file data of poster_rs streams over plain TCP with ``sendfile(2)`` instead of 1 MiB
    #: ``send`` calls. Off by default: on loopback here the benchmark suite measured
    #: ``sendfile`` at 2.7 GB/s against 4.8 GB/s for ``sendall`` of 1 MiB buffers.
    use_sendfile = False

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *args: Any,
        expect_timeout: float = DEFAULT_EXPECT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("blocksize", BLOCKSIZE)
        super().__init__(host, port, *args, **kwargs)  # type: ignore[call-arg]
        self._init_streaming(expect_timeout)

    def _init_streaming(self, expect_timeout: float) -> None:
        self.expect_timeout = expect_timeout
        self._expect_continue = False
        self._early_status = b""
        self._send_error: OSError | None = None
        self._body_incomplete = False

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        self._expect_continue = False
        self._early_status = b""
        self._send_error = None
        self._body_incomplete = False
        super().putrequest(method, url, *args, **kwargs)  # type: ignore[misc]

    def putheader(self, header: str | bytes, *values: Any) -> None:
        name = header.decode("latin-1") if isinstance(header, bytes) else header
        if name.lower() == "expect" and any("100-continue" in str(v).lower() for v in values):
            self._expect_continue = True
        super().putheader(header, *values)  # type: ignore[misc]

    def _server_answered(self) -> bool:
        """Whether the server has begun its final answer (or closed) while the body is still
        going out. Interim 1xx responses, and TLS records without data, do not count."""
        sock = self.sock
        if sock is None:
            return True
        pending = getattr(sock, "pending", None)
        if not (pending is not None and pending()) and not _ready(sock, 0, write=False)[0]:
            return False
        data = _recv_nowait(sock)
        if data is None:
            return False
        if not data:
            return True
        self._early_status, final = _without_interim(self._early_status + data)
        return final

    def _await_continue(self) -> bool:
        """Waits for the answer to ``Expect: 100-continue``. True: send the body (the server
        said 100, or said nothing in time). False: a final response came first."""
        sock = self.sock
        saved = sock.gettimeout()
        head = bytearray()
        try:
            sock.settimeout(self.expect_timeout)
            while not head.endswith(b"\r\n\r\n"):
                # One byte at a time: nothing past the interim response may be consumed.
                byte = sock.recv(1)
                if not byte:
                    break
                head += byte
                sock.settimeout(saved if saved is not None else None)
                if len(head) > 65536:
                    break
        except TimeoutError:
            if not head:
                return True
        finally:
            sock.settimeout(saved)
        status = head.split(b" ", 2)
        if len(status) >= 2 and status[1] == b"100" and head.endswith(b"\r\n\r\n"):
            return True
        self._early_status = bytes(head)
        self._body_incomplete = True
        return False

    def _body_chunks(self, body: Any) -> Iterable[Any]:
        if hasattr(body, "read"):
            return self._read_blocks(body)
        if isinstance(body, str):
            return (body.encode("iso-8859-1"),)
        try:
            memoryview(body)
        except TypeError:
            try:
                return iter(body)
            except TypeError:
                raise TypeError(
                    f"message_body should be a bytes-like object or an iterable, got {type(body)!r}"
                ) from None
        return (body,)

    @staticmethod
    def _read_blocks(body: Any) -> Iterator[bytes]:
        while True:
            block = body.read(BLOCKSIZE)
            if not block:
                break
            if isinstance(block, str):
                block = block.encode("iso-8859-1")
            yield block

    def _send_watching(self, data: Any) -> bool:
        """Sends ``data`` while watching for an early answer: False as soon as the server has
        begun its final response (even while the send buffer is full and the server has
        stopped reading), True when everything went out."""
        sock = self.sock
        view = memoryview(data).cast("B")
        timeout = sock.gettimeout()
        while view:
            readable, writable = _ready(sock, timeout, write=True)
            if not readable and not writable:
                raise TimeoutError("timed out sending the request body")
            if readable and self._server_answered():
                return False
            if writable:
                view = view[sock.send(view) :]
        return True

    def _sendfile_watching(self, fd: int, offset: int, count: int) -> bool:
        """Sends ``count`` bytes of file ``fd`` from ``offset`` with ``sendfile(2)`` (no copy
        through Python), watching for an early answer like ``_send_watching``."""
        sock = self.sock
        out = sock.fileno()
        timeout = sock.gettimeout()
        while count:
            readable, writable = _ready(sock, timeout, write=True)
            if not readable and not writable:
                raise TimeoutError("timed out sending the request body")
            if readable and self._server_answered():
                return False
            if not writable:
                continue
            try:
                sent = os.sendfile(out, fd, offset, count)
            except BlockingIOError:
                continue
            if sent == 0:
                raise FileChangedError(
                    f"a file shrank while it was being sent ({count} bytes missing at byte "
                    f"{offset}); the body would not match its Content-Length"
                )
            offset += sent
            count -= sent
        return True

    def _send_pieces(self, body: Any) -> None:
        """A poster_rs stream over plain TCP: headers and small parts as bytes, file data
        with ``sendfile(2)`` straight from the page cache."""
        while (piece := body._next_piece()) is not None:
            if isinstance(piece, bytes):
                done = self._send_watching(piece)
            else:
                done = self._sendfile_watching(*piece)
            if not done:
                self._body_incomplete = True
                return

    def _send_body(self, body: Any, encode_chunked: bool) -> None:
        chunked = encode_chunked and self._http_vsn == 11
        if (
            self.use_sendfile
            and not chunked
            and isinstance(body, Stream)
            and type(self.sock) is socket.socket
        ):
            self._send_pieces(body)
            return
        for chunk in self._body_chunks(body):
            if not chunk:
                continue
            if chunked:
                pieces: tuple[Any, ...] = (f"{len(chunk):X}\r\n".encode("ascii"), chunk, b"\r\n")
            else:
                pieces = (chunk,)
            for piece in pieces:
                if not self._send_watching(piece):
                    # The server answered before taking the whole body (413, 401, a redirect):
                    # stop here and let getresponse() return that answer.
                    self._body_incomplete = True
                    return
        if chunked and not self._send_watching(b"0\r\n\r\n"):
            self._body_incomplete = True

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        self._buffer.extend((b"", b""))
        msg = b"\r\n".join(self._buffer)
        del self._buffer[:]
        if (
            isinstance(message_body, bytes)
            and not self._expect_continue
            and not encode_chunked
            and len(message_body) <= 65536
        ):
            # One write for a small body avoids the Nagle / delayed-ACK stall.
            msg += message_body
            message_body = None
        self.send(msg)  # type: ignore[attr-defined]
        if message_body is None:
            return
        if self._expect_continue and not self._await_continue():
            return
        try:
            self._send_body(message_body, encode_chunked)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            # The server closed while the body was going out; it may have answered first.
            self._send_error = exc
            self._body_incomplete = True

    def getresponse(self) -> http.client.HTTPResponse:
        send_error = self._send_error
        early = self._early_status
        real_sock = self.sock
        try:
            if early:
                self.sock = _PrefixedSocket(real_sock, early)
            response = super().getresponse()  # type: ignore[misc]
        except (http.client.HTTPException, OSError) as exc:
            if send_error is not None:
                raise send_error from exc
            raise
        finally:
            if early:
                self.sock = real_sock
                self._early_status = b""
        if self._body_incomplete:
            # The body was cut short: this connection cannot carry another request.
            response.will_close = True
        return response


class StreamingHTTPConnection(_StreamingMixin, http.client.HTTPConnection):
    """``http.client.HTTPConnection`` that streams bodies in large chunks, honours
    ``Expect: 100-continue`` and stops sending when the server answers early."""


class StreamingHTTPSConnection(_StreamingMixin, http.client.HTTPSConnection):
    """The HTTPS counterpart of ``StreamingHTTPConnection``."""


def _is_rewindable(data: Any) -> bool:
    return callable(getattr(data, "seek", None)) and callable(getattr(data, "tell", None))


class _BodyPreparation:
    """Shared request preparation of the HTTP and HTTPS handlers."""

    expect_continue: bool | int
    expect_timeout: float

    def _prepare(self, req: urllib.request.Request) -> None:
        data = req.data
        if data is None or isinstance(data, (bytes, bytearray, memoryview, str)):
            return
        if _is_rewindable(data):
            start = getattr(req, _START_ATTR, None)
            if start is None:
                with contextlib.suppress(OSError, ValueError):
                    setattr(req, _START_ATTR, data.tell())
            else:
                # The same body is being sent again: an auth retry or a 307/308 redirect.
                data.seek(start)
        content_type = getattr(data, "content_type", None)
        if isinstance(content_type, str) and not req.has_header("Content-type"):
            req.add_unredirected_header("Content-type", content_type)
        total = getattr(data, "total", None)
        size: int | None = None
        if isinstance(total, int):
            size = total - getattr(req, _START_ATTR, 0)
            if not req.has_header("Content-length"):
                req.add_unredirected_header("Content-length", str(size))
        elif req.has_header("Content-length"):
            size = int(req.get_header("Content-length") or 0)
        if self.expect_continue and not req.has_header("Expect"):
            threshold = (
                DEFAULT_EXPECT_THRESHOLD
                if self.expect_continue is True
                else int(self.expect_continue)
            )
            if size is None or size >= threshold:
                req.add_unredirected_header("Expect", "100-continue")


class StreamingHTTPHandler(_BodyPreparation, urllib.request.HTTPHandler):
    """``urllib.request.HTTPHandler`` for streamed bodies.

    ``expect_continue``: ``True`` sends ``Expect: 100-continue`` for bodies of 1 MiB or more
    (or of unknown size), an int sets that threshold in bytes; a request may also carry the
    header itself. ``expect_timeout`` is how long to wait for the go-ahead.
    """

    handler_order = 499

    def __init__(
        self,
        debuglevel: int = 0,
        *,
        expect_continue: bool | int = False,
        expect_timeout: float = DEFAULT_EXPECT_TIMEOUT,
    ) -> None:
        super().__init__(debuglevel)
        self.expect_continue = expect_continue
        self.expect_timeout = expect_timeout

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(StreamingHTTPConnection, req, expect_timeout=self.expect_timeout)

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        self._prepare(req)
        return self.do_request_(req)


class StreamingHTTPSHandler(_BodyPreparation, urllib.request.HTTPSHandler):
    """``urllib.request.HTTPSHandler`` for streamed bodies; the SSL ``context`` is honoured."""

    handler_order = 499

    def __init__(
        self,
        debuglevel: int = 0,
        context: Any = None,
        check_hostname: bool | None = None,
        *,
        expect_continue: bool | int = False,
        expect_timeout: float = DEFAULT_EXPECT_TIMEOUT,
    ) -> None:
        super().__init__(debuglevel, context, check_hostname)
        self.expect_continue = expect_continue
        self.expect_timeout = expect_timeout

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            StreamingHTTPSConnection,
            req,
            context=self._context,  # type: ignore[attr-defined]
            expect_timeout=self.expect_timeout,
        )

    def https_request(self, req: urllib.request.Request) -> urllib.request.Request:
        self._prepare(req)
        return self.do_request_(req)


_CONTENT_HEADERS = ("content-length", "content-type", "transfer-encoding", "expect")
#: Dropped on a redirect to another origin, as curl does when the scheme, host or port changes.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _body_redirect_refusal(old_scheme: str, new_scheme: str) -> str | None:
    """Why a 307/308 from ``old_scheme`` to ``new_scheme`` must not re-send the body, if so."""
    if new_scheme not in _DEFAULT_PORTS:
        return f"the body cannot be sent over {new_scheme or 'no scheme'!r}"
    if old_scheme == "https" and new_scheme == "http":
        # Dropping the body instead would send another request than the one asked for; the
        # caller gets the 307/308 with its Location and may re-post there on purpose.
        return "it would send the body, sent over https, in clear text over http"
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in; raises ``ValueError``
    for a port that is not a number in range."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or _DEFAULT_PORTS.get(scheme)


class StreamingHTTPRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Redirects as browsers and curl do: 301/302/303 turn a POST into a GET without a body;
    307/308 repeat the method and re-send the whole body, rewound.

    A redirect to another origin (scheme, host or port) drops ``Authorization``,
    ``Proxy-Authorization`` and ``Cookie``. A 307/308 from ``https`` to ``http`` that would
    re-send a body is refused with an ``HTTPError`` (the redirect's status) instead of sending
    the body in clear text, and so is a 307/308 to a scheme other than ``http``/``https``.
    """

    handler_order = 499

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        method = req.get_method()
        newurl = newurl.replace(" ", "%20")
        try:
            old_origin, new_origin = _origin(req.full_url), _origin(newurl)
        except ValueError as exc:
            raise urllib.error.HTTPError(
                req.full_url, code, f"redirect to an invalid URL {newurl!r}: {exc}", headers, fp
            ) from None
        same_origin = old_origin == new_origin
        kept = {
            k: v
            for k, v in req.headers.items()
            if same_origin or k.lower() not in _CREDENTIAL_HEADERS
        }
        if code in (301, 302, 303):
            new_method = "HEAD" if method == "HEAD" else "GET"
            return urllib.request.Request(
                newurl,
                headers={k: v for k, v in kept.items() if k.lower() not in _CONTENT_HEADERS},
                origin_req_host=req.origin_req_host,
                unverifiable=True,
                method=new_method,
            )
        if code in (307, 308):
            data = req.data
            if data is not None:
                refusal = _body_redirect_refusal(old_origin[0], new_origin[0])
                if refusal is not None:
                    raise urllib.error.HTTPError(
                        req.full_url,
                        code,
                        f"{code} redirect to {newurl} refused: {refusal}",
                        headers,
                        fp,
                    )
            in_memory = isinstance(data, (bytes, bytearray, memoryview))
            if data is not None and not in_memory and not _is_rewindable(data):
                raise urllib.error.HTTPError(req.full_url, code, msg, headers, fp)
            new = urllib.request.Request(
                newurl,
                data=data,
                headers=kept,
                origin_req_host=req.origin_req_host,
                unverifiable=True,
                method=method,
            )
            for key, value in req.unredirected_hdrs.items():
                if key.lower() in ("content-length", "content-type", "expect"):
                    new.add_unredirected_header(key, value)
            start = getattr(req, _START_ATTR, None)
            if start is not None:
                setattr(new, _START_ATTR, start)
            return new
        raise urllib.error.HTTPError(req.full_url, code, msg, headers, fp)

    http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302


def get_handlers() -> list[type[urllib.request.BaseHandler]]:
    """The handler classes ``register_openers`` installs (poster 0.8.1's function)."""
    return [StreamingHTTPHandler, StreamingHTTPRedirectHandler, StreamingHTTPSHandler]


def register_openers(
    *,
    context: Any = None,
    expect_continue: bool | int = False,
    expect_timeout: float = DEFAULT_EXPECT_TIMEOUT,
) -> urllib.request.OpenerDirector:
    """Builds an opener with the streaming handlers, installs it as urllib's global opener
    and returns it. ``context`` is the SSL context for HTTPS; ``expect_continue`` and
    ``expect_timeout`` are as for ``StreamingHTTPHandler``."""
    opener = urllib.request.build_opener(
        StreamingHTTPHandler(expect_continue=expect_continue, expect_timeout=expect_timeout),
        StreamingHTTPRedirectHandler(),
        StreamingHTTPSHandler(
            context=context, expect_continue=expect_continue, expect_timeout=expect_timeout
        ),
    )
    urllib.request.install_opener(opener)
    return opener
