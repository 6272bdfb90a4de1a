"""Uploads through ``poster_rs.streaminghttp`` + ``urllib.request`` against real sockets on
127.0.0.1 (issue 3, point 1): parsing servers, TLS, chunk sizes, redirects, auth challenges,
``Expect: 100-continue``, early answers and dropped connections, chunked bodies."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import poster_rs
import pytest
from _servers import (
    PASSWORD,
    TIMEOUT,
    USER,
    MiB,
    RawServer,
    check_upload,
    count_incoming,
    http_response,
    parse_multipart,
    read_head,
    recv_exactly,
    reset_close,
    sha256,
    upload_server_record,
)
from poster_rs.streaminghttp import (
    StreamingHTTPConnection,
    StreamingHTTPHandler,
    StreamingHTTPRedirectHandler,
    StreamingHTTPSHandler,
    get_handlers,
    register_openers,
)

pytest_plugins = ["_fixtures"]  # servers, payloads, TLS


@pytest.fixture(autouse=True)
def _restore_global_opener() -> Iterator[None]:
    yield
    urllib.request.install_opener(None)


def post(
    opener: Any,
    url: str,
    stream: Any,
    headers: dict[str, str] | None,
    timeout: float = TIMEOUT,
    **kw: Any,
) -> Any:
    request = urllib.request.Request(url, data=stream, headers=headers or {}, **kw)
    with opener.open(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def upload_file_params(path: os.PathLike[str] | str, name: str = "file") -> list[Any]:
    return [("field", "value"), poster_rs.MultipartParam.from_file(name, str(path))]


# --- plain uploads ------------------------------------------------------------------------------


def test_register_openers_installs_and_returns_the_opener() -> None:
    opener = register_openers()
    assert isinstance(opener, urllib.request.OpenerDirector)
    assert urllib.request._opener is opener  # type: ignore[attr-defined]
    kinds = {type(h) for h in opener.handlers}
    assert set(get_handlers()) <= kinds


def test_plain_upload(parsing_server: Any, payload: Any) -> None:
    register_openers()
    stream, headers = payload.encode()
    with stream:
        request = urllib.request.Request(
            parsing_server.url + "upload", data=stream, headers=headers
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            record = json.loads(response.read())
        total = len(stream)
    assert total > 8 * MiB
    check_upload(record, payload)
    assert record["headers"]["content-length"] == str(total)
    assert "transfer-encoding" not in record["headers"]
    assert record["headers"]["content-type"] == headers["Content-Type"]
    assert record["body_bytes"] == total


def test_headers_are_filled_in_when_the_request_has_none(
    werkzeug_server: Any, small_payload: Any
) -> None:
    opener = register_openers()
    stream, headers = small_payload.encode()
    with stream:
        status, record = post(opener, werkzeug_server.url + "upload", stream, None)
    assert status == 200
    check_upload(record, small_payload)
    assert record["headers"]["content-type"] == headers["Content-Type"] == stream.content_type
    assert record["headers"]["content-length"] == headers["Content-Length"] == str(len(stream))
    assert "transfer-encoding" not in record["headers"]


def test_put_method(werkzeug_server: Any, small_payload: Any) -> None:
    opener = register_openers()
    stream, headers = small_payload.encode()
    with stream:
        _, record = post(opener, werkzeug_server.url + "upload", stream, headers, method="PUT")
    assert record["method"] == "PUT"
    check_upload(record, small_payload)


def test_upload_to_upload_server(upload_server: Any, payload: Any) -> None:
    opener = register_openers()
    stream, headers = payload.encode()
    with stream:
        status, reply = post(opener, upload_server.url + "upload", stream, headers)
        total = len(stream)
    assert status == 200
    record = upload_server_record(reply)
    check_upload(record, payload)
    assert record["body_bytes"] == total


# --- TLS ----------------------------------------------------------------------------------------


def _client_context(tls: Any, version: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls.ca.configure_trust(context)
    if version == "TLSv1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_https_context_is_honoured(
    werkzeug_https_server: Any, tls: Any, payload: Any, version: str
) -> None:
    url = werkzeug_https_server.url + "upload"
    assert url.startswith("https://127.0.0.1:")
    context = _client_context(tls, version)
    opener = urllib.request.build_opener(
        StreamingHTTPHandler(),
        StreamingHTTPRedirectHandler(),
        StreamingHTTPSHandler(context=context),
    )
    stream, headers = payload.encode()
    with stream:
        status, record = post(opener, url, stream, headers, timeout=3)
    assert status == 200
    check_upload(record, payload)

    # The same through register_openers(context=...). (A body of many chunks: the TLS 1.3
    # bug below can let a one-chunk body through when the session ticket comes late.)
    opener = register_openers(context=context)
    stream, headers = payload.encode()
    with stream:
        status, record = post(opener, url, stream, headers, timeout=3)
    check_upload(record, payload)


def test_https_default_context_rejects_an_unknown_ca(
    werkzeug_https_server: Any, small_payload: Any
) -> None:
    opener = urllib.request.build_opener(
        StreamingHTTPHandler(),
        StreamingHTTPRedirectHandler(),
        StreamingHTTPSHandler(context=ssl.create_default_context()),
    )
    stream, headers = small_payload.encode()
    with stream, pytest.raises(urllib.error.URLError) as info:
        post(opener, werkzeug_https_server.url + "upload", stream, headers)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError), info.value
    assert werkzeug_https_server.requests == []


# --- chunk sizes --------------------------------------------------------------------------------


class _RecordingSocket:
    """Delegates to a socket and records the size of every ``sendall``/``send``."""

    def __init__(self, sock: socket.socket, sizes: list[int]) -> None:
        self._sock = sock
        self._sizes = sizes

    def sendall(self, data: Any, *args: Any) -> None:
        self._sizes.append(memoryview(data).nbytes)
        self._sock.sendall(data, *args)

    def send(self, data: Any, *args: Any) -> int:
        sent = self._sock.send(data, *args)
        self._sizes.append(sent)
        return sent

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        sent = self._sock.sendmsg(buffers, *args)
        self._sizes.append(sent)
        return sent

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_body_goes_out_in_large_chunks(
    werkzeug_server: Any, payload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, headers = payload.encode()
    # The stream has no read(): http.client would read 8 KiB blocks from anything that has one.
    assert not hasattr(stream, "read")
    assert hasattr(stream.as_file(), "read")
    chunk_sizes = [len(c) for c in stream]
    stream.seek(0)
    assert max(chunk_sizes) == MiB
    assert sum(chunk_sizes) == len(stream)
    assert len(chunk_sizes) <= len(stream) // MiB + 4  # file data in full 1 MiB chunks

    sizes: list[int] = []
    original = StreamingHTTPConnection.connect

    def connect(self: Any) -> None:
        original(self)
        self.sock = _RecordingSocket(self.sock, sizes)

    monkeypatch.setattr(StreamingHTTPConnection, "connect", connect)
    opener = register_openers()
    with stream:
        status, record = post(opener, werkzeug_server.url + "upload", stream, headers)
    assert status == 200
    check_upload(record, payload)
    head_size, body_sizes = sizes[0], sizes[1:]
    assert head_size < 4096
    assert sum(body_sizes) == len(stream)
    assert max(body_sizes) >= MiB
    assert len(body_sizes) <= len(stream) // MiB + 4, body_sizes
    assert 8192 not in body_sizes


# --- redirects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303])
def test_post_redirected_by_30x_becomes_get_without_body(
    werkzeug_server: Any, small_payload: Any, code: int
) -> None:
    opener = register_openers()
    target = werkzeug_server.url + "target"
    stream, headers = small_payload.encode()
    with stream:
        status, record = post(
            opener, f"{werkzeug_server.url}redirect/{code}?to={target}", stream, headers
        )
    assert status == 200
    first, second = werkzeug_server.requests
    assert first["method"] == "POST"
    assert first["body_bytes"] == int(headers["Content-Length"])
    assert record == second
    assert second["method"] == "GET"
    assert second["path"] == "/target"
    assert second["body_bytes"] == 0
    for name in ("content-type", "content-length", "transfer-encoding", "expect"):
        assert name not in second["headers"], second["headers"]


@pytest.mark.parametrize("code", [307, 308])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_307_308_resend_the_rewound_body(
    werkzeug_server: Any, payload: Any, code: int, method: str
) -> None:
    opener = register_openers()
    target = werkzeug_server.url + "target"
    stream, headers = payload.encode()
    with stream:
        whole = sha256(b"".join(stream))
        stream.seek(0)
        status, record = post(
            opener,
            f"{werkzeug_server.url}redirect/{code}?to={target}",
            stream,
            headers,
            method=method,
        )
        total = len(stream)
    assert status == 200
    first, second = werkzeug_server.requests
    assert (first["body_bytes"], first["body_sha256"]) == (total, whole)
    assert second["method"] == method
    assert second["path"] == "/target"
    assert second["headers"]["content-length"] == str(total)
    check_upload(second, payload)
    assert record == second


def test_307_after_the_server_read_part_of_the_body(werkzeug_server: Any, payload: Any) -> None:
    target = werkzeug_server.url + "target"

    def redirect_early(conn: socket.socket, server: RawServer) -> None:
        head = read_head(conn)
        recv_exactly(conn, MiB, head.rest)
        conn.sendall(http_response(307, "Temporary Redirect", b"", {"Location": target}))
        conn.shutdown(socket.SHUT_WR)
        server.seen.append(MiB + count_incoming(conn, idle=1.0))

    opener = register_openers()
    stream, headers = payload.encode()
    with RawServer(redirect_early) as raw, stream:
        status, record = post(opener, raw.url + "upload", stream, headers)
        raw.wait_done()
        assert raw.errors == []
    assert status == 200
    check_upload(record, payload)
    assert len(werkzeug_server.requests) == 1


def test_307_to_another_host_drops_credentials(werkzeug_server: Any, small_payload: Any) -> None:
    # localhost vs 127.0.0.1: a different host for urllib.
    target = werkzeug_server.url.replace("127.0.0.1", "localhost") + "target"
    opener = register_openers()
    stream, headers = small_payload.encode()
    headers = {**headers, "Authorization": "Bearer x", "X-Other": "kept"}
    with stream:
        _, record = post(opener, f"{werkzeug_server.url}redirect/307?to={target}", stream, headers)
    check_upload(record, small_payload)
    assert "authorization" not in record["headers"]
    assert record["headers"]["x-other"] == "kept"


# --- authentication challenges ------------------------------------------------------------------


def test_401_basic_auth_resends_the_rewound_body(werkzeug_server: Any, payload: Any) -> None:
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, werkzeug_server.url, USER, PASSWORD)
    auth_handler = urllib.request.HTTPBasicAuthHandler(passwords)
    opener = urllib.request.build_opener(*[h() for h in get_handlers()], auth_handler)
    stream, headers = payload.encode()
    with stream:
        status, record = post(opener, werkzeug_server.url + "auth", stream, headers)
        total = len(stream)
    assert status == 200
    first, second = werkzeug_server.requests
    assert "authorization" not in first["headers"]
    assert first["body_bytes"] == total
    assert second["headers"]["authorization"].startswith("Basic ")
    assert second["headers"]["content-length"] == str(total)
    check_upload(second, payload)
    assert record == second


def test_early_401_then_auth_resends_the_whole_body(payload: Any) -> None:
    """The server answers 401 right after the head (the client has sent part of the body at
    most); the auth handler's retry must start the body over from its first byte."""
    expected_auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def handler(conn: socket.socket, server: RawServer) -> None:
        head = read_head(conn)
        if head.headers.get("authorization") != expected_auth:
            challenge = {"WWW-Authenticate": 'Basic realm="raw"', "Connection": "close"}
            conn.sendall(http_response(401, "Unauthorized", b"", challenge))
            conn.shutdown(socket.SHUT_WR)
            server.seen.append(("challenged", count_incoming(conn, idle=1.0)))
            return
        body = recv_exactly(conn, int(head.headers["content-length"]), head.rest)
        server.seen.append(("accepted", len(body)))
        reply = json.dumps(parse_multipart(body, head.headers["content-type"])).encode()
        conn.sendall(http_response(200, "OK", reply, {"Connection": "close"}))

    stream, headers = payload.encode()
    with RawServer(handler) as raw, stream:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, raw.url, USER, PASSWORD)
        auth_handler = urllib.request.HTTPBasicAuthHandler(passwords)
        opener = urllib.request.build_opener(*[h() for h in get_handlers()], auth_handler)
        status, record = post(opener, raw.url + "upload", stream, headers)
        raw.wait_done(2)
        assert raw.errors == []
        total = len(stream)
    assert status == 200
    check_upload(record, payload)
    (accepted, body_bytes), (challenged, _) = sorted(raw.seen)  # the 401 drains for a while
    assert (accepted, challenged) == ("accepted", "challenged")
    assert body_bytes == total


