"""``Expect: 100-continue``: wait for the server's go-ahead before sending a large body."""

from __future__ import annotations

from typing import Any

#: The longest interim or final response head read while waiting.
_MAX_HEAD = 65536


def await_continue(sock: Any, timeout: float) -> bytes | None:
    """Waits up to ``timeout`` seconds for the answer to ``Expect: 100-continue``. ``None``:
    send the body (the server said 100, or said nothing in time). Otherwise the server
    answered first: the bytes of that answer, read so far."""
    saved = sock.gettimeout()
    head = bytearray()
    try:
        sock.settimeout(timeout)
        while not head.endswith(b"\r\n\r\n"):
            # One byte at a time: nothing past the interim response may be consumed.
            byte = sock.recv(1)
            if not byte:
                break
            head += byte
            sock.settimeout(saved)
            if len(head) > _MAX_HEAD:
                break
    except TimeoutError:
        if not head:
            return None
    finally:
        sock.settimeout(saved)
    status = head.split(b" ", 2)
    if len(status) >= 2 and status[1] == b"100" and head.endswith(b"\r\n\r\n"):
        return None
    return bytes(head)
