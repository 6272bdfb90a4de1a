"""The answer's header block: poster_rs's connections split it without the ``email`` package,
and must build exactly the ``HTTPMessage`` ``http.client`` builds, for any block."""

from __future__ import annotations

import email.errors
import http.client
import http.server
import io
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from poster_rs._transport.response import StreamingResponse, parse_header_lines
from poster_rs.streaminghttp import StreamingHTTPConnection


def _both(block: bytes) -> tuple[http.client.HTTPMessage, http.client.HTTPMessage]:
    wire = block + b"\r\n"
    expected = http.client.parse_headers(io.BytesIO(wire))
    got = parse_header_lines(http.client._read_headers(io.BytesIO(wire)))  # type: ignore[attr-defined]
    return expected, got


def _rendered(message: http.client.HTTPMessage) -> str | type[Exception]:
    """The message as text, or the error rendering it raises (Python 3.13's email generator
    refuses a value holding a line-breaking character such as a vertical tab)."""
    try:
        return str(message)
    except email.errors.MessageError as exc:
        return type(exc)


def _assert_same(block: bytes) -> None:
    expected, got = _both(block)
    assert type(got) is type(expected)
    assert got.items() == expected.items()
    assert got.get_payload() == expected.get_payload()
    assert [type(d) for d in got.defects] == [type(d) for d in expected.defects]
    assert _rendered(got) == _rendered(expected)
    for name in {key.lower() for key in expected} | {"content-length", "connection"}:
        assert got.get_all(name) == expected.get_all(name)


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"Content-Length: 5\r\nConnection: keep-alive\r\n",
        b"X: a \t\r\nY:b\r\nY:  c\r\n",
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
        b"Empty:\r\nAlso-Empty:   \r\n",
        b"Tab:\tafter a tab\r\nMixed: \t \tblanks\r\n",
        b"Latin: caf\xe9 \xff\r\n",
        b"Bare-LF: yes\nNext: too\n",
        b"Folded: one\r\n two\r\n\tthree\r\n",
        b"Bad Header: x\r\nOK: y\r\n",
        b"NoColon\r\nOK: y\r\n",
        b"From someone\r\nOK: y\r\n",
        b":no-name\r\n",
        b"Colon:in:value: a:b\r\n",
        b"0:\x0b\x00\r\n",  # a line-breaking character in a value (3.13 refuses to render it)
    ],
)
def test_header_blocks_parse_as_http_client_parses_them(block: bytes) -> None:
    _assert_same(block)


def test_plain_blocks_do_not_go_through_the_email_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("email.parser used for a plain header block")

    wire = b"Content-Length: 5\r\nX-Tab:\tv\r\n\r\n"
    lines = http.client._read_headers(io.BytesIO(wire))  # type: ignore[attr-defined]
    monkeypatch.setattr("email.parser.Parser", refuse)
    assert parse_header_lines(lines).items() == [("Content-Length", "5"), ("X-Tab", "v")]


_line = st.one_of(
    st.builds(
        lambda name, sep, value, end: name + sep + value + end,
        st.one_of(
            st.text("abcXYZ-_.!~0123456789", min_size=1, max_size=12).map(str.encode),
            st.binary(max_size=12),
        ),
        st.sampled_from([b":", b": ", b":\t", b" :", b""]),
        st.one_of(
            st.text(" \tabc:;=,\x7f\xe9", max_size=20).map(lambda t: t.encode("latin-1")),
            st.binary(max_size=20),
        ).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        st.sampled_from([b"\r\n", b"\n"]),
    ),
    st.sampled_from([b" folded\r\n", b"\tfolded\r\n", b"From x\r\n"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=8))
def test_any_header_block_parses_as_http_client_parses_it(lines: list[bytes]) -> None:
    block = b"".join(lines)
    if b"\r\n\r\n" in b"\r\n" + block or b"\n\n" in b"\n" + block:
        return  # a blank line ends the block early; both readers stop there alike
    # http.client reads the block line by line; a line that is only a line ending ends it.
    if any(line in (b"\r\n", b"\n") for line in io.BytesIO(block)):
        return
    _assert_same(block)


@pytest.fixture
def answering_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            answer = b"got %d" % len(body)
            self.send_response(201)
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("X-Twice", "one")
            self.send_header("X-Twice", "two")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_streaming_connections_read_answers_with_the_fast_reader(answering_server: str) -> None:
    host, port = answering_server.split(":")
    conn = StreamingHTTPConnection(host, int(port), timeout=10)
    try:
        for _ in range(3):  # kept alive: each answer ends exactly where the next begins
            conn.request("POST", "/", body=b"x" * 1000)
            response = conn.getresponse()
            assert isinstance(response, StreamingResponse)
            assert response.status == 201
            assert response.getheader("X-Twice") == "one, two"
            assert response.read() == b"got 1000"
            assert not response.will_close
    finally:
        conn.close()


def test_an_interim_100_is_skipped_and_a_length_less_answer_closes() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close"
            )

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    conn = StreamingHTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body=b"x")
        response = conn.getresponse()
        assert (response.status, response.version) == (200, 11)
        assert "X-Interim" not in response.headers
        assert response.will_close
        assert response.read() == b"until close"
    finally:
        conn.close()
        thread.join(timeout=10)
        listener.close()
