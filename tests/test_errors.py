"""The exception hierarchy: one ``PosterError`` base, the standard bases kept, every class in
module ``poster_rs``, and pickling (a process pool worker's error reaches the caller whole)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pathlib
import pickle

import poster_rs
import pytest
from _helpers import B
from poster_rs import (
    BoundaryError,
    FileChangedError,
    HeaderError,
    MultipartParam,
    NotARegularFileError,
    NotSeekableError,
    PosterError,
    multipart_encode,
)

STANDARD_BASE = {
    BoundaryError: ValueError,
    FileChangedError: OSError,
    HeaderError: ValueError,
    NotARegularFileError: ValueError,
    NotSeekableError: OSError,
}


def test_every_class_is_a_poster_error_with_its_standard_base() -> None:
    for name in poster_rs.errors.__all__:
        cls = getattr(poster_rs.errors, name)
        assert getattr(poster_rs, name) is cls
        assert cls.__module__ == "poster_rs"
        assert issubclass(cls, PosterError)
    assert set(STANDARD_BASE) == {
        getattr(poster_rs, n) for n in poster_rs.errors.__all__ if n != "PosterError"
    }
    for cls, base in STANDARD_BASE.items():
        assert issubclass(cls, base), cls


def _boundary_in_data() -> BoundaryError:
    with pytest.raises(BoundaryError) as info:
        MultipartParam("field", "ab\r\n--" + B).encode(B)
    return info.value


def _header_error() -> HeaderError:
    with pytest.raises(HeaderError) as info:
        multipart_encode([MultipartParam("meta", "v", headers={"X-A": "1\r\nX-B: 2"})], B)
    return info.value


def _file_changed(tmp_path: pathlib.Path) -> FileChangedError:
    path = tmp_path / "grows.bin"
    path.write_bytes(b"x" * 10)
    stream, _ = multipart_encode([("upload", path)], B)
    path.write_bytes(b"x" * 20)
    with stream, pytest.raises(FileChangedError) as info:
        b"".join(stream)
    return info.value


def _not_seekable() -> NotSeekableError:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        stream, _ = multipart_encode([("pipe", pipe)], B)
        with stream, pytest.raises(NotSeekableError) as info:
            stream.seek(0, os.SEEK_END)
    return info.value


def _not_a_regular_file(tmp_path: pathlib.Path) -> NotARegularFileError:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFileError) as info:
        MultipartParam.from_file("f", fifo)
    return info.value


def test_the_core_raises_these_classes_with_their_attributes(tmp_path: pathlib.Path) -> None:
    boundary = _boundary_in_data()
    assert (boundary.part, boundary.offset) == ("field", 4)
    assert "boundary found in file data" in str(boundary)
    assert _header_error().part == "meta"
    assert _file_changed(tmp_path).part == "upload"
    assert "its length is unknown" in str(_not_seekable())
    assert "is a FIFO, not a regular file" in str(_not_a_regular_file(tmp_path))
    with pytest.raises(BoundaryError, match="invalid boundary"):
        multipart_encode([("a", "b")], "bad boundary ")


def test_errors_round_trip_through_pickle(tmp_path: pathlib.Path) -> None:
    raised: list[PosterError] = [
        _boundary_in_data(),
        _header_error(),
        _file_changed(tmp_path),
        _not_seekable(),
        _not_a_regular_file(tmp_path),
    ]
    for error in raised:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert copy.args == error.args
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
    made = FileChangedError(5, "changed", "f.bin")
    copy = pickle.loads(pickle.dumps(made))
    assert (copy.errno, copy.strerror, copy.filename) == (5, "changed", "f.bin")


def encode_with_the_delimiter_inside() -> bytes:
    """Runs in a pool worker: raises BoundaryError there."""
    return MultipartParam("field", "ab\r\n--" + B).encode(B)


def test_a_process_pool_worker_hands_the_caller_the_same_exception() -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(encode_with_the_delimiter_inside)
        with pytest.raises(BoundaryError) as info:
            future.result(timeout=120)
    assert isinstance(info.value, ValueError)
    assert (info.value.part, info.value.offset) == ("field", 4)
