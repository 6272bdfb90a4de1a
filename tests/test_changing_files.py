"""Files that change under the stream (issue 4, point 2).

A file truncated, grown or replaced between ``multipart_encode`` and the end of iteration makes
the iteration raise ``poster_rs.FileChangedError`` (an ``OSError``) naming the part and the
file, instead of sending a body that disagrees with its Content-Length. The stream keeps
refusing afterwards (it never ends "normally" with a short body), and the process never dies:
files are read with ``pread``, never ``mmap``ed, so a truncation cannot SIGBUS the interpreter
(checked in a child process).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import poster_rs
import pytest
from poster_rs import FileChangedError, multipart_encode

MiB = 1 << 20
SIZE = 3 * MiB
B = "ChangingFilesBoundary"


def make(path: pathlib.Path, size: int = SIZE, byte: bytes = b"a") -> pathlib.Path:
    path.write_bytes(byte * size)
    return path


def truncate(path: pathlib.Path) -> None:
    os.truncate(path, 1000)


def truncate_to_zero(path: pathlib.Path) -> None:
    os.truncate(path, 0)


def grow(path: pathlib.Path) -> None:
    with open(path, "ab") as f:
        f.write(b"more")


def replace(path: pathlib.Path) -> None:
    """A new file of the same size, moved over the old one (what editors and rsync do)."""
    new = path.with_suffix(".new")
    make(new, path.stat().st_size, b"b")
    os.replace(new, path)


def replace_by_symlink(path: pathlib.Path) -> None:
    other = make(path.with_suffix(".other"), path.stat().st_size, b"c")
    tmp = path.with_suffix(".link")
    os.symlink(other, tmp)
    os.replace(tmp, path)


CHANGES: dict[str, Callable[[pathlib.Path], None]] = {
    "truncated": truncate,
    "truncated-to-0": truncate_to_zero,
    "grown": grow,
    "replaced": replace,
    "replaced-by-symlink": replace_by_symlink,
}
MESSAGES = {
    "truncated": r"changed size while streaming: the body was built for 3145728 bytes but 1000",
    "truncated-to-0": r"changed size while streaming: the body was built for 3145728 bytes but 0",
    "grown": r"changed size while streaming: the body was built for 3145728 bytes but 3145732",
    "replaced": r"was replaced after the body was built",
    "replaced-by-symlink": r"was replaced after the body was built",
}


def drain(stream: Any, got: bytearray) -> None:
    for chunk in stream:
        got += chunk


@pytest.mark.parametrize("when", ["before-iteration", "mid-iteration"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_path_changed_under_the_stream(tmp_path: pathlib.Path, change: str, when: str) -> None:
    path = make(tmp_path / "data.bin")
    stream, headers = multipart_encode([("title", "t"), ("upload", path), ("after", "x")], B)
    total = int(headers["Content-Length"])
    got = bytearray()
    with stream:
        if when == "mid-iteration":
            got += next(stream)  # the file is open now and partly read
            assert 0 < len(got) < total
        CHANGES[change](path)
        with pytest.raises(FileChangedError, match=MESSAGES[change]) as info:
            drain(stream, got)
        assert 'part "upload"' in str(info.value)
        assert str(path) in str(info.value)
        assert isinstance(info.value, OSError)
        # Nothing wrong went out: fewer bytes than promised, and no closing delimiter.
        assert len(got) < total
        assert not got.endswith(f"--{B}--\r\n".encode())
        # The stream keeps refusing instead of finishing with a short body.
        with pytest.raises(FileChangedError):
            next(stream)


@pytest.mark.parametrize("when", ["before-iteration", "mid-iteration"])
@pytest.mark.parametrize("change", ["truncated", "truncated-to-0", "grown"])
def test_open_file_changed_under_the_stream(tmp_path: pathlib.Path, change: str, when: str) -> None:
    path = make(tmp_path / "data.bin")
    with open(path, "rb") as f:
        stream, headers = multipart_encode([("upload", f)], B)
        got = bytearray()
        with stream:
            if when == "mid-iteration":
                got += next(stream)
            CHANGES[change](path)
            with pytest.raises(FileChangedError, match=MESSAGES[change]) as info:
                drain(stream, got)
    assert 'part "upload"' in str(info.value)
    assert len(got) < int(headers["Content-Length"])


def test_open_file_replaced_by_path_still_sends_what_was_opened(tmp_path: pathlib.Path) -> None:
    """An open file object is the file, not a path: replacing the path changes nothing, and the
    body is the opened file's bytes, consistent with its Content-Length."""
    path = make(tmp_path / "data.bin")
    with open(path, "rb") as f:
        stream, headers = multipart_encode([("upload", f)], B)
        replace(path)
        with stream:
            body = b"".join(stream)
    assert len(body) == int(headers["Content-Length"])
    assert b"a" * SIZE in body
    assert b"b" not in body.split(b"\r\n\r\n", 1)[1]


