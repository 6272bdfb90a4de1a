"""The bad-input matrix (issue 4, point 1): every bad input is a clear exception, with a type and
a message that name the culprit, raised before any byte is produced (or, for what can only be
seen while streaming, before any wrong byte is produced).

- CR, LF and NUL in names and filenames are escaped in every escape mode, never raw in a header;
  in content types and custom headers (where nothing can be escaped) they are refused;
- ``value`` and ``fileobj`` together, names that are not str/bytes, missing, unreadable,
  directory and special paths, text-mode file objects, negative or wrong ``filesize``;
- invalid boundaries, seeks outside the body, use after close, and a boundary that occurs as a
  delimiter in a value (at build) or in file data (while iterating).
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import socket
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import poster_rs
import pytest
from poster_rs import (
    BoundaryError,
    FileChangedError,
    MultipartParam,
    NotSeekableError,
    multipart_encode,
)

B = "BoUnDaRy"
MODES = ["quoted", "html5", "poster"]
CONTROLS = {"CR": "\r", "LF": "\n", "NUL": "\0", "CRLF": "\r\n"}


def body_of(params: Any, **kw: Any) -> bytes:
    stream, _ = multipart_encode(params, kw.pop("boundary", B), **kw)
    with stream:
        return b"".join(stream)


def collect(stream: Any, got: bytearray) -> None:
    """Appends every chunk of ``stream`` to ``got`` (what was handed out before an error)."""
    for chunk in stream:
        got += chunk


def header_blocks(body: bytes, boundary: str = B) -> list[list[bytes]]:
    """The header lines of every part (framing checked with the boundary only)."""
    delim = b"--" + boundary.encode()
    assert body.endswith(delim + b"--\r\n")
    blocks = []
    for raw in body.split(delim + b"\r\n")[1:]:
        head, sep, _ = raw.partition(b"\r\n\r\n")
        assert sep, raw[:200]
        blocks.append(head.split(b"\r\n"))
    return blocks


def assert_no_raw_control(lines: list[bytes], expected_lines: int) -> None:
    """A header block where user input added no line and left no CR, LF or NUL."""
    assert len(lines) == expected_lines, lines
    for line in lines:
        assert b"\r" not in line, line
        assert b"\n" not in line, line
        assert b"\0" not in line, line
    assert lines[0].startswith(b"Content-Disposition: form-data; name=")
    assert lines[1].startswith(b"Content-Type: ")


def control_cases() -> Iterator[Any]:
    for mode in MODES:
        for label, char in CONTROLS.items():
            yield pytest.param(mode, char, id=f"{mode}-{label}")


# --- CR, LF, NUL in names and filenames: escaped in every mode ---------------------------------


@pytest.mark.parametrize(("mode", "char"), list(control_cases()))
def test_control_in_field_name_is_escaped(mode: str, char: str) -> None:
    name = f"a{char}Content-Type: evil{char}{char}x"
    body = body_of([(name, "v")], escape=mode)
    [lines] = header_blocks(body)
    assert_no_raw_control(lines, 2)


@pytest.mark.parametrize(("mode", "char"), list(control_cases()))
def test_control_in_file_part_name_is_escaped(mode: str, char: str) -> None:
    param = MultipartParam(f"f{char}X-Injected: 1", filename="a.txt", fileobj=io.BytesIO(b"x"))
    [lines] = header_blocks(body_of([param], escape=mode))
    assert_no_raw_control(lines, 2)


@pytest.mark.parametrize(("mode", "char"), list(control_cases()))
def test_control_in_filename_is_escaped(mode: str, char: str) -> None:
    param = MultipartParam(
        "f", filename=f"a{char}X-Injected: 1{char}.txt", fileobj=io.BytesIO(b"data")
    )
    [lines] = header_blocks(body_of([param], escape=mode))
    assert_no_raw_control(lines, 2)
    assert b"; filename=" in lines[0]


@pytest.mark.parametrize(("mode", "char"), list(control_cases()))
def test_control_in_name_and_filename_via_encode_hdr(mode: str, char: str) -> None:
    """poster's own helpers (encode_hdr, encode_file_header) go through the same escaping."""
    param = MultipartParam(f"n{char}", filename=f"f{char}", filesize=1)
    head = param.encode_hdr(B, escape=mode)
    assert head.startswith(f"--{B}\r\n".encode())
    assert head.endswith(b"\r\n\r\n")
    assert_no_raw_control(head[len(B) + 4 : -4].split(b"\r\n"), 2)
    head = poster_rs.encode_file_header(B, f"n{char}", 1, f"f{char}", escape=mode)
    assert_no_raw_control(head[len(B) + 4 : -4].split(b"\r\n"), 2)


