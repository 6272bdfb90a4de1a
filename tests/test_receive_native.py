"""The compiled receiving pieces behind ``poster-rs serve``: ``FormParser`` (the core's streaming
multipart parser) and ``Sha256`` (hashing a batch of buffers with the GIL released once)."""

from __future__ import annotations

import hashlib
import os

import pytest
from poster_rs._poster_rs import FormParser, Sha256

BODY = (
    b'preamble\r\n--b0\r\nContent-Disposition: form-data; name="t"\r\n\r\nhello\r\n'
    b'--b0 \t\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n'
    b"Content-Type: x/y\r\n\r\n\r\n--b\r\n--b0--\r\nepilogue"
)
EXPECTED = [
    [(b"Content-Disposition", b'form-data; name="t"')],
    b"hello",
    None,
    [(b"Content-Disposition", b'form-data; name="f"; filename="a"'), (b"Content-Type", b"x/y")],
    b"\r\n--b",
    None,
]


def _joined(events: list[object]) -> list[object]:
    """Consecutive data joined: how a body is chunked may split it anywhere."""
    out: list[object] = []
    for event in events:
        if isinstance(event, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += event
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("cut", range(len(BODY) + 1))
def test_events_whatever_the_chunking(cut: int) -> None:
    parser = FormParser(b"b0", 10, 1024)
    events = parser.feed(BODY[:cut]) + parser.feed(BODY[cut:])
    parser.finish()
    assert parser.complete
    assert _joined(list(events)) == EXPECTED


def test_whole_chunk_data_is_the_chunk_itself() -> None:
    parser = FormParser(b"b", 10, 1024)
    parser.feed(b"--b\r\n\r\n")
    chunk = os.urandom(1 << 16).replace(b"\r", b"x")
    (data,) = parser.feed(chunk)
    assert data is chunk


def test_many_parsers_on_large_chunks() -> None:
    """The parser's AVX2 searcher needs 32-byte alignment that Python's allocation of the object
    does not give: unboxed, about every other parser crashed here."""
    chunk = b"x" * (1 << 17)
    for _ in range(64):
        parser = FormParser(b"boundary-of-some-length", 10, 1024)
        parser.feed(b"--boundary-of-some-length\r\n\r\n")
        assert parser.feed(chunk) == [chunk]


@pytest.mark.parametrize(
    ("body", "message", "is_limit"),
    [
        (b"--b\r\n\r\nv\r\n--bx", "neither CRLF nor", False),
        (b"--b\r\nno colon\r\n\r\n", "without a colon", False),
        (b"--b\r\n\r\n\r\n--b\r\n\r\n\r\n--b\r\n", "more than 2 parts", True),
        (b"--b\r\nX: " + b"v" * 100 + b"\r\n\r\n", "over the 64-byte limit", True),
    ],
)
def test_refusals(body: bytes, message: str, is_limit: bool) -> None:
    parser = FormParser(b"b", 2, 64)
    with pytest.raises(ValueError, match=message) as caught:
        parser.feed(body)
    assert caught.value.args[1] is is_limit
    with pytest.raises(ValueError, match=message):
        parser.finish()


def test_truncated_body() -> None:
    parser = FormParser(b"b", 2, 64)
    parser.feed(b"--b\r\n\r\ndata")
    assert not parser.complete
    with pytest.raises(ValueError, match="before its closing delimiter"):
        parser.finish()


@pytest.mark.parametrize("boundary", [b"", b"a\r\nb", b"x" * 201])
def test_unusable_boundary(boundary: bytes) -> None:
    with pytest.raises(ValueError, match="boundary"):
        FormParser(boundary, 2, 64)


def test_sha256_matches_hashlib() -> None:
    pieces = [os.urandom(n) for n in (0, 1, 63, 64, 65, 1 << 16, 100_000)]
    hasher = Sha256()
    hasher.update_all(pieces[:3])
    hasher.update_all([])
    hasher.update_all(pieces[3:])
    assert hasher.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert Sha256().hexdigest() == hashlib.sha256().hexdigest()
    with pytest.raises(TypeError):
        hasher.update_all(["text"])  # type: ignore[list-item]


def test_sha256_on_its_own_thread_keeps_the_order() -> None:
    """Batches queued for the hashing thread (more than it queues before waiting), mixed with
    batches hashed at once, and digests taken in between, all hash in order."""
    batches = [[os.urandom(1000 + i) for i in range(3)] for _ in range(20)]
    hasher, reference = Sha256(), hashlib.sha256()
    for number, batch in enumerate(batches):
        if number % 7 == 6:
            hasher.update_all(batch)
        else:
            hasher.update_later(batch)
        reference.update(b"".join(batch))
        if number % 5 == 4:
            assert hasher.hexdigest() == reference.hexdigest()
    assert hasher.hexdigest() == reference.hexdigest()
