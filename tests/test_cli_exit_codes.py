"""``poster-rs post``'s exit statuses (issue 10, client): the README's table and
``poster_rs._exitcodes`` agree, and every row has a case here that produces it, with one line on
stderr and no traceback. Also ``--max-time``: a server that drips its answer, or never reads the
body, is cut off at the deadline. Every server is on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import (
    MiB,
    RawServer,
    WerkzeugServer,
    http_response,
    read_head,
    recv_exactly,
    reset_close,
)
from poster_rs import _exitcodes as exitcodes

pytest_plugins = ["_fixtures"]  # servers, payloads, TLS

README = Path(__file__).resolve().parent.parent / "README.md"
CLI = [sys.executable, "-m", "poster_rs"]
RUN_TIMEOUT = 60
WAIT = 10.0


def run(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "post", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def assert_status(result: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("poster-rs: "), result.stderr
    for word in words:
        assert word.lower() in result.stderr.lower(), result.stderr


def readme_table() -> dict[int, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^\| (\d+) \| (.+) \|$", section, flags=re.MULTILINE)
    }


def test_readme_table_and_code_agree() -> None:
    table = readme_table()
    constants = {
        name: value
        for name, value in vars(exitcodes).items()
        if name.isupper() and isinstance(value, int)
    }
    assert set(table) == set(constants.values()), (sorted(table), sorted(constants.values()))
    assert table[0].startswith("success")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.txt"
    path.write_bytes(b"hello")
    return path


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    return path


def read_request(conn: socket.socket) -> None:
    """Reads one whole request with a Content-Length body."""
    head = read_head(conn)
    recv_exactly(conn, int(head.headers["content-length"]), head.rest)


# --- 0, 1, 2, 3 ---------------------------------------------------------------------------------


def test_0_success(werkzeug_server: WerkzeugServer) -> None:
    result = run(werkzeug_server.url + "upload", "-F", "a=1")
    assert result.returncode == exitcodes.OK, result.stderr
    assert '"fields": [["a", "1"]]' in result.stdout


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/upload", "file:///etc/passwd"])
def test_1_unsupported_protocol(url: str) -> None:
    assert_status(run(url, "-F", "a=1"), exitcodes.PROTOCOL, "unsupported protocol")


def test_1_https_to_http_redirect_is_refused(
    werkzeug_https_server: WerkzeugServer, werkzeug_server: WerkzeugServer, tls: Any
) -> None:
    target = werkzeug_server.url + "target"
    url = f"{werkzeug_https_server.url}redirect/307?to={target}"
    result = run(url, "-F", "a=1", "-H", "Authorization: Bearer x", "--cacert", str(tls.ca_file))
    assert_status(result, exitcodes.PROTOCOL, "307", "clear text")
    assert werkzeug_server.requests == []


@pytest.mark.parametrize(
    "args",
    [["-F", "no-equals-sign"], ["-F", "f=@"], ["-H", "no colon"], ["-F", "f=@x;bogus=1"]],
    ids=["form", "form-no-file", "header", "form-option"],
)
def test_2_usage(args: list[str]) -> None:
    assert_status(run(f"http://127.0.0.1:{closed_port()}/", *args), exitcodes.USAGE)


def test_2_header_value_that_cannot_be_sent(small_file: Path) -> None:
    result = run(f"http://127.0.0.1:{closed_port()}/", "-F", f"f=@{small_file};type=a\x01b")
    assert_status(result, exitcodes.USAGE, "content-type")


def test_2_unknown_option() -> None:
    result = run(f"http://127.0.0.1:{closed_port()}/", "--no-such-option")
    assert result.returncode == exitcodes.USAGE
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "http://[::1",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:port/",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/\x01",
        "127.0.0.1:8000/upload",
        "not a url",
    ],
)
def test_3_malformed_url(url: str) -> None:
    assert_status(run(url, "-F", "a=1"), exitcodes.URL_MALFORMED, "malformed URL")


# --- 6, 7, 8, 18, 22 ----------------------------------------------------------------------------


def test_6_unresolvable_host(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    # In this process, with the resolver replaced: no DNS query leaves the machine.
    from poster_rs import cli

    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    status = cli.main(["post", "http://no-such-host.invalid/", "-F", "a=1", "--no-progress"])
    err = capsys.readouterr().err
    assert status == exitcodes.RESOLVE, err
    assert "cannot resolve host 'no-such-host.invalid'" in err


def test_7_connection_refused() -> None:
    result = run(f"http://127.0.0.1:{closed_port()}/", "-F", "a=1", "--timeout", "5")
    assert_status(result, exitcodes.CONNECT, "refused")


def test_8_answer_is_not_http() -> None:
    def garbage(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(b"HELLO THERE\r\n\r\n")

    with RawServer(garbage) as raw:
        result = run(raw.url, "-F", "a=1", "--timeout", "5")
    assert_status(result, exitcodes.WEIRD_REPLY, "did not answer in HTTP")


def test_18_answer_shorter_than_announced() -> None:
    def short(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    with RawServer(short) as raw:
        result = run(raw.url, "-F", "a=1", "--timeout", "5")
    assert_status(result, exitcodes.PARTIAL, "ended early")


def test_22_http_error_prints_the_body() -> None:
    def not_found(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(http_response(404, "Not Found", b"no such upload place"))

    with RawServer(not_found) as raw:
        result = run(raw.url, "-F", "a=1", "--timeout", "5")
    assert_status(result, exitcodes.HTTP_ERROR, "HTTP 404")
    assert result.stdout == "no such upload place"


# --- 26: local files ----------------------------------------------------------------------------


def test_26_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    result = run(f"http://127.0.0.1:{closed_port()}/", "-F", f"f=@{missing}")
    assert_status(result, exitcodes.READ_ERROR, str(missing), "no such file")


def test_26_directory(tmp_path: Path) -> None:
    result = run(f"http://127.0.0.1:{closed_port()}/", "-F", f"f=@{tmp_path}")
    assert_status(result, exitcodes.READ_ERROR, str(tmp_path), "directory")


def test_26_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = run(f"http://127.0.0.1:{closed_port()}/", "-F", f"f=@{fifo}", timeout=20)
    assert_status(result, exitcodes.READ_ERROR, str(fifo), "FIFO")


def test_26_unreadable_for_root_without_capabilities(tmp_path_factory: Any) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    directory = Path(tmp_path_factory.mktemp("unreadable"))
    directory.chmod(0o755)
    secret = directory / "secret.txt"
    secret.write_bytes(b"top secret")
    secret.chmod(0o600)
    os.chown(secret, 65534, 65534)
    result = subprocess.run(
        [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *CLI,
            "post",
            f"http://127.0.0.1:{closed_port()}/",
            "-F",
            f"f=@{secret}",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if "setpriv:" in result.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {result.stderr.strip()}")
    # Refused before connecting: the port is closed, yet the status is 26, not 7.
    assert_status(result, exitcodes.READ_ERROR, str(secret), "permission denied")
    assert "cannot reach" not in result.stderr


def test_26_file_that_changes_size_while_sent(big_file: Path) -> None:
    got_head = threading.Event()
    truncated = threading.Event()

    def slow_reader(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        got_head.set()
        truncated.wait(WAIT)
        conn.settimeout(WAIT)
        while conn.recv(MiB):
            pass

    with RawServer(slow_reader) as raw:
        proc = subprocess.Popen(
            [*CLI, "post", raw.url, "-F", f"f=@{big_file}", "--no-progress", "--timeout", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert got_head.wait(WAIT), "the upload did not start"
            os.truncate(big_file, MiB)
            truncated.set()
            _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            truncated.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=WAIT)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
    assert_status(result, exitcodes.READ_ERROR, "changed size", str(big_file))
    assert "cannot reach" not in stderr


# --- 28: timeouts -------------------------------------------------------------------------------


def test_28_timeout_without_progress() -> None:
    def silent(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        server.stop_event.wait(WAIT)

    with RawServer(silent) as raw:
        result = run(raw.url, "-F", "a=1", "--timeout", "1")
    assert_status(result, exitcodes.TIMEOUT, "--timeout")


def drip(conn: socket.socket, server: RawServer) -> None:
    """Answers a byte every 0.2 s: never quiet long enough for a socket timeout."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    while not server.stop_event.wait(0.2):
        conn.sendall(b"x")