# --- CR, LF, NUL in content types and custom headers: refused --------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("char", list(CONTROLS.values()), ids=list(CONTROLS))
def test_control_in_filetype_is_refused(mode: str, char: str) -> None:
    param = MultipartParam(
        "upload", filetype=f"text/plain{char}X-Evil: 1", fileobj=io.BytesIO(b"x")
    )
    with pytest.raises(ValueError, match=r'part "upload": header "Content-Type" contains CR, LF'):
        multipart_encode([param], B, escape=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("char", list(CONTROLS.values()), ids=list(CONTROLS))
def test_control_in_custom_header_value_is_refused(mode: str, char: str) -> None:
    param = MultipartParam("meta", "v", headers={"X-Checksum": f"abc{char}X-Evil: 1"})
    with pytest.raises(ValueError, match=r'part "meta": header "X-Checksum" contains CR, LF'):
        multipart_encode([param], B, escape=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("char", list(CONTROLS.values()), ids=list(CONTROLS))
def test_control_in_custom_header_name_is_refused(mode: str, char: str) -> None:
    param = MultipartParam("meta", "v", headers={f"X-A{char}X-Evil": "1"})
    with pytest.raises(ValueError, match=r'part "meta": header .* is not a valid header name'):
        multipart_encode([param], B, escape=mode)


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x7f"], ids=["SOH", "ESC", "DEL"])
def test_other_control_in_custom_header_value_is_refused(char: str) -> None:
    param = MultipartParam("meta", "v", headers=[("X-A", f"a{char}b")])
    with pytest.raises(ValueError, match=r'part "meta": header "X-A" contains a control character'):
        multipart_encode([param], B)


@pytest.mark.parametrize("header", ["Content-Disposition", "content-disposition"])
def test_content_disposition_cannot_be_overridden(header: str) -> None:
    param = MultipartParam("meta", "v", headers={header: 'form-data; name="other"'})
    with pytest.raises(ValueError, match=r"part \"meta\": header .* cannot be overridden"):
        multipart_encode([param], B)


@pytest.mark.parametrize("headers", [{"": "x"}, {"X A": "x"}, {"X:A": "x"}, {"Ünï": "x"}])
def test_invalid_custom_header_names_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"is not a valid header name"):
        multipart_encode([MultipartParam("meta", "v", headers=headers)], B)


def test_non_str_custom_header_is_refused() -> None:
    with pytest.raises(TypeError, match="part header names and values must be str"):
        MultipartParam("meta", "v", headers={"X-A": 1})  # type: ignore[dict-item]


def test_tab_in_custom_header_value_is_allowed() -> None:
    body = body_of([MultipartParam("meta", "v", headers={"X-A": "a\tb"})])
    [lines] = header_blocks(body)
    assert lines[2] == b"X-A: a\tb"


# --- parameters that cannot be a part ---------------------------------------------------------


def test_value_and_fileobj_together() -> None:
    with pytest.raises(ValueError, match="Only one of value or fileobj may be specified"):
        MultipartParam("both", "value", fileobj=io.BytesIO(b"data"))


@pytest.mark.parametrize("name", [1, None, 2.5, ("a",), ["a"], object()], ids=repr)
def test_name_of_wrong_type_in_param(name: Any) -> None:
    with pytest.raises(TypeError, match=rf"name must be str or bytes, not {type(name).__name__}"):
        MultipartParam(name, "v")


@pytest.mark.parametrize("name", [1, None, 2.5, ("a",)], ids=repr)
@pytest.mark.parametrize("shape", ["pairs", "mapping"])
def test_name_of_wrong_type_in_multipart_encode(name: Any, shape: str) -> None:
    params: Any = [(name, "v")] if shape == "pairs" else {name: "v"}
    with pytest.raises(TypeError, match=rf"name must be str or bytes, not {type(name).__name__}"):
        multipart_encode(params, B)


def test_name_bytes_not_utf8() -> None:
    with pytest.raises(ValueError, match=r"name b'\\xff' is not valid UTF-8"):
        multipart_encode([(b"\xff", "v")], B)


@pytest.mark.parametrize("item", ["abc", ("a",), ("a", "b", "c"), 5], ids=repr)
def test_form_items_that_are_not_pairs(item: Any) -> None:
    with pytest.raises(TypeError, match="form items must be"):
        multipart_encode([item], B)


def test_none_value() -> None:
    with pytest.raises(TypeError, match=r"part 'a' has no value \(None\)"):
        multipart_encode([("a", None)], B)


# --- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["pathlike", "from_file"])
def test_missing_path(tmp_path: pathlib.Path, how: str) -> None:
    missing = tmp_path / "nope.txt"
    if how == "pathlike":
        action = lambda: multipart_encode([("f", missing)], B)  # noqa: E731
    else:
        action = lambda: MultipartParam.from_file("f", missing)  # noqa: E731
    with pytest.raises(FileNotFoundError) as info:
        action()
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)


