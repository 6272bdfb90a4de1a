"""File descriptors and failures on bad paths: nothing leaks, nothing blocks, every failure is
raised by multipart_encode with the path in it."""

from __future__ import annotations

import gc
import os
import threading

import poster_rs
import pytest
from _helpers import B, fd_count
from poster_rs import FileChangedError, MultipartParam, multipart_encode


def test_many_cycles_over_a_path_leave_no_descriptor(data_files, fd_baseline):
    for _ in range(1000):
        stream, _ = multipart_encode([("f", data_files.text)], B)
        with stream:
            for _chunk in stream:
                pass
    assert fd_count() == fd_baseline


def test_many_cycles_over_an_open_file_leave_no_descriptor(data_files, fd_baseline):
    with open(data_files.text, "rb") as f:
        for _ in range(1000):
            stream, _ = multipart_encode([("f", f)], B)
            with stream:
                b"".join(stream)
        assert fd_count() == fd_baseline + 1  # only f itself
    assert fd_count() == fd_baseline


def test_many_cycles_without_close_leave_no_descriptor(data_files, fd_baseline):
    for _ in range(1000):
        stream, _ = multipart_encode([MultipartParam.from_file("f", data_files.text)], B)
        b"".join(stream)
    gc.collect()
    assert fd_count() == fd_baseline


def test_del_stream_releases_its_files(data_files, fd_baseline):
    stream, _ = multipart_encode([("f", data_files.big)], B)
    next(iter(stream))  # the file is open now, mid-way
    assert fd_count() == fd_baseline + 1
    del stream
    gc.collect()
    assert fd_count() == fd_baseline


def test_close_releases_files_mid_way(data_files, fd_baseline):
    with open(data_files.big, "rb") as f:
        stream, _ = multipart_encode([("f", f), ("g", data_files.big)], B)
        assert fd_count() == fd_baseline + 2  # f and the stream's own duplicate of it
        next(iter(stream))
        stream.close()
        assert fd_count() == fd_baseline + 1
    assert fd_count() == fd_baseline


def test_missing_path_fails_in_multipart_encode(tmp_path):
    missing = tmp_path / "missing.bin"
    with pytest.raises(FileNotFoundError) as info:
        multipart_encode([("a", "1"), ("f", missing)], B)
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)


def test_file_deleted_after_from_file_fails_in_multipart_encode(tmp_path):
    path = tmp_path / "gone.txt"
    path.write_bytes(b"x")
    param = MultipartParam.from_file("f", path)
    path.unlink()
    with pytest.raises(FileNotFoundError) as info:
        multipart_encode([param], B)
    assert str(path) in str(info.value)


def test_directory_fails_in_multipart_encode(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        multipart_encode([("f", tmp_path)], B)
    assert str(tmp_path) in str(info.value)


def _run_bounded(fn, timeout=10.0):
    """Runs ``fn`` in a thread; returns ``(finished, result-or-exception)``."""
    out = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), out, thread


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path
    # If a test blocked opening it for reading, a writer unblocks that open.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        pass
    else:
        os.close(fd)


@pytest.mark.parametrize("how", ["pathlike", "from_file"])
def test_fifo_path_fails_fast(fifo, how):
    def call():
        if how == "pathlike":
            return multipart_encode([("f", fifo)], B)
        return multipart_encode([MultipartParam.from_file("f", fifo)], B)

    finished, out, _ = _run_bounded(call)
    assert finished, "multipart_encode blocked on a FIFO"
    assert "result" not in out
    assert isinstance(out["error"], ValueError), out["error"]
    assert str(fifo) in str(out["error"])


def test_fifo_error_names_fifo(fifo):
    finished, out, _ = _run_bounded(lambda: multipart_encode([("f", fifo)], B))
    assert finished
    assert isinstance(out.get("error"), ValueError)
    assert "FIFO" in str(out["error"])


def test_file_grown_after_encode_is_refused(tmp_path):
    path = tmp_path / "grows.bin"
    path.write_bytes(b"a" * 1000)
    stream, _ = multipart_encode([("f", path)], B)
    with path.open("ab") as f:
        f.write(b"more")
    with stream, pytest.raises(FileChangedError):
        b"".join(stream)


def test_file_truncated_after_encode_is_refused(tmp_path):
    path = tmp_path / "shrinks.bin"
    path.write_bytes(b"a" * 1000)
    stream, _ = multipart_encode([("f", path)], B)
    path.write_bytes(b"a" * 10)
    with stream, pytest.raises(FileChangedError):
        b"".join(stream)


def test_unreadable_file_fails_in_multipart_encode(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "secret.bin"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(PermissionError):
        multipart_encode([("f", path)], B)


def test_get_headers_and_get_body_size_leave_no_descriptor(data_files, fd_baseline):
    for _ in range(200):
        poster_rs.get_headers([("f", data_files.text)], B)
        poster_rs.get_body_size([("f", data_files.text)], B)
    assert fd_count() == fd_baseline
