"""The two ways a body goes out: natively (a poster_rs stream over plain TCP is sent from Rust
with the GIL released, see ``MultipartStream.send_to``) or chunk by chunk from Python (TLS,
bodies of other types), each stopping as soon as the server answers early."""

from __future__ import annotations

import socket
from typing import Any

from .._poster_rs import Stream
from .chunks import LAST_CHUNK, body_to_chunks, framed
from .early import server_answered
from .wait import wait_for


def can_send_natively(body: Any, sock: Any) -> bool:
    """Native sending needs a poster_rs stream and a plain TCP socket (TLS encrypts in Python's
    ``ssl`` module, so it keeps the chunk path)."""
    return isinstance(body, Stream) and type(sock) is socket.socket


def send_natively(
    body: Stream,
    sock: socket.socket,
    *,
    chunked: bool,
    use_sendfile: bool,
    head: bytes | None = None,
) -> tuple[bool, bytes]:
    """Sends ``head`` (the request's head, if given) and the rest of ``body``. Returns
    ``(done, early)``: whether everything went out, and the start of the server's answer when
    it answered first."""
    return body.send_to(sock, chunked=chunked, use_sendfile=use_sendfile, head=head)


def send_watching(sock: Any, data: Any, so_far: bytes) -> tuple[bool, bytes]:
    """Sends ``data`` while watching for an early answer. Returns ``(done, early)``: ``done``
    is False as soon as the server has begun its final response (even while the send buffer
    is full and the server has stopped reading), and ``early`` is what it has said so far."""
    view = memoryview(data).cast("B")
    timeout = sock.gettimeout()
    while view:
        readable, writable = wait_for(sock, timeout, write=True)
        if not readable and not writable:
            raise TimeoutError("timed out sending the request body")
        if readable:
            so_far, answered = server_answered(sock, so_far)
            if answered:
                return False, so_far
        if writable:
            view = view[sock.send(view) :]
    return True, so_far


def send_chunks(sock: Any, body: Any, *, chunked: bool) -> tuple[bool, bytes]:
    """Sends any body chunk by chunk (framed when ``chunked``). Returns ``(done, early)`` as
    ``send_watching`` does."""
    early = b""
    for chunk in body_to_chunks(body):
        if not chunk:
            continue
        for piece in framed(chunk) if chunked else (chunk,):
            done, early = send_watching(sock, piece, early)
            if not done:
                return False, early
    if chunked:
        return send_watching(sock, LAST_CHUNK, early)
    return True, early