@pytest.mark.parametrize("where", ["answer", "body"])
def test_28_max_time_cuts_a_dripping_answer_or_a_stalled_body(where: str, big_file: Path) -> None:
    def stall(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)  # and never read the 64 MiB body
        server.stop_event.wait(WAIT)

    form = ["-F", "a=1"] if where == "answer" else ["-F", f"f=@{big_file}"]
    with RawServer(drip if where == "answer" else stall) as raw:
        started = time.monotonic()
        result = run(raw.url, *form, "--timeout", "3", "--max-time", "1.5")
        elapsed = time.monotonic() - started
    assert_status(result, exitcodes.TIMEOUT, "--max-time")
    assert result.stdout == ""
    # 1.5 s, plus the interpreter's start-up; without the deadline the drip lasts 200 s.
    assert elapsed < 1.5 + 5, elapsed


def test_28_max_time_cuts_a_dripping_answer_over_tls(tls: Any) -> None:
    # The cut shuts the TLS socket's plain socket down under the thread reading it.
    def tls_drip(conn: socket.socket, server: RawServer) -> None:
        with tls.server_context.wrap_socket(conn, server_side=True) as secure:
            drip(secure, server)

    with RawServer(tls_drip) as raw:
        url = raw.url.replace("http://", "https://")
        started = time.monotonic()
        result = run(url, "-F", "a=1", "--cacert", str(tls.ca_file), "--max-time", "1.5")
        elapsed = time.monotonic() - started
    assert_status(result, exitcodes.TIMEOUT, "--max-time")
    assert elapsed < 1.5 + 5, elapsed


