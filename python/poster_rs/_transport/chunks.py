"""Any request body as a sequence of chunks, and chunked transfer framing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

#: Block size for bodies that are file objects (``http.client`` reads 8 KiB at a time, which
#: is several times slower to send than large blocks).
BLOCKSIZE = 1 << 20

LAST_CHUNK = b"0\r\n\r\n"


def body_to_chunks(body: Any) -> Iterable[Any]:
    """The chunks of a body as ``http.client`` accepts it: bytes-like, ``str``, a file object
    (read in ``BLOCKSIZE`` blocks) or an iterable of bytes-like chunks."""
    if hasattr(body, "read"):
        return _read_blocks(body)
    if isinstance(body, str):
        return (body.encode("iso-8859-1"),)
    try:
        memoryview(body)
    except TypeError:
        try:
            chunks: Iterable[Any] = iter(body)
        except TypeError:
            raise TypeError(
                f"message_body should be a bytes-like object or an iterable, got {type(body)!r}"
            ) from None
        return chunks
    return (body,)


def _read_blocks(body: Any) -> Iterator[bytes]:
    while True:
        block = body.read(BLOCKSIZE)
        if not block:
            break
        if isinstance(block, str):
            block = block.encode("iso-8859-1")
        yield block


def framed(chunk: Any) -> tuple[Any, ...]:
    """One chunk of chunked transfer coding: size line, data, CRLF."""
    return (f"{len(chunk):X}\r\n".encode("ascii"), chunk, b"\r\n")