def test_path_deleted_between_from_file_and_encode(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "gone.txt"
    path.write_bytes(b"x")
    param = MultipartParam.from_file("f", path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r'part "f": cannot read file .*gone\.txt'):
        multipart_encode([param], B)


def _unreadable_in_child(path: str) -> str:
    """Runs multipart_encode on ``path`` in a forked child that has dropped root, and returns
    what it raised."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads alive; the child only calls
        # multipart_encode and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_fd)
            os.setgid(65534)
            os.setuid(65534)
            try:
                multipart_encode([("secret", pathlib.Path(path))], B)
                result = "no error"
            except Exception as exc:
                result = f"{type(exc).__name__}|{exc}|{getattr(exc, 'filename', None)}"
            os.write(write_fd, result.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the unprivileged child did not finish")
            time.sleep(0.01)
        out = pipe.read().decode()
    assert os.WIFEXITED(status), status
    assert os.WEXITSTATUS(status) == 0, status
    return out


def test_unreadable_path() -> None:
    # Not under tmp_path: pytest's base directory is private to root, and the unprivileged child
    # must be able to reach the file to find it unreadable.
    directory = pathlib.Path(tempfile.mkdtemp(prefix="poster-rs-unreadable-"))
    directory.chmod(0o755)
    path = directory / "secret.txt"
    path.write_bytes(b"top secret")
    path.chmod(0)
    try:
        if os.geteuid() == 0:
            # Root reads anything: check as an unprivileged user in a forked child instead.
            kind, message, filename = _unreadable_in_child(str(path)).split("|")
        else:
            with pytest.raises(PermissionError) as info:
                multipart_encode([("secret", path)], B)
            kind, message = type(info.value).__name__, str(info.value)
            filename = info.value.filename
    finally:
        shutil.rmtree(directory)
    assert kind == "PermissionError", message
    assert 'part "secret"' in message
    assert "secret.txt" in message
    assert filename == str(path)


@pytest.mark.parametrize("how", ["pathlike", "from_file"])
def test_directory_path(tmp_path: pathlib.Path, how: str) -> None:
    if how == "pathlike":
        action = lambda: multipart_encode([("f", tmp_path)], B)  # noqa: E731
    else:
        action = lambda: MultipartParam.from_file("f", tmp_path)  # noqa: E731
    with pytest.raises(IsADirectoryError) as info:
        action()
    assert info.value.filename == str(tmp_path)


@contextlib.contextmanager
def fifo_guard(path: pathlib.Path) -> Iterator[None]:
    """Makes a FIFO at ``path``; should the code under test open it for reading (and so block
    forever), a watchdog opens the writing end and closes it, so the test fails instead of
    hanging."""
    os.mkfifo(path)
    stop = threading.Event()
    opened = []

    def watchdog() -> None:
        while not stop.wait(0.05):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # ENXIO: nobody reads it, good
            opened.append(True)
            os.close(fd)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
    assert not opened, "the FIFO was opened for reading"


@pytest.mark.parametrize("how", ["pathlike", "from_file"])
def test_fifo_path(tmp_path: pathlib.Path, how: str) -> None:
    fifo = tmp_path / "pipe"
    with fifo_guard(fifo):
        if how == "pathlike":
            action = lambda: multipart_encode([("f", fifo)], B)  # noqa: E731
        else:
            action = lambda: MultipartParam.from_file("f", fifo)  # noqa: E731
        started = time.monotonic()
        with pytest.raises(ValueError, match=r"pipe.* is a FIFO") as info:
            action()
        assert time.monotonic() - started < 2
    assert "not a regular file" in str(info.value)


def test_socket_path(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ValueError, match=r"sock.* is a socket, not a regular file"):
            multipart_encode([("f", path)], B)


def test_character_device_path() -> None:
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with pytest.raises(ValueError, match=r"/dev/null.* is a character device"):
        multipart_encode([("f", pathlib.Path("/dev/null"))], B)


# --- file objects -------------------------------------------------------------------------------


def test_text_mode_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("text")
    with open(path) as f, pytest.raises(TypeError, match=r"part 'doc': .*text mode.*'rb'"):
        multipart_encode([("doc", f)], B)


@pytest.mark.parametrize("how", ["pair", "param"])
def test_text_io_object(how: str) -> None:
    text = io.StringIO("text")
    if how == "pair":
        action = lambda: multipart_encode([("doc", text)], B)  # noqa: E731
    else:
        action = lambda: MultipartParam("doc", fileobj=text)  # noqa: E731
    with pytest.raises(TypeError, match=r"part 'doc': .*text mode"):
        action()


def test_read_returning_str_is_refused_while_streaming() -> None:
    """A file-like object that is not an io class but returns str from read()."""

    class Liar:
        def read(self, n: int = -1) -> str:
            return "text"

    stream, _ = multipart_encode([MultipartParam("doc", fileobj=Liar(), filesize=4)], B)
    with stream, pytest.raises(TypeError, match=r"read\(\) returned str instead of bytes"):
        b"".join(stream)


def test_closed_file_object(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    with open(path, "rb") as f:
        pass
    with pytest.raises(ValueError, match=r"part 'f'.*closed"):
        multipart_encode([("f", f)], B)


@pytest.mark.parametrize(
    "params",
    [
        [("a\ud800", "v")],
        [("a", "v\udcff")],
        [MultipartParam("a", "v", headers={"X-A": "\ud800"})],
    ],
    ids=["name", "value", "header"],
)
def test_lone_surrogates_are_refused_at_build(params: Any) -> None:
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        multipart_encode(params, B)


def test_fileobj_without_read() -> None:
    with pytest.raises(TypeError, match=r"fileobj must have a read\(\) method, not int"):
        MultipartParam("f", fileobj=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [-1, -(2**40)])
def test_negative_filesize(size: int) -> None:
    with pytest.raises(ValueError, match=rf"filesize must not be negative \(got {size}\)"):
        MultipartParam("f", fileobj=io.BytesIO(b"abc"), filesize=size)


@pytest.mark.parametrize("size", ["3", 3.0, True])
def test_filesize_not_an_int(size: Any) -> None:
    with pytest.raises(TypeError, match="filesize must be an int"):
        MultipartParam("f", fileobj=io.BytesIO(b"abc"), filesize=size)


@pytest.mark.parametrize("size", [0, 2, 4, 1000])
def test_wrong_filesize_for_seekable_object(size: int) -> None:
    with pytest.raises(ValueError, match=rf"part 'f': filesize={size} but the file object has 3"):
        MultipartParam("f", fileobj=io.BytesIO(b"abc"), filesize=size)


def test_wrong_filesize_for_real_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "three.bin"
    path.write_bytes(b"abc")
    with open(path, "rb") as f, pytest.raises(ValueError, match="filesize=10 but the file"):
        MultipartParam("f", fileobj=f, filesize=10)


@pytest.mark.parametrize(("declared", "actual"), [(10, 4), (4, 10)], ids=["short", "long"])
def test_wrong_filesize_for_pipe_raises_before_a_wrong_byte(declared: int, actual: int) -> None:
    """An unseekable source cannot be measured: the declared size is trusted, and a source that
    disagrees stops the stream before the body could disagree with its Content-Length."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"d" * actual)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        param = MultipartParam("p", filename="p.bin", fileobj=pipe, filesize=declared)
        stream, headers = multipart_encode([param], B, chunk_size=3)
        got = bytearray()
        with stream, pytest.raises(FileChangedError, match=r'part "p": data changed size'):
            collect(stream, got)
    assert len(got) < int(headers["Content-Length"])
    assert got.count(b"d") <= min(declared, actual)


# --- boundaries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boundary", "reason"),
    [
        ("", "it is empty"),
        ("x" * 71, "longer than 70 characters"),
        ("a" * 200, "longer than 70 characters"),
        ('a"b', "outside RFC 2046 bchars"),
        ("a;b", "outside RFC 2046 bchars"),
        ("a\r\nb", "outside RFC 2046 bchars"),
        ("a\tb", "outside RFC 2046 bchars"),
        ("a\0b", "outside RFC 2046 bchars"),
        ("é", "outside RFC 2046 bchars"),
        ("ab ", "ends with a space"),
        (" ", "ends with a space"),
    ],
    ids=repr,
)
def test_invalid_boundary(boundary: str, reason: str) -> None:
    with pytest.raises(BoundaryError, match=reason) as info:
        multipart_encode([("a", "v")], boundary)
    assert repr(boundary).strip("'") in str(info.value) or "invalid boundary" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("boundary", ["x" * 70, "a b", "'()+_,-./:=?", "1", "-"])