def test_open_file_from_an_offset_grown(tmp_path: pathlib.Path) -> None:
    """A file object positioned past its start sends the rest of the file; growth is caught
    there too."""
    path = make(tmp_path / "data.bin")
    with open(path, "rb") as f:
        f.seek(100)
        stream, _headers = multipart_encode([("upload", f)], B)
        grow(path)
        with stream, pytest.raises(FileChangedError, match="built for 3145628 bytes but 3145632"):
            b"".join(stream)


def test_path_changed_after_a_rewind(tmp_path: pathlib.Path) -> None:
    """The checks hold for every pass: a body sent once, then rewound for a retry after the file
    changed, raises on the second pass."""
    path = make(tmp_path / "data.bin")
    stream, headers = multipart_encode([("upload", path)], B)
    with stream:
        first = b"".join(stream)
        assert len(first) == int(headers["Content-Length"])
        truncate(path)
        stream.seek(0)
        with pytest.raises(FileChangedError, match=MESSAGES["truncated"]):
            b"".join(stream)


def test_seek_into_a_truncated_file(tmp_path: pathlib.Path) -> None:
    path = make(tmp_path / "data.bin")
    stream, _ = multipart_encode([("upload", path)], B)
    with stream:
        truncate(path)
        with pytest.raises(FileChangedError, match="changed size"):
            stream.seek(2 * MiB)  # the seek reads the bytes before it, for the delimiter scan


def test_failed_seek_leaves_the_position_unchanged(tmp_path: pathlib.Path) -> None:
    path = make(tmp_path / "data.bin")
    stream, _ = multipart_encode([("upload", path)], B)
    with stream:
        next(stream)
        position = stream.tell()
        truncate(path)
        with pytest.raises(FileChangedError):
            stream.seek(2 * MiB)
        assert stream.tell() == position


def test_file_restored_to_its_size_streams_again(tmp_path: pathlib.Path) -> None:
    """After an error the position does not move; a file that is back to the measured size
    (same inode) streams from there, and the body has the promised length."""
    path = make(tmp_path / "data.bin")
    stream, headers = multipart_encode([("upload", path)], B)
    with stream:
        got = bytearray(next(stream))
        truncate(path)
        with pytest.raises(FileChangedError):
            next(stream)
        os.truncate(path, SIZE)
        drain(stream, got)
    assert len(got) == int(headers["Content-Length"])


def test_deleted_path_is_reported(tmp_path: pathlib.Path) -> None:
    path = make(tmp_path / "data.bin")
    stream, _ = multipart_encode([("upload", path)], B)
    path.unlink()
    with stream, pytest.raises(FileNotFoundError, match=r'part "upload": cannot read file'):
        b"".join(stream)


CHILD = textwrap.dedent(
    """
    import os, pathlib, sys
    import poster_rs

    path = sys.argv[1]
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20) * 16)
    stream, headers = poster_rs.multipart_encode(
        [("upload", pathlib.Path(path))], chunk_size=1 << 20
    )
    assert int(headers["Content-Length"]) > 16 << 20
    first = next(stream)
    # The file is open and being read: it must not be memory-mapped.
    with open("/proc/self/maps") as maps:
        mapped = [line for line in maps if path in line]
    print("MAPPED" if mapped else "NOT-MAPPED", flush=True)
    os.truncate(path, 0)
    try:
        for chunk in stream:
            pass
    except poster_rs.FileChangedError as exc:
        print("RAISED", exc, flush=True)
        sys.exit(0)
    print("NO-ERROR", flush=True)
    sys.exit(3)
    """
)


def test_truncation_mid_stream_never_kills_the_process(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "victim.bin"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode >= 0, f"the child died of signal {-proc.returncode}: {proc.stderr}"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NOT-MAPPED" in proc.stdout
    assert "RAISED" in proc.stdout
    assert "changed size while streaming" in proc.stdout


def test_no_mmap_in_the_package() -> None:
    """The Python layer never maps files (the Rust core has no unsafe code to do it either)."""
    package = pathlib.Path(poster_rs.__file__).parent
    for source in package.glob("*.py"):
        assert "mmap" not in source.read_text(), source
