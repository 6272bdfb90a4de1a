"""Test-only servers for the shipping tests, each on 127.0.0.1 with an ephemeral port, in daemon
threads, stopped with bounded joins:

- ``ForwardProxy``: an HTTP forward proxy (absolute-form requests relayed upstream, ``CONNECT``
  tunnels) that records what went through it and may demand ``Proxy-Authorization``; it only
  relays to 127.0.0.1;
- ``DripServer``: a server that answers a byte at a time (``mode="drip"``), or never reads the
  request body (``mode="stall"``), to test overall deadlines;
- ``FlakyServer``: 503 for the first requests, then 200;
- ``TruncatingServer``: truncates a file as soon as a request for it arrives, then reads the
  body: the client's file shrinks while it is being sent.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import selectors
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

#: No relay or drip in these servers outlives this many seconds.
LIMIT = 30.0


class ForwardProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.credentials = credentials
        self.lock = threading.Lock()
        #: ``(method, request target)`` of every request the proxy relayed.
        self.seen: list[tuple[str, str]] = []
        self.refused = 0
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        port = self.server_address[1]
        if self.credentials is None:
            return f"http://127.0.0.1:{port}"
        user, password = (urllib.parse.quote(c, safe="") for c in self.credentials)
        return f"http://{user}:{password}@127.0.0.1:{port}"

    def __enter__(self) -> ForwardProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: ForwardProxy
    protocol_version = "HTTP/1.1"
    timeout = LIMIT

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _authorized(self) -> bool:
        if self.server.credentials is None:
            return True
        token = base64.b64encode(":".join(self.server.credentials).encode()).decode()
        if self.headers.get("Proxy-Authorization") == f"Basic {token}":
            return True
        with self.server.lock:
            self.server.refused += 1
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        return False

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        if host != "127.0.0.1" or not self._authorized():
            if host != "127.0.0.1":
                self.send_error(403)
            return
        with self.server.lock:
            self.server.seen.append(("CONNECT", self.path))
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        _relay(self.connection, upstream)

    def _forward(self) -> None:
        target = urllib.parse.urlsplit(self.path)
        if target.scheme != "http" or target.hostname != "127.0.0.1":
            self.send_error(403)
            return
        if not self._authorized():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.seen.append((self.command, self.path))
        headers = {
            k: v
            for k, v in self.headers.items()
            if not k.lower().startswith("proxy-") and k.lower() != "connection"
        }
        upstream = http.client.HTTPConnection("127.0.0.1", target.port or 80, timeout=10)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            response = upstream.getresponse()
            reply = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_POST(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copies bytes both ways until either side closes or nothing moves for ``LIMIT`` s."""
    with selectors.DefaultSelector() as selector, upstream:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            events = selector.select(LIMIT)
            if not events:
                return
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = source.recv(1 << 16)
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return


class _SocketServer:
    """Accepts connections on 127.0.0.1 and runs ``handle(conn)`` for each in a daemon thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.stop = threading.Event()
        self.connections = 0
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(LIMIT)
            with contextlib.suppress(OSError):  # the client left: nothing to answer
                self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    @staticmethod
    def read_head(conn: socket.socket) -> tuple[bytes, bytes]:
        """The request head (up to the blank line) and whatever body bytes came with it."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed before the request head ended")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    @staticmethod
    def content_length(head: bytes) -> int:
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return int(value)
        return 0

    def __enter__(self) -> Self:
        self.acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.close()
        self.acceptor.join(timeout=10)
        for thread in self.threads:
            thread.join(timeout=10)


class DripServer(_SocketServer):
    """``mode="drip"``: reads the whole request, then answers 200 one byte every ``interval`` s.
    ``mode="stall"``: reads the request head and nothing more, until the client leaves."""

    def __init__(self, mode: str, interval: float = 0.5) -> None:
        super().__init__()
        self.mode = mode
        self.interval = interval

    def handle(self, conn: socket.socket) -> None:
        head, body = self.read_head(conn)
        if self.mode == "stall":
            conn.settimeout(0.1)
            while not self.stop.is_set():
                try:
                    if not conn.recv(1):  # one byte at a time: the client's sends stay blocked
                        return
                except TimeoutError:
                    continue
                time.sleep(0.1)
            return
        left = self.content_length(head) - len(body)
        while left > 0:
            chunk = conn.recv(min(left, 1 << 16))
            if not chunk:
                return
            left -= len(chunk)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            if self.stop.wait(self.interval):
                return
            conn.sendall(b"x")


class TruncatingServer(_SocketServer):
    """Truncates ``victim`` to ``keep`` bytes when a request head arrives, then reads the body
    to its end (or until the client gives up) and answers 200."""

    def __init__(self, victim: str | os.PathLike[str], keep: int) -> None:
        super().__init__()
        self.victim = victim
        self.keep = keep
        self.requests = 0

    def handle(self, conn: socket.socket) -> None:
        head, body = self.read_head(conn)
        self.requests += 1
        os.truncate(self.victim, self.keep)
        left = self.content_length(head) - len(body)
        while left > 0:
            chunk = conn.recv(1 << 16)
            if not chunk:
                return
            left -= len(chunk)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class FlakyServer(ThreadingHTTPServer):
    """Answers the first ``fail`` requests with 503, then 200 (``ok``); keeps every request's
    ``(status, body size)`` in ``sizes``, and the last body in ``last_body``."""

    daemon_threads = True

    def __init__(self, fail: int) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyHandler)
        self.fail = fail
        self.lock = threading.Lock()
        self.sizes: list[tuple[int, int]] = []
        self.last_body = b""
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)


class _FlakyHandler(BaseHTTPRequestHandler):
    server: FlakyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.last_body = body
            status = 503 if len(self.server.sizes) < self.server.fail else 200
            self.server.sizes.append((status, len(body)))
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