def test_valid_unusual_boundaries_are_accepted(boundary: str) -> None:
    stream, headers = multipart_encode([("a", "v")], boundary)
    stream.close()
    assert boundary in headers["Content-Type"]


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        ("x\r\n--B\r\nmore", 3),
        ("--B", 0),
        ("--B--", 0),
        ("abc\r\n--B--\r\n", 5),
        (b"\0" * 100_000 + b"\r\n--B", 100_002),
    ],
    ids=["middle", "start", "start-closing", "closing", "large-shared-value"],
)
def test_boundary_in_value_is_refused_at_build(value: str | bytes, offset: int) -> None:
    with pytest.raises(
        BoundaryError, match=rf'part "val" contains the multipart delimiter at byte {offset}'
    ):
        multipart_encode([("ok", "fine"), ("val", value)], "B")


def test_boundary_in_in_memory_file_is_refused_before_its_data() -> None:
    """A requests-style ``(filename, bytes)`` value is streamed like a file object: the
    delimiter is found while streaming, before its last byte is handed out (even one byte at a
    time), so a server never sees it."""
    got = bytearray()
    stream, _ = multipart_encode(
        [("first", "x"), ("up", ("a.bin", b"ab\r\n--B"))], "B", chunk_size=1
    )
    with (
        stream,
        pytest.raises(BoundaryError, match=r'part "up" contains the multipart delimiter at byte 4'),
    ):
        collect(stream, got)
    assert got.count(b"\r\n--B") == 1  # only the real delimiter before part "up"
    assert got.endswith(b"ab\r\n--")