def test_401_via_register_openers_and_add_handler(werkzeug_server: Any, small_payload: Any) -> None:
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, werkzeug_server.url, USER, PASSWORD)
    opener = register_openers()
    opener.add_handler(urllib.request.HTTPBasicAuthHandler(passwords))
    stream, headers = small_payload.encode()
    with stream:
        request = urllib.request.Request(werkzeug_server.url + "auth", data=stream, headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            record = json.loads(response.read())
    check_upload(record, small_payload)
    assert len(werkzeug_server.requests) == 2


def test_401_without_credentials_is_an_http_error(werkzeug_server: Any, small_payload: Any) -> None:
    opener = register_openers()
    stream, headers = small_payload.encode()
    with stream, pytest.raises(urllib.error.HTTPError) as info:
        post(opener, werkzeug_server.url + "auth", stream, headers)
    with info.value:
        assert info.value.code == 401


def test_407_proxy_auth_resends_the_rewound_body(
    werkzeug_server: Any, payload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The werkzeug app plays the proxy: it answers 407 until Proxy-Authorization is right,
    # then parses the upload itself.
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, werkzeug_server.url, USER, PASSWORD)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": werkzeug_server.url}),
        urllib.request.ProxyBasicAuthHandler(passwords),
        *[h() for h in get_handlers()],
    )
    stream, headers = payload.encode()
    with stream:
        status, record = post(opener, "http://upload.invalid/proxy-auth", stream, headers)
        total = len(stream)
    assert status == 200
    first, second = werkzeug_server.requests
    assert first["request_uri"] == second["request_uri"] == "http://upload.invalid/proxy-auth"
    assert "proxy-authorization" not in first["headers"]
    assert first["body_bytes"] == total
    assert second["headers"]["proxy-authorization"].startswith("Basic ")
    check_upload(second, payload)
    assert record == second


