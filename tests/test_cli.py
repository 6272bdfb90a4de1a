"""The ``poster-rs`` command run for real in subprocesses (issue 3, point 3): ``post`` against
``poster-rs serve`` (and against werkzeug servers in this process, to see methods, headers and
TLS), ``demo``, and the console script."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import MiB, WerkzeugServer, check_upload, file_sha256, sha256

pytest_plugins = ["_fixtures"]  # servers, payloads, TLS

RUN_TIMEOUT = 60
CLI = [sys.executable, "-m", "poster_rs"]


def run(*args: str, timeout: float = RUN_TIMEOUT, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        **kw,
    )


class ServeProcess:
    """``poster-rs serve --port 0`` in a subprocess; its stdout is drained by a thread."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", "0", "--dir", str(directory), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self.stderr_reader.start()
        try:
            first = self.lines.get(timeout=20)
        except queue.Empty:
            self.stop()
            raise AssertionError("poster-rs serve printed nothing in 20 s") from None
        match = re.match(r"Serving on (http://127\.0\.0\.1:(\d+)/) ", first)
        if match is None:
            self.stop()
            raise AssertionError(f"unexpected first line: {first!r}")
        self.url, self.port = match.group(1), int(match.group(2))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for _ in self.proc.stderr:
            pass

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.reader.join(timeout=5)
        self.stderr_reader.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("serve")
    server = ServeProcess(root / "a" / "b" / "store")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def serve_small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A server that refuses bodies over 10 bytes."""
    server = ServeProcess(tmp_path_factory.mktemp("serve_small"), "--max-body", "10")
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored(serve: ServeProcess, part: dict[str, Any]) -> Path:
    path = serve.directory / part["stored_as"]
    assert path.resolve().parent == serve.directory.resolve()
    return path


# --- post against poster-rs serve ---------------------------------------------------------------


def test_post_fields_and_files(serve: ServeProcess, payload: Any) -> None:
    text, _, big = payload.files
    result = run(
        "post",
        serve.url + "upload",
        "-F",
        "title=hello world",
        "-F",
        "count=42",
        "-F",
        f"file=@{text.path};type=text/plain;filename=x.txt",
        "-F",
        f"big=@{big.path}",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    parts = {p["name"]: p for p in reply["parts"]}
    assert [p["name"] for p in reply["parts"]] == ["title", "count", "file", "big"]
    assert parts["title"]["value"] == "hello world"
    assert parts["title"]["filename"] is None
    assert parts["count"]["value"] == "42"
    assert parts["title"]["sha256"] == sha256(b"hello world")
    assert parts["file"]["filename"] == "x.txt"
    assert parts["file"]["content_type"] == "text/plain"
    assert (parts["file"]["size"], parts["file"]["sha256"]) == (text.size, text.sha256)
    assert parts["big"]["filename"] == big.path.name
    assert (parts["big"]["size"], parts["big"]["sha256"]) == (big.size, big.sha256)
    assert big.size > 8 * MiB
    for name, expected in (("file", text), ("big", big)):
        path = stored(serve, parts[name])
        assert file_sha256(path) == expected.sha256
    assert stored(serve, parts["file"]).name.startswith("x")


def test_console_script(serve: ServeProcess, payload: Any) -> None:
    exe = shutil.which("poster-rs")
    if exe is None:
        pytest.skip("the poster-rs console script is not on PATH")
    small = payload.files[1]
    result = subprocess.run(
        [exe, "post", serve.url, "-F", "a=1", "-F", f"f=@{small.path}", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parts = json.loads(result.stdout)["parts"]
    assert [(p["name"], p.get("value")) for p in parts] == [("a", "1"), ("f", None)]
    assert parts[1]["sha256"] == small.sha256
    assert file_sha256(stored(serve, parts[1])) == small.sha256


def test_path_traversal_stays_inside_dir(serve: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "data.txt"
    source.write_bytes(b"payload")
    absolute = tmp_path / "abs_evil"
    names = [
        "../../evil",
        "..\\..\\evil_bs",
        str(absolute),
        "C:\\Windows\\evil_drive",
        "..",
        "sub/../../evil_mixed",
        "./.hidden/../../evil_dot",
    ]
    args = []
    for index, name in enumerate(names):
        args += ["-F", f"f{index}=@{source};filename={name}"]
    result = run("post", serve.url, *args, "--no-progress")
    assert result.returncode == 0, result.stderr
    parts = json.loads(result.stdout)["parts"]
    reported = [p["filename"] for p in parts]
    # serve keeps only the last component of a drive path (an old IE workaround), as
    # python-multipart and werkzeug do.
    assert reported == [n if not n.startswith("C:") else "evil_drive" for n in names]
    store = serve.directory.resolve()
    for part in parts:
        stored_as = part["stored_as"]
        assert "/" not in stored_as
        assert "\\" not in stored_as
        assert stored_as not in ("", ".", "..")
        path = (serve.directory / stored_as).resolve()
        assert path.parent == store
        assert path.read_bytes() == b"payload"
    assert not absolute.exists()
    # Nothing was written next to or above the store (the server's root is two levels up).
    root = store.parent.parent
    outside = [p for p in root.rglob("*") if p.is_file() and store not in p.parents]
    assert outside == []


def test_quoted_filename_option(serve: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "data.txt"
    source.write_bytes(b"quoted")
    result = run(
        "post", serve.url, "-F", f'f=@{source};filename="a;b.txt";type=text/x', "--no-progress"
    )
    assert result.returncode == 0, result.stderr
    (part,) = json.loads(result.stdout)["parts"]
    assert (part["filename"], part["content_type"]) == ("a;b.txt", "text/x")


def test_http_error_status_is_nonzero(serve_small: ServeProcess, payload: Any) -> None:
    result = run("post", serve_small.url, "-F", f"f=@{payload.files[1].path}", "--no-progress")
    assert result.returncode != 0
    assert result.returncode == 22  # as curl --fail
    assert "413" in result.stderr
    assert "error" in json.loads(result.stdout)
    assert "Traceback" not in result.stderr


def test_expect_continue_gets_413_quickly_with_the_response(
    serve_small: ServeProcess, zeros_file: Path
) -> None:
    result = run(
        "post", serve_small.url, "-F", f"f=@{zeros_file}", "--expect-continue", "--no-progress"
    )
    assert result.returncode == 22, result.stderr
    assert "Traceback" not in result.stderr
    assert "413" in result.stderr
    assert "error" in json.loads(result.stdout)


def test_expect_continue_gets_413_quickly(serve_small: ServeProcess, zeros_file: Path) -> None:
    started = time.monotonic()
    result = run(
        "post",
        serve_small.url,
        "-F",
        f"f=@{zeros_file}",
        "--expect-continue",
        "--no-progress",
        "--timeout",
        "10",
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 8  # the server answered before the body: no upload, no timeout


@pytest.fixture(scope="module")
def zeros_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zeros") / "zeros.bin"
    with open(path, "wb") as f:
        f.truncate(200 * MiB)
    return path


def test_connection_refused_is_nonzero() -> None:
    result = run("post", f"http://127.0.0.1:{closed_port()}/", "-F", "a=1", "--timeout", "5")
    assert result.returncode != 0
    assert result.returncode == 7  # as curl: could not connect
    assert "refused" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_missing_file_is_nonzero(serve: ServeProcess, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.bin"
    result = run("post", serve.url, "-F", f"f=@{missing}", "--no-progress")
    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- methods, headers: against a werkzeug server in this process --------------------------------


def test_put_and_extra_header(werkzeug_server: Any, small_payload: Any) -> None:
    args = []
    for name, value in small_payload.fields:
        args += ["-F", f"{name}={value}"]
    for part in small_payload.files:
        args += [
            "-F",
            f"{part.name}=@{part.path};type={part.content_type};filename={part.filename}",
        ]
    result = run(
        "post", werkzeug_server.url + "upload", *args, "-X", "PUT", "-H", "X-Test: 1", "-H",
        "X-Other:  two words ", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["method"] == "PUT"
    assert record["headers"]["x-test"] == "1"
    assert record["headers"]["x-other"] == "two words"
    check_upload(record, small_payload)
    assert record == werkzeug_server.requests[0]


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(params=["TLSv1.2", "TLSv1.3"])
def https_server(request: pytest.FixtureRequest, tls: Any) -> Iterator[WerkzeugServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("127.0.0.1").configure_cert(context)
    if request.param == "TLSv1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    with WerkzeugServer(ssl_context=context) as server:
        yield server


@pytest.mark.parametrize("option", ["--cacert", "--insecure"])
def test_https_cacert_and_insecure(
    https_server: WerkzeugServer, tls: Any, payload: Any, option: str
) -> None:
    extra = ["--cacert", str(tls.ca_file)] if option == "--cacert" else ["--insecure"]
    part = payload.files[2]  # 9 MiB: many chunks
    result = run(
        "post",
        https_server.url + "upload",
        "-F",
        "a=1",
        "-F",
        f"{part.name}=@{part.path};filename={part.filename}",
        *extra,
        "--timeout",
        "3",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["fields"] == [["a", "1"]]
    assert [f[4] for f in record["files"]] == [part.sha256]


def test_https_unknown_ca_is_refused(werkzeug_https_server: Any) -> None:
    result = run("post", werkzeug_https_server.url, "-F", "a=1", "--timeout", "5")
    assert result.returncode != 0
    assert "certificate" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert werkzeug_https_server.requests == []


# --- progress -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expect_bar"), [("--no-progress", False), (None, False), ("--progress", True)]
)
def test_progress_bar_only_when_asked_or_on_a_tty(
    serve: ServeProcess, payload: Any, flag: str | None, expect_bar: bool
) -> None:
    big = payload.files[2]
    args = ["post", serve.url, "-F", f"big=@{big.path}"]
    if flag is not None:
        args.append(flag)
    result = run(*args)  # stderr is a pipe, not a terminal
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parts"][0]["sha256"] == big.sha256
    if expect_bar:  # the positive control: the bar exists and would be seen
        assert "total" in result.stderr
        assert "100%" in result.stderr
    else:
        assert "\r" not in result.stderr
        assert result.stderr == ""


# --- demo ---------------------------------------------------------------------------------------


def test_demo(tmp_path: Path) -> None:
    result = run("demo", "--size", "4M", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Content-Type: multipart/form-data; boundary=" in out
    assert re.search(r"Content-Length: \d+", out)
    assert f"{4 * MiB:,}" in out
    lines = [line.strip() for line in out.splitlines()]
    for name in ("title", "note", "sample"):
        assert any(line.startswith(f"{name}:") and line.endswith("OK") for line in lines), out
    assert any(line.startswith("sample: file") and f"{4 * MiB:,} bytes" in line for line in lines)
    assert "MISMATCH" not in out
    assert re.search(r"[\d,.]+ MB/s", out)
    assert "All SHA-256 digests verified." in out
    assert "\r" not in result.stderr
    assert os.listdir(tmp_path) == []
