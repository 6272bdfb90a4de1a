"""poster_rs.MultipartStream: chunks, length, seeking, restarting, closing, async iteration, the
file-like view and use from two threads."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import threading

import pytest
from _helpers import B, encode_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from poster_rs import (
    ChunkedMultipartStream,
    MultipartParam,
    MultipartReader,
    MultipartStream,
    NotSeekableError,
    multipart_encode,
)

MiB = 1 << 20


@pytest.fixture
def mixed(data_files):
    """A body of text, bytes, BytesIO and real files, and its bytes."""

    def params():
        return [
            ("text", "t\xe9xt value"),
            ("bytes", bytes(range(256))),
            ("bio", io.BytesIO(b"in memory " * 1000)),
            ("small", data_files.text),
            ("empty", data_files.empty),
            ("medium", data_files.medium),
            ("last", "end"),
        ]

    expected, _ = encode_all(params(), B)
    return params, expected


def test_chunks_are_bytes_of_about_one_mib(data_files):
    stream, headers = multipart_encode([("a", "1"), ("f", data_files.big)])
    with stream:
        chunks = list(stream)
    assert all(type(c) is bytes for c in chunks)
    sizes = [len(c) for c in chunks]
    assert max(sizes) <= MiB
    assert sum(1 for s in sizes if s == MiB) >= len(sizes) - 1
    assert sum(sizes) == int(headers["Content-Length"])
    assert b"".join(chunks).count(data_files.big.read_bytes()) == 1


def test_small_parts_are_coalesced():
    stream, headers = multipart_encode([(f"f{i}", "v") for i in range(100)])
    with stream:
        chunks = list(stream)
    assert len(chunks) == 1
    assert len(chunks[0]) == int(headers["Content-Length"])


def test_len_total_current(mixed):
    params, expected = mixed
    stream, headers = multipart_encode(params(), B, chunk_size=1000)
    with stream:
        assert isinstance(stream, MultipartStream)
        assert len(stream) == stream.total == int(headers["Content-Length"]) == len(expected)
        assert stream.current == stream.tell() == 0
        it = iter(stream)
        first = next(it)
        assert stream.current == stream.tell() == len(first)
        rest = b"".join(it)
        assert first + rest == expected
        assert stream.tell() == len(stream)
        with pytest.raises(StopIteration):
            next(stream)  # next() at the end does not restart; only a new iter() does


def test_tell_seek_reset(mixed):
    params, expected = mixed
    stream, _ = multipart_encode(params(), B, chunk_size=1000)
    n = len(expected)
    with stream:
        assert stream.seek(100) == 100
        assert stream.tell() == 100
        assert stream.seek(50, 1) == 150
        assert stream.seek(-50, 1) == 100
        assert stream.seek(-10, 2) == n - 10
        assert b"".join(stream) == expected[-10:]
        assert stream.seek(0, 2) == n
        stream.reset()
        assert stream.tell() == 0
        assert b"".join(stream) == expected
        stream.seek(n // 2)
        next(iter(stream))
        stream.reset()
        assert b"".join(stream) == expected


def test_seek_errors(mixed):
    params, expected = mixed
    stream, _ = multipart_encode(params(), B)
    with stream:
        with pytest.raises(ValueError, match="outside the body"):
            stream.seek(-1)
        with pytest.raises(ValueError, match="outside the body"):
            stream.seek(len(expected) + 1)
        with pytest.raises(ValueError, match="outside the body"):
            stream.seek(1, 2)
        with pytest.raises(ValueError, match="whence"):
            stream.seek(0, 3)
        assert stream.tell() == 0  # failed seeks do not move
        assert b"".join(stream) == expected


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_seek_then_iterate_gives_the_suffix(data, data_files):
    kinds = data.draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("text"), st.text(max_size=50)),
                st.tuples(st.just("bytes"), st.binary(max_size=100)),
                st.tuples(st.just("bio"), st.binary(max_size=3000)),
                st.tuples(st.just("file"), st.sampled_from(["text", "empty", "medium"])),
                st.tuples(st.just("open"), st.sampled_from(["text", "medium"])),
                st.tuples(st.just("bigtext"), st.integers(64 * 1024, 70 * 1024)),
            ),
            max_size=6,
        )
    )
    chunk_size = data.draw(st.sampled_from([997, 65536, MiB]))

    def params(files):
        out = []
        for i, (kind, value) in enumerate(kinds):
            if kind == "bio":
                out.append((f"p{i}", io.BytesIO(value)))
            elif kind == "file":
                out.append((f"p{i}", getattr(data_files, value)))
            elif kind == "open":
                out.append((f"p{i}", files.enter_context(open(getattr(data_files, value), "rb"))))  # noqa: SIM115
            elif kind == "bigtext":
                out.append((f"p{i}", "\xe9" * (value // 2)))  # shared with Python, not copied
            else:
                out.append((f"p{i}", value))
        return out

    with contextlib.ExitStack() as files:
        expected, _ = encode_all(params(files), B)
        stream, _ = multipart_encode(params(files), B, chunk_size=chunk_size)
    n = len(expected)
    with stream:
        # a partial read first, so readers and files are mid-way when we seek
        head = next(iter(stream))
        assert expected.startswith(head)
        for _ in range(3):
            offset = data.draw(st.integers(0, n - 1))
            whence = data.draw(st.sampled_from([0, 1, 2]))
            base = {0: 0, 1: stream.tell(), 2: n}[whence]
            assert stream.seek(offset - base, whence) == offset
            assert stream.tell() == offset
            assert b"".join(stream) == expected[offset:]
            assert stream.tell() == n


def test_iterating_a_finished_stream_restarts_it(mixed):
    params, expected = mixed
    stream, _ = multipart_encode(params(), B)
    with stream:
        assert b"".join(stream) == expected
        assert b"".join(stream) == expected
        assert list(stream)  # a third pass too


def test_empty_form_restarts_too():
    stream, _ = multipart_encode([], B)
    with stream:
        assert b"".join(stream) == b"--XYZXYZXYZ--\r\n"
        assert b"".join(stream) == b"--XYZXYZXYZ--\r\n"


def test_seek_to_end_then_iterate_is_empty(mixed):
    params, _ = mixed
    stream, _ = multipart_encode(params(), B)
    with stream:
        stream.seek(0, 2)
        assert b"".join(stream) == b""


def test_close_then_use(mixed):
    params, _ = mixed
    stream, _ = multipart_encode(params(), B)
    next(iter(stream))
    assert not stream.closed
    stream.close()
    assert stream.closed
    stream.close()  # idempotent
    for use in (
        lambda: next(stream),
        lambda: iter(stream),
        lambda: list(stream),
        stream.tell,
        lambda: stream.seek(0),
        stream.reset,
        lambda: stream.current,
        lambda: stream.as_file().read(),
    ):
        with pytest.raises(ValueError, match="closed"):
            use()
    assert "closed" in repr(stream)


def test_context_manager_closes(mixed):
    params, expected = mixed
    stream, _ = multipart_encode(params(), B)
    with stream as s:
        assert s is stream
        assert b"".join(s) == expected
    assert stream.closed


def test_async_iteration(mixed):
    params, expected = mixed
    stream, _ = multipart_encode(params(), B, chunk_size=4096)

    async def collect():
        return [chunk async for chunk in stream]

    with stream:
        chunks = asyncio.run(collect())
        assert all(type(c) is bytes for c in chunks)
        assert b"".join(chunks) == expected
        assert b"".join(asyncio.run(collect())) == expected  # restarts like iter()


def test_file_view(mixed):
    params, expected = mixed
    stream, _ = multipart_encode(params(), B)
    with stream:
        view = stream.as_file()
        assert isinstance(view, MultipartReader)
        assert view.readable()
        assert view.seekable()
        assert view.len == len(expected)
        assert view.stream is stream
        assert view.read(10) == expected[:10]
        assert view.tell() == 10
        buf = bytearray(25)
        assert view.readinto(buf) == 25
        assert bytes(buf) == expected[10:35]
        assert view.seek(-5, 1) == 30
        assert view.read(5) == expected[30:35]
        assert view.seek(100) == 100
        assert view.read() == expected[100:]
        assert view.read(10) == b""
        assert view.seek(0) == 0
        out = io.BytesIO()
        shutil.copyfileobj(view, out, 8192)
        assert out.getvalue() == expected
        view.seek(0)
        assert io.BufferedReader(view, 1000).read() == expected
        view.close()
        assert not stream.closed
        with pytest.raises(ValueError, match="closed"):
            view.read(1)
        assert b"".join(stream) == expected


def test_file_view_of_chunked_stream():
    r, w = os.pipe()
    os.write(w, b"abc" * 1000)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        stream, _ = multipart_encode([("p", pipe)], B)
        with stream:
            view = stream.as_file()
            assert not view.seekable()
            assert view.len is None
            body = view.read()
    assert body.endswith(b"\r\n\r\n" + b"abc" * 1000 + b"\r\n--XYZXYZXYZ--\r\n")


def test_file_view_reports_progress():
    calls = []
    stream, _ = multipart_encode(
        [("a", "1"), ("f", io.BytesIO(b"x" * 1000))], B, cb=lambda p, c, t: calls.append((c, t))
    )
    with stream:
        shutil.copyfileobj(stream.as_file(), io.BytesIO(), 100)
        assert calls
        assert calls[-1] == (len(stream), len(stream))


def test_chunked_stream_seeking():
    r, w = os.pipe()
    os.write(w, b"pipe data")
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        stream, _ = multipart_encode([("a", "1"), ("p", pipe)], B)
        with stream:
            assert isinstance(stream, ChunkedMultipartStream)
            assert stream.seek(0) == 0  # nothing read yet
            with pytest.raises(NotSeekableError):
                stream.seek(5)
            with pytest.raises(NotSeekableError):
                stream.seek(0, 2)
            body = b"".join(stream)
            assert stream.tell() == len(body)
            # a pipe cannot be rewound: going again fails loudly rather than sending a wrong body
            with pytest.raises(NotSeekableError):
                list(stream)
            with pytest.raises(NotSeekableError):
                stream.reset()
    assert body.endswith(b"\r\n\r\npipe data\r\n--XYZXYZXYZ--\r\n")


class SlowReader(io.RawIOBase):
    """A binary file object whose read() blocks until released."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.entered = threading.Event()
        self.release = threading.Event()

    def readable(self):
        return True

    def seekable(self):
        return True

    def read(self, n=-1):
        self.entered.set()
        self.release.wait(10)
        return self._data.read(n)

    def readinto(self, buf):  # pragma: no cover - the encoder calls read()
        raise NotImplementedError

    def seek(self, offset, whence=0):
        return self._data.seek(offset, whence)

    def tell(self):
        return self._data.tell()