# --- Expect: 100-continue -----------------------------------------------------------------------

_CHALLENGE = {401: {"WWW-Authenticate": 'Basic realm="x"'}, 413: {}}


def _refuse_without_100(status: int, reason: str) -> Any:
    """A server that answers ``status`` right after the head and counts the body bytes it
    receives afterwards (it reads for a while, until the client closes)."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        head = read_head(conn)
        server.seen.append(head.headers)
        body = json.dumps({"error": reason}).encode()
        conn.sendall(
            http_response(status, reason, body, {"Connection": "close", **_CHALLENGE[status]})
        )
        server.seen.append(len(head.rest) + count_incoming(conn, idle=0.5, limit=3))

    return handler


@pytest.mark.parametrize(("status", "reason"), [(401, "Unauthorized"), (413, "Too Large")])
def test_expect_continue_opt_in_refused_before_any_body_byte(
    payload: Any, status: int, reason: str
) -> None:
    opener = register_openers(expect_continue=True, expect_timeout=5.0)
    stream, headers = payload.encode()
    with RawServer(_refuse_without_100(status, reason)) as raw, stream:
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as info:
            post(opener, raw.url + "upload", stream, headers)
        elapsed = time.monotonic() - started
        with info.value as error:
            assert error.code == status
            assert error.headers["Content-Length"] == str(len(json.dumps({"error": reason})))
        raw.wait_done()
        assert raw.errors == []
    request_headers, body_bytes = raw.seen
    assert request_headers["expect"] == "100-continue"
    assert request_headers["content-length"] == str(len(stream))
    assert body_bytes == 0
    assert elapsed < 3.0  # answered at once, not after the 5 s expect timeout


def test_expect_continue_refusal_body_is_readable(payload: Any) -> None:
    opener = register_openers(expect_continue=True, expect_timeout=5.0)
    stream, headers = payload.encode()
    with RawServer(_refuse_without_100(413, "Too Large")) as raw, stream:
        with pytest.raises(urllib.error.HTTPError) as info:
            post(opener, raw.url + "upload", stream, headers)
        with info.value as error:
            assert error.code == 413
            assert json.loads(error.read()) == {"error": "Too Large"}
        raw.wait_done()


def test_explicit_expect_header_refused_before_any_body_byte(payload: Any) -> None:
    opener = register_openers()  # no opt-in: the request asks for it itself
    stream, headers = payload.encode()
    with RawServer(_refuse_without_100(413, "Too Large")) as raw, stream:
        with pytest.raises(urllib.error.HTTPError) as info:
            post(opener, raw.url + "upload", stream, {**headers, "Expect": "100-continue"})
        with info.value as error:
            assert error.code == 413
        raw.wait_done()
        assert raw.errors == []
    request_headers, body_bytes = raw.seen
    assert request_headers["expect"] == "100-continue"
    assert body_bytes == 0


@pytest.mark.parametrize("continues", [1, 2])
def test_expect_continue_body_sent_after_100(payload: Any, continues: int) -> None:
    """The client waits for ``100 Continue`` (no body byte before it), then sends the body,
    which a real parser (werkzeug's) takes apart. Any number of interim responses is legal."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        head = read_head(conn)
        conn.settimeout(0.5)
        try:
            early = head.rest + conn.recv(65536)
        except TimeoutError:
            early = head.rest
        conn.settimeout(10)
        server.seen.append((head.headers, len(early)))
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * continues)
        size = int(head.headers["content-length"])
        body = recv_exactly(conn, size, early)
        record = parse_multipart(body, head.headers["content-type"])
        reply = json.dumps(record).encode()
        conn.sendall(http_response(200, "OK", reply, {"Connection": "close"}))

    opener = register_openers(expect_continue=True, expect_timeout=5.0)
    stream, headers = payload.encode()
    with RawServer(handler) as raw, stream:
        status, record = post(opener, raw.url + "upload", stream, headers, timeout=3)
        raw.wait_done()
        assert raw.errors == []
    assert status == 200
    (request_headers, early_bytes) = raw.seen[0]
    assert request_headers["expect"] == "100-continue"
    assert early_bytes == 0
    check_upload(record, payload)


