"""Readability is the kernel's answer (issue 10, client): a file the process cannot open fails at
``multipart_encode`` with ``PermissionError`` naming the path, whatever its uid and mode bits
say: root without ``CAP_DAC_OVERRIDE`` (``setpriv`` drops every capability), and a POSIX ACL
that denies a user the mode bits would let in. Opening is kept to regular files: a FIFO's blocked
writer is never woken."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from poster_rs import multipart_encode

B = "readability-boundary"
NOBODY = 65534
CHILD_TIMEOUT = 30

#: Run by a root process without capabilities: what ``multipart_encode`` raises for argv[1].
_ENCODE_AND_REPORT = """
import json, pathlib, sys
from poster_rs import multipart_encode
try:
    multipart_encode([("secret", pathlib.Path(sys.argv[1]))])
    print(json.dumps({"kind": None}))
except Exception as exc:
    print(json.dumps({"kind": type(exc).__name__, "message": str(exc),
                      "filename": getattr(exc, "filename", None)}))
"""


@pytest.fixture
def shared_dir() -> Iterator[pathlib.Path]:
    """A directory every user may enter (pytest's own base directory is private to root)."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="poster-rs-readability-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def _no_capabilities_command(*argv: str) -> list[str]:
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *argv]


def _require_setpriv_as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the case is root without CAP_DAC_OVERRIDE")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    probe = subprocess.run(
        _no_capabilities_command(sys.executable, "-c", "print(open('/proc/self/status').read())"),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.strip()}")
    effective = next(
        line.split()[1] for line in probe.stdout.splitlines() if line.startswith("CapEff:")
    )
    if int(effective, 16) != 0:
        pytest.skip(f"setpriv left capabilities in effect: {effective}")


def _file_of_nobody(directory: pathlib.Path) -> pathlib.Path:
    path = directory / "secret.txt"
    path.write_bytes(b"top secret")
    path.chmod(0o600)
    os.chown(path, NOBODY, NOBODY)
    return path


def test_root_without_capabilities_fails_at_encode(shared_dir: pathlib.Path) -> None:
    _require_setpriv_as_root()
    path = _file_of_nobody(shared_dir)
    result = subprocess.run(
        _no_capabilities_command(sys.executable, "-c", _ENCODE_AND_REPORT, str(path)),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "PermissionError", report
    assert 'part "secret"' in report["message"]
    assert str(path) in report["message"]
    assert report["filename"] == str(path)


def test_root_with_capabilities_still_reads_it(shared_dir: pathlib.Path) -> None:
    # The control for the test above: the same file is fine for a root that keeps its
    # capabilities, so the failure there comes from the dropped capabilities alone.
    if os.geteuid() != 0:
        pytest.skip("needs root")
    path = _file_of_nobody(shared_dir)
    stream, _ = multipart_encode([("secret", path)], B)
    with stream:
        assert b"top secret" in b"".join(stream)


def _in_child_as_nobody(action: Callable[[], str]) -> str:
    """Runs ``action`` in a forked child that has become uid/gid 65534 (no supplementary
    groups) and returns its result; the interpreter under /root stays usable, unlike exec."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads alive; the child only runs ``action``.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_fd, action().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child running as nobody did not finish")
        time.sleep(0.01)
    with os.fdopen(read_fd, "rb") as pipe:
        out = pipe.read().decode()
    assert os.WIFEXITED(status), status
    assert os.WEXITSTATUS(status) == 0, status
    return out


# struct posix_acl_xattr_header / posix_acl_xattr_entry (linux/posix_acl_xattr.h).
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF


def _deny_user_acl(user: int) -> bytes:
    """``u::rw-, u:USER:---, g::r--, m::r--, o::r--``: the mode bits read 0644."""
    entries = [
        (_ACL_USER_OBJ, 6, _ACL_UNDEFINED_ID),
        (_ACL_USER, 0, user),
        (_ACL_GROUP_OBJ, 4, _ACL_UNDEFINED_ID),
        (_ACL_MASK, 4, _ACL_UNDEFINED_ID),
        (_ACL_OTHER, 4, _ACL_UNDEFINED_ID),
    ]
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def _encode_as_nobody(path: pathlib.Path) -> str:
    try:
        multipart_encode([("secret", path)], B)
    except Exception as exc:
        filename = getattr(exc, "filename", None)
        return json.dumps({"kind": type(exc).__name__, "message": str(exc), "filename": filename})
    return json.dumps({"kind": None})


def test_acl_denying_the_user_fails_at_encode(shared_dir: pathlib.Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    path = shared_dir / "secret.txt"
    path.write_bytes(b"top secret")
    try:
        os.setxattr(path, "system.posix_acl_access", _deny_user_acl(NOBODY))
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs on this file system: {exc}")
    # What the mode bits alone say: readable by group and others, so by nobody.
    assert path.stat().st_mode & 0o777 == 0o644
    report = json.loads(_in_child_as_nobody(lambda: _encode_as_nobody(path)))
    assert report["kind"] == "PermissionError", report
    assert str(path) in report["message"]
    assert report["filename"] == str(path)

    # The control: the same user reads a file with the same bits and no ACL.
    plain = shared_dir / "plain.txt"
    plain.write_bytes(b"public")
    plain.chmod(0o644)
    assert json.loads(_in_child_as_nobody(lambda: _encode_as_nobody(plain))) == {"kind": None}


def test_fifo_writer_is_not_woken(tmp_path: pathlib.Path) -> None:
    # Readability is checked by opening, so opening must stay limited to regular files: a
    # writer blocked in open(2) on a FIFO would wake up (and get SIGPIPE on its first write).
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    opened: list[int] = []
    writer = threading.Thread(target=lambda: opened.append(os.open(fifo, os.O_WRONLY)))
    writer.start()
    try:
        time.sleep(0.2)  # let the writer block in open(2)
        with pytest.raises(ValueError, match="is a FIFO"):
            multipart_encode([("f", fifo)], B)
        writer.join(0.3)
        assert writer.is_alive(), "encoding the FIFO opened it for reading"
    finally:
        # Unblock the writer whatever happened.
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(5)
        os.close(reader)
        for fd in opened:
            os.close(fd)
    assert not writer.is_alive()
