"""Checks an encoder's output by parsing it with python-multipart.

A body is reduced to a list of parts ``(name, filename, size, sha256)`` in body order, which is
compared with the list the workload expects. The parser is fed the body chunk by chunk and the
data of each part is hashed as it arrives, so a 1 GiB body is checked without holding it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

Part = tuple[str, str | None, int, str]


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise ValueError(f"not a multipart/form-data Content-Type: {content_type!r}")
    return options[b"boundary"]


class Summarizer:
    """Feeds a multipart body to python-multipart and records one ``Part`` per part."""

    def __init__(self, boundary: bytes) -> None:
        self.parts: list[Part] = []
        self.received = 0
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._hash: Any = None
        self._size = 0
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._field = b""
        self._value = b""
        self._hash = hashlib.sha256()
        self._size = 0

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._hash.update(memoryview(data)[start:end])
        self._size += end - start

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = b""
        self._value = b""

    def _part_end(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self.parts.append(
            (
                name,
                None if filename is None else filename.decode("utf-8", "replace"),
                self._size,
                self._hash.hexdigest(),
            )
        )

    def _end(self) -> None:
        self._ended = True

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        self.received += len(chunk)
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        self._parser.write(chunk)

    def finish(self) -> list[Part]:
        self._parser.finalize()
        if not self._ended:
            raise ValueError("the body ended before its closing delimiter")
        return self.parts


def digest(parts: list[Part] | list[list[Any]]) -> str:
    h = hashlib.sha256()
    for name, filename, size, sha in parts:
        h.update(f"{name}\0{filename}\0{size}\0{sha}\n".encode())
    return h.hexdigest()


def summary(parts: list[Part], received: int) -> dict[str, Any]:
    """A compact description of a parsed body (what the discard server sends back)."""
    return {
        "received": received,
        "count": len(parts),
        "digest": digest(parts),
        "head": [list(p) for p in parts[:2]],
        "tail": [list(p) for p in parts[-2:]],
    }


def compare(expected: list[Part], got: dict[str, Any]) -> str | None:
    """``None`` when ``got`` (a ``summary``) describes ``expected``; else what differs."""
    if got["count"] != len(expected):
        return f"{got['count']} parts, expected {len(expected)} (first: {got['head']})"
    if got["digest"] != digest(expected):
        return (
            f"parts differ: got head {got['head']} tail {got['tail']}, expected head "
            f"{[list(p) for p in expected[:2]]} tail {[list(p) for p in expected[-2:]]}"
        )
    return None


class BodySink:
    """A ``Summarizer`` that learns the boundary from the body's first line, for encoders
    whose Content-Type is only known once they are done."""

    def __init__(self) -> None:
        self.boundary: bytes | None = None
        self.received = 0
        self._head = b""
        self._summarizer: Summarizer | None = None

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        self.received += len(chunk)
        if self._summarizer is not None:
            self._summarizer.feed(chunk)
            return
        self._head += bytes(chunk)
        line, sep, _ = self._head.partition(b"\r\n")
        if not sep:
            if len(self._head) > 200:
                raise ValueError(f"the body does not start with a delimiter: {self._head[:80]!r}")
            return
        if not line.startswith(b"--"):
            raise ValueError(f"the body does not start with a delimiter: {line[:80]!r}")
        self.boundary = line[2:]
        self._summarizer = Summarizer(self.boundary)
        self._summarizer.feed(self._head)
        self._head = b""

    def finish(self) -> list[Part]:
        if self._summarizer is None:
            raise ValueError("empty body")
        return self._summarizer.finish()