def test_near_miss_delimiters_are_accepted() -> None:
    value = "\n--B \r--B a--B \r\n-B \r\n--b \r\n--"
    body = body_of([("v", value)], boundary="B")
    assert value.encode() in body


@pytest.mark.parametrize("at", [0, 5, (1 << 20) - 3, (3 << 20) - 8], ids=str)
def test_boundary_in_file_data_is_refused_while_iterating(tmp_path: pathlib.Path, at: int) -> None:
    """Found while streaming (file data is never read ahead), before a chunk carrying the
    delimiter is handed out; the chunks before it are correct."""
    size = 3 << 20
    data = bytearray(b"a" * size)
    delimiter = b"--BnD" if at == 0 else b"\r\n--BnD"
    data[at : at + len(delimiter)] = delimiter
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(data))
    stream, headers = multipart_encode([("upload", path)], "BnD")
    got = bytearray()
    delimiter_at = at if at == 0 else at + 2
    with (
        stream,
        pytest.raises(BoundaryError, match=rf'part "upload" contains .* at byte {delimiter_at}'),
    ):
        collect(stream, got)
    assert b"\r\n--BnD\r\n" not in bytes(got[10:])
    assert len(got) < int(headers["Content-Length"])
    header_len = bytes(got).find(b"\r\n\r\n") + 4 if got else 0
    assert bytes(got[header_len:]) == bytes(data[: len(got) - header_len])


def test_boundary_in_reader_data_is_refused_while_iterating() -> None:
    reader = io.BufferedReader(io.BytesIO(b"xx\r\n--B\r\n"))  # type: ignore[arg-type]
    stream, _ = multipart_encode([("r", ("r.bin", reader))], "B")
    with stream, pytest.raises(BoundaryError, match=r'part "r" contains the multipart delimiter'):
        b"".join(stream)


def test_the_stream_keeps_refusing_after_a_boundary_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "d.bin"
    path.write_bytes(b"--B")
    stream, _ = multipart_encode([("f", path)], "B")
    with stream:
        for _ in range(3):
            with pytest.raises(BoundaryError):
                next(stream)


# --- seeking --------------------------------------------------------------------------------


@pytest.fixture
def stream() -> Iterator[poster_rs.MultipartStream]:
    s, _ = multipart_encode([("a", "value"), ("b", b"\0" * 100)], B)
    with s:
        yield s  # type: ignore[misc]


