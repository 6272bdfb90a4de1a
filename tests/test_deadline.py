"""``poster_rs._deadline.Deadline``, the mechanism behind ``--max-time``: a blocked receive is
woken at the deadline, a connection started after it fails at once, and each connection's
socket timeout is capped to the time left. Servers on 127.0.0.1; every wait bounded."""

from __future__ import annotations

import http.client
import socket
import time

import pytest
from _servers import RawServer, read_head
from poster_rs._deadline import Deadline

WAIT = 10.0


def silent(conn: socket.socket, server: RawServer) -> None:
    read_head(conn)
    server.stop_event.wait(WAIT)


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
def test_seconds_must_be_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Deadline(seconds)


def test_a_blocked_receive_is_woken_at_the_deadline() -> None:
    with RawServer(silent) as raw, Deadline(0.5) as deadline:
        connection_class = deadline.connection_class(http.client.HTTPConnection)
        conn = connection_class("127.0.0.1", raw.port, timeout=WAIT)
        started = time.monotonic()
        try:
            conn.request("GET", "/")
            assert conn.timeout is not None
            assert conn.timeout <= 0.5
            with pytest.raises((OSError, http.client.HTTPException)):
                conn.getresponse()
        finally:
            conn.close()
        elapsed = time.monotonic() - started
    assert deadline.expired
    assert 0.4 < elapsed < 3, elapsed


def test_a_connection_after_the_deadline_fails_at_once() -> None:
    accepted: list[bool] = []

    def record(conn: socket.socket, server: RawServer) -> None:
        accepted.append(True)

    with RawServer(record) as raw:
        with Deadline(0.05) as deadline:
            time.sleep(0.2)
            assert deadline.expired
            connection_class = deadline.connection_class(http.client.HTTPConnection)
            conn = connection_class("127.0.0.1", raw.port, timeout=WAIT)
            with pytest.raises(TimeoutError, match="deadline"):
                conn.connect()
            conn.close()
        time.sleep(0.2)
    assert accepted == []


def test_the_classes_are_made_once_per_base() -> None:
    deadline = Deadline(1)
    first = deadline.connection_class(http.client.HTTPConnection)
    assert deadline.connection_class(http.client.HTTPConnection) is first
    assert issubclass(first, http.client.HTTPConnection)
    assert first.__name__ == "DeadlinedHTTPConnection"