@pytest.mark.parametrize("server_kind", ["werkzeug", "upload_server"])
def test_expect_continue_against_servers_that_answer_100(
    request: pytest.FixtureRequest, payload: Any, server_kind: str
) -> None:
    server = request.getfixturevalue(
        "werkzeug_server" if server_kind == "werkzeug" else "upload_server"
    )
    opener = register_openers(expect_continue=True, expect_timeout=5.0)
    stream, headers = payload.encode()
    with stream:
        started = time.monotonic()
        status, record = post(opener, server.url + "upload", stream, headers, timeout=3)
        elapsed = time.monotonic() - started
    assert status == 200
    if server_kind == "werkzeug":
        assert record["headers"]["expect"] == "100-continue"
    else:
        record = upload_server_record(record)
    check_upload(record, payload)
    assert elapsed < 4.0  # went ahead on the 100, not on the 5 s timeout


def test_expect_continue_threshold_leaves_small_bodies_alone(
    werkzeug_server: Any, aiohttp_server: Any, small_payload: Any
) -> None:
    opener = register_openers(expect_continue=True)
    stream, headers = small_payload.encode()
    assert len(stream) < MiB
    with stream:
        _, record = post(opener, werkzeug_server.url + "upload", stream, headers)
    assert "expect" not in record["headers"]
    check_upload(record, small_payload)
    # An int threshold below the body's size asks first (aiohttp answers 100 once).
    opener = register_openers(expect_continue=1000)
    stream, headers = small_payload.encode()
    with stream:
        _, record = post(opener, aiohttp_server.url + "upload", stream, headers, timeout=5)
    assert record["headers"]["expect"] == "100-continue"
    check_upload(record, small_payload)


