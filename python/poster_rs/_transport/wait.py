"""Socket readiness and reads that do not wait."""

from __future__ import annotations

import select
import ssl
from typing import Any


def wait_for(sock: Any, timeout: float | None, *, write: bool) -> tuple[bool, bool]:
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


def recv_nowait(sock: Any) -> bytes | None:
    """What the peer has sent, without waiting: ``None`` if no application data is there (on
    TLS, records such as session tickets make a socket readable without any), ``b""`` at EOF."""
    saved = sock.gettimeout()
    try:
        sock.settimeout(0.0)
        data: bytes = sock.recv(65536)
        return data
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    finally:
        sock.settimeout(saved)