@pytest.mark.parametrize(
    ("offset", "whence"),
    [(-1, 0), (1, 2), (-(10**6), 1), (10**6, 0), (2**62, 0), (-(2**62), 2)],
)
def test_seek_outside_the_body(stream: Any, offset: int, whence: int) -> None:
    next(stream)
    stream.seek(10)
    with pytest.raises(
        ValueError, match=r"seek position -?\d+ is outside the body \(0 to \d+ bytes\)"
    ):
        stream.seek(offset, whence)
    assert stream.tell() == 10


@pytest.mark.parametrize("offset", [2**63, 2**64, -(2**70)])
def test_seek_to_a_huge_offset(stream: Any, offset: int) -> None:
    """Offsets that do not fit in 64 bits: OverflowError, as io.BytesIO.seek raises."""
    with pytest.raises((OverflowError, ValueError)):
        stream.seek(offset)
    assert stream.tell() == 0


@pytest.mark.parametrize("whence", [-1, 3, 100])
def test_seek_with_invalid_whence(stream: Any, whence: int) -> None:
    with pytest.raises(ValueError, match=rf"invalid whence \({whence}, should be 0, 1 or 2\)"):
        stream.seek(0, whence)


def test_seek_to_the_end_and_back(stream: Any) -> None:
    total = len(stream)
    assert stream.seek(0, 2) == total
    assert list(stream) == [] or stream.tell() == total
    assert stream.seek(0) == 0


@pytest.fixture
def chunked() -> Iterator[Any]:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"data")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        s, headers = multipart_encode([("p", pipe)], B)
        assert "Content-Length" not in headers
        with s:
            yield s


def test_seek_from_end_on_a_chunked_stream(chunked: Any) -> None:
    with pytest.raises(NotSeekableError, match="its length is unknown"):
        chunked.seek(0, 2)
    assert isinstance(NotSeekableError("x"), OSError)


def test_seek_forward_on_a_chunked_stream(chunked: Any) -> None:
    with pytest.raises(NotSeekableError, match="can only go back to the start"):
        chunked.seek(5)
    assert chunked.tell() == 0


def test_seek_back_on_a_consumed_pipe(chunked: Any) -> None:
    b"".join(chunked)
    with pytest.raises(NotSeekableError, match=r'part "p": its reader cannot rewind'):
        chunked.seek(0)


def test_len_of_a_chunked_stream(chunked: Any) -> None:
    with pytest.raises(TypeError, match="has no len"):
        len(chunked)


# --- use after close ------------------------------------------------------------------------


CLOSED = "I/O operation on closed MultipartStream"


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(list, id="iterate"),
        pytest.param(next, id="next"),
        pytest.param(lambda s: s.seek(0), id="seek"),
        pytest.param(lambda s: s.tell(), id="tell"),
        pytest.param(lambda s: s.reset(), id="reset"),
        pytest.param(lambda s: s.current, id="current"),
        pytest.param(lambda s: s.as_file().read(10), id="as_file-read"),
    ],
)
@pytest.mark.parametrize("when", ["fresh", "mid-way", "consumed"])
def test_use_after_close(tmp_path: pathlib.Path, use: Any, when: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * (3 << 20))
    s, _ = multipart_encode([("a", "v"), ("f", path)], B)
    if when == "mid-way":
        next(s)
    elif when == "consumed":
        b"".join(s)
    s.close()
    assert s.closed
    with pytest.raises(ValueError, match=CLOSED):
        use(s)


def test_close_is_idempotent_and_context_manager_closes(stream: Any) -> None:
    stream.close()
    stream.close()
    with multipart_encode([("a", "v")], B)[0] as s:
        pass
    assert s.closed
    with pytest.raises(ValueError, match=CLOSED):
        next(s)


def test_file_view_after_close_of_the_view() -> None:
    s, _ = multipart_encode([("a", "v")], B)
    view = s.as_file()
    view.close()
    with pytest.raises(ValueError, match="closed file"):
        view.read(1)
    assert not s.closed
    s.close()


# --- unknown escape mode and options ---------------------------------------------------------


def test_unknown_escape_mode() -> None:
    with pytest.raises(ValueError, match=r'unknown escape mode "rfc2231": use "quoted", "html5"'):
        multipart_encode([("a", "v")], B, escape="rfc2231")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -1])
def test_bad_chunk_size(size: int) -> None:
    with pytest.raises((ValueError, OverflowError), match=r"chunk_size|negative|convert"):
        multipart_encode([("a", "v")], B, chunk_size=size)