def test_max_time_leaves_a_fast_upload_alone(werkzeug_server: WerkzeugServer) -> None:
    result = run(werkzeug_server.url + "upload", "-F", "a=1", "--max-time", "30")
    assert result.returncode == exitcodes.OK, result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_max_time_must_be_positive(value: str) -> None:
    result = run(f"http://127.0.0.1:{closed_port()}/", "-F", "a=1", "--max-time", value)
    assert result.returncode == exitcodes.USAGE
    assert "--max-time" in result.stderr


# --- 35, 47, 55, 56, 60 -------------------------------------------------------------------------


def test_35_tls_handshake_fails(werkzeug_server: WerkzeugServer) -> None:
    url = werkzeug_server.url.replace("http://", "https://")  # a plain-HTTP server
    assert_status(run(url, "-F", "a=1", "--timeout", "5"), exitcodes.TLS_CONNECT, "TLS")


def test_47_redirect_loop() -> None:
    def to_itself(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(http_response(307, "Temporary Redirect", b"", {"Location": "/again"}))

    with RawServer(to_itself) as raw:
        result = run(raw.url + "again", "-F", "a=1", "--timeout", "5")
    assert_status(result, exitcodes.TOO_MANY_REDIRECTS, "too many redirects")


def test_55_connection_reset_while_sending(big_file: Path) -> None:
    def reset_after_head(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        recv_exactly(conn, MiB)
        reset_close(conn)

    with RawServer(reset_after_head) as raw:
        result = run(raw.url, "-F", f"f=@{big_file}", "--timeout", "5")
    assert_status(result, exitcodes.SEND_ERROR, "while sending")


def test_56_connection_closed_without_an_answer() -> None:
    def hang_up(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)

    with RawServer(hang_up) as raw:
        result = run(raw.url, "-F", "a=1", "--timeout", "5")
    assert_status(result, exitcodes.RECV_ERROR, "while receiving")


def test_60_certificate_not_verified(werkzeug_https_server: WerkzeugServer) -> None:
    result = run(werkzeug_https_server.url, "-F", "a=1", "--timeout", "5")
    assert_status(result, exitcodes.PEER_CERTIFICATE, "certificate")
    assert werkzeug_https_server.requests == []


# --- 130 ----------------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[RawServer]:
    got_request = threading.Event()

    def silent(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        got_request.set()
        server.stop_event.wait(WAIT)

    with RawServer(silent) as raw:
        raw.seen.append(got_request)
        yield raw


def _interruptible() -> None:
    # A test run started in the background by a non-interactive shell inherits SIGINT ignored,
    # and a process that starts with SIGINT ignored rightly keeps ignoring it: the command is
    # tested as a terminal would run it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_130_interrupted(silent_server: RawServer) -> None:
    proc = subprocess.Popen(
        [*CLI, "post", silent_server.url, "-F", "a=1", "--no-progress", "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=_interruptible,  # noqa: PLW1509 - the child only resets one signal before exec
    )
    try:
        assert silent_server.seen[0].wait(WAIT), "the request did not arrive"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
    assert proc.returncode == exitcodes.INTERRUPTED, stderr
    assert "Traceback" not in stderr
