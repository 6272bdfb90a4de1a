"""The encoded body: an iterator of large ``bytes`` chunks, sized, seekable, async-iterable.

The byte-producing work is done by the compiled ``Stream`` class; this module adds what is
Python protocol only: ``len()``, context management, ``async for`` and the file-like view.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any, Self

from ._poster_rs import Stream

__all__ = ["ChunkedMultipartStream", "MultipartReader", "MultipartStream"]


def _next_or_none(stream: Stream) -> bytes | None:
    return next(stream, None)


class _AsyncChunks:
    """``async for`` over a stream: each chunk is produced in the default executor, so reading
    files never blocks the event loop."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Stream) -> None:
        self._stream = iter(stream)

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        # Imported here: asyncio costs ~30 ms to import, and an event loop has it loaded.
        import asyncio  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        chunk = await loop.run_in_executor(None, _next_or_none, self._stream)
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _StreamProtocols(Stream):
    """Python-level protocols shared by both stream classes."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _AsyncChunks(self)

    def as_file(self) -> MultipartReader:
        """A file-like view (``read``, ``readinto``, ``seek``, ``tell``) of this stream, for APIs
        that want a file object. Iterating the stream itself is faster: clients read file
        objects in small blocks (8 KiB for http.client)."""
        return MultipartReader(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"at {self.tell()}"
        return f"<{type(self).__name__} boundary={self.boundary!r} total={self.total} {state}>"


class MultipartStream(_StreamProtocols):
    """A multipart/form-data body of known length, as returned by ``multipart_encode``.

    ``iter()`` yields ``bytes`` chunks of about 1 MiB; ``len()`` is the Content-Length;
    ``tell``/``seek``/``reset`` rewind it for a retry or redirect; ``async for`` reads files off
    the event loop; ``close()`` (or ``with``) releases every file. A stream iterated to its end
    starts over when iterated again.
    """

    def __len__(self) -> int:
        total = self.total
        assert total is not None
        return total


class ChunkedMultipartStream(_StreamProtocols):
    """A multipart/form-data body whose length is unknown (a part reads from a pipe or an
    unsized file object): it has no ``len()`` and goes out with chunked transfer encoding."""


class MultipartReader(io.RawIOBase):
    """A read-only file object over a stream. Closing the view leaves the stream open."""

    def __init__(self, stream: _StreamProtocols) -> None:
        super().__init__()
        self._stream = stream

    @property
    def stream(self) -> _StreamProtocols:
        return self._stream

    @property
    def len(self) -> int | None:
        """The body's total length (requests reads this, as it does for requests-toolbelt)."""
        return self._stream.total

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._stream.total is not None

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        return self._stream._read(-1 if size is None else size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        data = self._stream._read(len(view))
        view[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        self._checkClosed()
        return self._stream.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        return self._stream.seek(offset, whence)
