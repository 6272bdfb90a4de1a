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

Over plain TCP a poster_rs stream sends itself from Rust with the GIL released
(``MultipartStream.send_to``): positioned reads into one reused buffer and ``send(2)``, or
``sendfile(2)`` for file data with ``StreamingHTTPConnection.use_sendfile = True``. Over TLS,
and for other bodies, it goes out chunk by chunk from Python.
"""

from __future__ import annotations

import contextlib
import http.client
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ._transport.chunks import BLOCKSIZE
from ._transport.early import PrefixedSocket
from ._transport.expect import await_continue
from ._transport.response import StreamingResponse
from ._transport.send import can_send_natively, send_chunks, send_natively

__all__ = [
    "StreamingHTTPConnection",
    "StreamingHTTPHandler",
    "StreamingHTTPRedirectHandler",
    "StreamingHTTPSConnection",
    "StreamingHTTPSHandler",
    "get_handlers",
    "register_openers",
]

#: How long to wait for ``100 Continue`` before sending the body anyway (curl waits 1 s).
DEFAULT_EXPECT_TIMEOUT = 1.0
#: With ``expect_continue=True``, bodies from this size up (or of unknown size) ask first,
#: as curl does.
DEFAULT_EXPECT_THRESHOLD = 1 << 20

_START_ATTR = "_poster_rs_body_start"


class _StreamingMixin:
    """What ``StreamingHTTPConnection`` and ``StreamingHTTPSConnection`` add to http.client:
    the body goes out through ``_transport`` (natively for poster_rs streams over plain TCP),
    and whatever the server said meanwhile is handed to ``getresponse``.

    The ``type: ignore`` comments on its calls to ``HTTPConnection`` methods (through
    ``super()`` or ``self.send``) stay because a mixin's base is only known in the classes that
    combine it with ``http.client.HTTPConnection``; mypy checks those calls against ``object``."""

    sock: Any
    _buffer: list[bytes]
    _http_vsn: int
    _method: str | None

    response_class: type[http.client.HTTPResponse] = StreamingResponse

    #: Send file data of poster_rs streams over plain TCP with ``sendfile(2)`` instead of
    #: ``send(2)`` from a reused buffer. Off by default: see the README's benchmark table.
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
        self.expect_timeout = expect_timeout
        self._forget_request()

    def _forget_request(self) -> None:
        self._expect_continue = False
        #: What the server sent while the body went out: the start of its response.
        self._early = b""
        self._send_error: OSError | None = None
        self._body_incomplete = False

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        self._forget_request()
        super().putrequest(method, url, *args, **kwargs)  # type: ignore[misc]

    def putheader(self, header: str | bytes, *values: Any) -> None:
        name = header.decode("latin-1") if isinstance(header, bytes) else header
        if name.lower() == "expect" and any("100-continue" in str(v).lower() for v in values):
            self._expect_continue = True
        super().putheader(header, *values)  # type: ignore[misc]

    def _send_body(self, body: Any, encode_chunked: bool, head: bytes | None = None) -> None:
        chunked = encode_chunked and self._http_vsn == 11
        if can_send_natively(body, self.sock):
            done, self._early = send_natively(
                body, self.sock, chunked=chunked, use_sendfile=self.use_sendfile, head=head
            )
        else:
            done, self._early = send_chunks(self.sock, body, chunked=chunked)
        # When the server answered before taking the whole body (413, 401, a redirect),
        # getresponse() returns that answer.
        self._body_incomplete = not done

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
        if message_body is not None and not self._expect_continue:
            if self.sock is None and self.auto_open:  # type: ignore[attr-defined]
                self.connect()  # type: ignore[attr-defined]
            if can_send_natively(message_body, self.sock):
                # The head leaves in the same system call as the body's first bytes.
                self._send_body_reporting_loss(message_body, encode_chunked, head=msg)
                return
        self.send(msg)  # type: ignore[attr-defined]
        if message_body is None:
            return
        if self._expect_continue:
            answer = await_continue(self.sock, self.expect_timeout)
            if answer is not None:
                self._early = answer
                self._body_incomplete = True
                return
        self._send_body_reporting_loss(message_body, encode_chunked)

    def _send_body_reporting_loss(
        self, body: Any, encode_chunked: bool, head: bytes | None = None
    ) -> None:
        try:
            self._send_body(body, encode_chunked, head)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            # The server closed while the body was going out; it may have answered first.
            self._send_error = exc
            self._body_incomplete = True

    def getresponse(self) -> http.client.HTTPResponse:
        send_error = self._send_error
        early = self._early
        real_sock = self.sock
        try:
            if early:
                self.sock = PrefixedSocket(real_sock, early)
            response: http.client.HTTPResponse = super().getresponse()  # type: ignore[misc]
        except (http.client.HTTPException, OSError) as exc:
            if send_error is not None:
                raise send_error from exc
            raise
        finally:
            if early:
                self.sock = real_sock
                self._early = b""
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
        data: Any = req.data
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
            # HTTPSHandler keeps its SSL context in a private attribute typeshed does not list.
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