def test_expect_continue_silent_server_gets_the_body_after_the_timeout(payload: Any) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        head = read_head(conn)
        answered = time.monotonic()
        first = head.rest or conn.recv(65536)
        waited = time.monotonic() - answered
        size = int(head.headers["content-length"])
        body = recv_exactly(conn, size, first)
        server.seen.append((head.headers, waited, sha256(body)))
        conn.sendall(http_response(200, "OK", b"{}", {"Connection": "close"}))

    opener = register_openers(expect_continue=True, expect_timeout=0.3)
    stream, headers = payload.encode()
    with RawServer(handler) as raw, stream:
        whole = sha256(b"".join(stream))
        stream.seek(0)
        status, record = post(opener, raw.url + "upload", stream, headers)
        raw.wait_done()
        assert raw.errors == []
    assert (status, record) == (200, {})
    request_headers, waited, digest = raw.seen[0]
    assert request_headers["expect"] == "100-continue"
    assert 0.2 <= waited < 3.0
    assert digest == whole


# --- early answers, dropped and stalled connections ---------------------------------------------

SHORT_TIMEOUT = 3.0


def _early_413(graceful: bool) -> Any:
    def handler(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        body = b'{"error": "too large"}'
        conn.sendall(http_response(413, "Payload Too Large", body, {"Connection": "close"}))
        if graceful:
            conn.shutdown(socket.SHUT_WR)
            server.seen.append(count_incoming(conn, idle=1.0, limit=10))
        else:
            conn.close()

    return handler


def _timed_post(url: str, path: os.PathLike[str], timeout: float) -> tuple[Any, float]:
    opener = register_openers()
    stream, headers = poster_rs.multipart_encode(upload_file_params(path))
    request = urllib.request.Request(url, data=stream, headers=headers)
    started = time.monotonic()
    outcome: Any
    with stream:
        try:
            with opener.open(request, timeout=timeout) as response:
                outcome = response.status
        except urllib.error.HTTPError as exc:
            with exc:
                outcome = exc
                exc.read()
        except (OSError, http.client.HTTPException) as exc:
            outcome = exc
    return outcome, time.monotonic() - started


def test_early_413_and_graceful_close_returns_the_response(zeros_20m: Any) -> None:
    with RawServer(_early_413(graceful=True)) as raw:
        outcome, elapsed = _timed_post(raw.url + "upload", zeros_20m, SHORT_TIMEOUT)
        raw.wait_done()
        assert raw.errors == []
    assert isinstance(outcome, urllib.error.HTTPError), repr(outcome)
    assert outcome.code == 413
    assert elapsed < SHORT_TIMEOUT + 2
    # The client stopped sending when the answer came: far less than the 20 MiB arrived.
    assert raw.seen[0] < 20 * MiB


def test_early_413_and_abrupt_close_is_a_response_or_clear_error(zeros_20m: Any) -> None:
    with RawServer(_early_413(graceful=False)) as raw:
        outcome, elapsed = _timed_post(raw.url + "upload", zeros_20m, SHORT_TIMEOUT)
        raw.wait_done()
    if isinstance(outcome, urllib.error.HTTPError):
        assert outcome.code == 413
    else:
        assert isinstance(outcome, (OSError, http.client.HTTPException)), repr(outcome)
    assert elapsed < SHORT_TIMEOUT + 2


@pytest.mark.parametrize("how", ["reset", "fin"])
def test_connection_dropped_mid_body_is_a_clear_error(zeros_20m: Any, how: str) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        head = read_head(conn)
        recv_exactly(conn, MiB, head.rest)
        if how == "reset":
            reset_close(conn)
        else:
            # FIN without an answer, then stop reading; close after a while.
            conn.shutdown(socket.SHUT_WR)
            server.stop_event.wait(SHORT_TIMEOUT + 3)

    with RawServer(handler) as raw:
        outcome, elapsed = _timed_post(raw.url + "upload", zeros_20m, SHORT_TIMEOUT)
        raw.stop_event.set()
        raw.wait_done()
    assert isinstance(outcome, (OSError, http.client.HTTPException)), repr(outcome)
    assert not isinstance(outcome, urllib.error.HTTPError)
    assert elapsed < SHORT_TIMEOUT + 2


def test_server_that_stops_reading_times_out(zeros_64m: Any) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        conn.recv(MiB)
        server.stop_event.wait(15)  # never reads again, never answers

    timeout = 1.0
    with RawServer(handler) as raw:
        outcome, elapsed = _timed_post(raw.url + "upload", zeros_64m, timeout)
        raw.stop_event.set()
        raw.wait_done()
    assert isinstance(outcome, OSError), repr(outcome)
    reason = outcome.reason if isinstance(outcome, urllib.error.URLError) else outcome
    assert isinstance(reason, TimeoutError), repr(outcome)
    assert elapsed < timeout + 2


def test_connection_refused_is_a_url_error(small_payload: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    opener = register_openers()
    stream, headers = small_payload.encode()
    with stream, pytest.raises(urllib.error.URLError) as info:
        post(opener, f"http://127.0.0.1:{port}/", stream, headers)
    assert isinstance(info.value.reason, ConnectionRefusedError)


# --- unknown length: chunked ----------------------------------------------------------------------


class _PipeSource:
    """A part read from a pipe, fed by a writer thread: a body of unknown length."""

    def __init__(self, data: bytes) -> None:
        read_fd, write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb")
        self.data = data
        self._write_fd = write_fd
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        try:
            with os.fdopen(self._write_fd, "wb") as writer:
                view = memoryview(self.data)
                for start in range(0, len(view), 300_000):
                    writer.write(view[start : start + 300_000])
        except OSError:
            pass  # the reader went away: the test failed elsewhere

    def close(self) -> None:
        self.reader.close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize("server_kind", ["werkzeug", "upload_server"])
def test_unknown_length_goes_out_chunked(request: pytest.FixtureRequest, server_kind: str) -> None:
    server = request.getfixturevalue(
        "werkzeug_server" if server_kind == "werkzeug" else "upload_server"
    )
    data = os.urandom(3 * MiB + 777)
    source = _PipeSource(data)
    try:
        params = [
            ("field", "value"),
            poster_rs.MultipartParam(
                "pipe", filename="pipe.bin", filetype="application/x-pipe", fileobj=source.reader
            ),
        ]
        stream, headers = poster_rs.multipart_encode(params)
        assert "Content-Length" not in headers
        assert not hasattr(stream, "__len__")
        assert stream.total is None
        opener = register_openers()
        with stream:
            status, record = post(opener, server.url + "upload", stream, headers)
    finally:
        source.close()
    assert status == 200
    if server_kind == "werkzeug":
        assert record["headers"]["transfer-encoding"].lower() == "chunked"
        assert "content-length" not in record["headers"]
    else:
        record = upload_server_record(record)
    assert record["fields"] == [["field", "value"]]
    assert [f[0:2] + f[3:] for f in record["files"]] == [
        ["pipe", "pipe.bin", len(data), sha256(data)]
    ]


# --- sendfile -----------------------------------------------------------------------------------


def test_file_data_goes_out_with_sendfile_over_plain_tcp(
    upload_server: Any, payload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sendfile(2) is now called from Rust (poster_core::send); that the file spans take that
    # road is checked by the core's unit tests, the bytes arriving intact here.
    monkeypatch.setattr(StreamingHTTPConnection, "use_sendfile", True)
    opener = register_openers()
    stream, headers = payload.encode()
    with stream:
        status, reply = post(opener, upload_server.url + "upload", stream, headers)
    assert status == 200
    check_upload(upload_server_record(reply), payload)


@pytest.mark.parametrize("use_sendfile", [True, False], ids=["sendfile", "send"])
def test_a_file_shrinking_while_it_is_sent_raises(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, use_sendfile: bool
) -> None:
    # Replaces a test that faked a short os.sendfile: the file now really shrinks mid-upload.
    # The server reads 1 MiB, truncates the 64 MiB file to 32 MiB and reads on; the client
    # must stop with FileChangedError when it reaches the new end, not send a short body.
    path = tmp_path / "shrinking.bin"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)

    def handler(conn: socket.socket, server: RawServer) -> None:
        head = read_head(conn)
        recv_exactly(conn, MiB, head.rest)
        os.truncate(path, 32 * MiB)
        server.seen.append(count_incoming(conn, idle=2.0, limit=20.0))

    monkeypatch.setattr(StreamingHTTPConnection, "use_sendfile", use_sendfile)
    opener = register_openers()
    stream, headers = poster_rs.multipart_encode([("f", path)])
    with RawServer(handler) as server, stream, pytest.raises(urllib.error.URLError) as info:
        post(opener, server.url + "upload", stream, headers)
    assert isinstance(info.value.reason, poster_rs.FileChangedError)
    assert "changed size" in str(info.value.reason)