def test_async_iteration_does_not_block_the_event_loop():
    slow = SlowReader(b"x" * 1000)
    stream, _ = multipart_encode([("f", slow)], B)

    async def main():
        async def collect():
            return b"".join([chunk async for chunk in stream])

        task = asyncio.create_task(collect())
        for _ in range(1000):  # up to ~10 s for the executor thread to reach read()
            if slow.entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert slow.entered.is_set()
        ticks = 0
        for _ in range(5):  # the loop keeps running while read() is blocked
            await asyncio.sleep(0.001)
            ticks += 1
        assert not task.done()
        slow.release.set()
        return ticks, await asyncio.wait_for(task, 10)

    try:
        with stream:
            ticks, body = asyncio.run(main())
    finally:
        slow.release.set()
    assert ticks == 5
    assert body.endswith(b"\r\n\r\n" + b"x" * 1000 + b"\r\n--XYZXYZXYZ--\r\n")


def test_stream_used_from_two_threads():
    data = bytes(range(256)) * 400
    slow = SlowReader(data)
    stream, headers = multipart_encode([("a", "1"), ("f", slow)], B)
    result = {}

    def consume():
        try:
            result["chunks"] = list(stream)
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    try:
        assert slow.entered.wait(10), "the worker never reached read()"
        for use in (lambda: next(stream), stream.tell, lambda: stream.seek(0), stream.close):
            with pytest.raises(RuntimeError, match="another thread"):
                use()
    finally:
        slow.release.set()
        worker.join(10)
    assert not worker.is_alive()
    assert "error" not in result
    body = b"".join(result["chunks"])
    assert len(body) == int(headers["Content-Length"])
    assert body.endswith(b"\r\n\r\n" + data + b"\r\n--XYZXYZXYZ--\r\n")
    stream.close()


def test_param_in_two_streams_is_independent_for_real_files(data_files):
    param = MultipartParam.from_file("f", data_files.medium)
    s1, _ = multipart_encode([param], B, chunk_size=4096)
    s2, _ = multipart_encode([param], B, chunk_size=4096)
    with s1, s2:
        out1, out2 = [], []
        for c1, c2 in zip(s1, s2, strict=True):
            out1.append(c1)
            out2.append(c2)
    assert b"".join(out1) == b"".join(out2)
