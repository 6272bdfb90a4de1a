"""The shipping job's promises of issue 10, against real servers on 127.0.0.1:

- the results log survives any cut (ASCII-only lines; a line cut inside a character of an older
  UTF-8 log is skipped), is locked against a second run sharing it, and is strict about what
  counts as done;
- local errors (a file that shrank mid-upload, an unreadable file object, a directory, a file the
  kernel refuses to root without CAP_DAC_OVERRIDE) are reported after one attempt, never retried
  as network errors;
- ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` are honoured (absolute-form and CONNECT, with
  proxy credentials);
- ``deadline=`` / ``--max-time`` cut an attempt off however slowly the server drips.

Every wait is bounded (``bounded``, subprocess timeouts, servers' own limits).
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import io
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
import trustme
from _servers import WerkzeugServer
from _ship_helpers import assert_exactly_once, bounded, make_files
from _ship_servers import DripServer, ForwardProxy, TruncatingServer
from poster_rs import MultipartParam, RetryPolicy, UploadJob, ship, ship_iter
from poster_rs.ship import read_done, read_log

# The test server: poster-rs serve with a log of what it received (dummyserver/).
from dummyserver import RecordingUploadServer as UploadServer

CLI = [sys.executable, "-m", "poster_rs"]
TIMEOUT = 20.0
NO_DELAY = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def upload_server() -> Iterator[UploadServer]:
    # Not storing files: today's server refuses to store some non-ASCII names (issue 10).
    with UploadServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def unicode_server() -> Iterator[WerkzeugServer]:
    """werkzeug decodes UTF-8 file names (today's ``poster-rs serve`` refuses some, issue 10)."""
    with WerkzeugServer() as server:
        yield server


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def non_ascii_files(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    names = ["résumé.txt", "日本語.txt", "😀.bin", "plain.txt", "naïve café.txt"]
    out = {}
    for index, name in enumerate(names):
        path = directory / name
        path.write_bytes(f"file {index}: {name}\n".encode() * 20)
        out[str(path)] = name
    return out


# --- the results log --------------------------------------------------------------------------


def test_log_lines_are_ascii_and_resume_after_any_cut(
    tmp_path: Path, unicode_server: WerkzeugServer
) -> None:
    files = non_ascii_files(tmp_path / "src")
    paths = sorted(files)
    log = tmp_path / "log.jsonl"
    first = bounded(ship, paths, unicode_server.url, log=log, workers=2, progress=False)
    assert all(r.ok for r in first)
    data = log.read_bytes()
    assert data.isascii()
    lines = data.splitlines(keepends=True)
    assert len(lines) == len(paths)
    assert {json.loads(line)["path"] for line in lines} == set(paths)  # names kept, escaped
    # Cut the log after the second line at every byte of the third (short of its closing
    # brace): two jobs stay done.
    for cut in range(len(lines[2]) - 1):
        log.write_bytes(b"".join(lines[:2]) + lines[2][:cut])
        assert len(read_done(log)) == 2


def test_old_utf8_log_cut_inside_a_character_does_not_stop_the_next_run(
    tmp_path: Path, unicode_server: WerkzeugServer
) -> None:
    """Logs written before lines were ASCII-only held raw UTF-8: a kill inside a character
    made every later run fail with UnicodeDecodeError."""
    files = non_ascii_files(tmp_path / "src")
    paths = sorted(files)
    log = tmp_path / "log.jsonl"
    bounded(ship, paths[:2], unicode_server.url, log=log, workers=1, progress=False)
    entries = [json.loads(line) for line in log.read_bytes().splitlines()]
    # Rewrite them as the old version did, then cut a third entry inside a multi-byte character.
    old = [json.dumps(e, ensure_ascii=False).encode("utf-8") + b"\n" for e in entries]
    cut_entry = json.dumps({**entries[0], "key": "k-日本語", "path": "日本語"}, ensure_ascii=False)
    raw = cut_entry.encode("utf-8")
    inside = raw.index("本".encode()) + 1  # one byte into a three-byte character
    log.write_bytes(b"".join(old) + raw[:inside])
    with pytest.raises(UnicodeDecodeError):
        log.read_text(encoding="utf-8")
    assert read_done(log) == {e["key"] for e in entries}
    count = len(unicode_server.requests)
    second = bounded(ship, paths, unicode_server.url, log=log, workers=2, progress=False)
    assert sum(r.skipped for r in second) == 2
    assert all(r.ok for r in second)
    assert len(unicode_server.requests) == count + len(paths) - 2
    assert len(read_done(log)) == len(paths)


@pytest.mark.parametrize(
    "entry",
    [
        {"ok": "no", "status": 200},
        {"ok": "yes", "status": 200},
        {"ok": 1, "status": 200},
        {"ok": True, "status": 500},
        {"ok": True, "status": "200"},
        {"ok": True, "status": True},
        {"ok": None},
        {},
    ],
    ids=repr,
)
def test_log_fields_are_strict(
    tmp_path: Path, upload_server: UploadServer, entry: dict[str, Any]
) -> None:
    (path,) = make_files(tmp_path / "src", 1, seed=1)
    log = tmp_path / "log.jsonl"
    bounded(ship, [path], upload_server.url, log=log, progress=False)
    (key,) = read_done(log)
    log.write_text(json.dumps({"key": key, **entry}) + "\n", encoding="ascii")
    assert read_done(log) == set()
    (result,) = bounded(ship, [path], upload_server.url, log=log, progress=False)
    assert result.ok
    assert not result.skipped  # sent again: the entry did not prove it was done
    assert upload_server.received_count == 2


def test_a_later_failure_of_the_same_key_undoes_done(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"key": "a", "ok": true, "status": 200}\n'
        '{"key": "b", "ok": true, "status": 201}\n'
        '{"key": "a", "ok": false, "status": 503}\n'
        '{"key": "c", "ok": true}\n',
        encoding="ascii",
    )
    assert read_done(log) == {"b", "c"}
    assert read_log(log)["a"]["ok"] is False
    assert read_done(tmp_path / "missing.jsonl") == set()


def test_second_run_sharing_the_log_is_refused(tmp_path: Path, upload_server: UploadServer) -> None:
    expected = make_files(tmp_path / "src", 40, seed=40)
    paths = sorted(expected)
    log = tmp_path / "log.jsonl"
    running = ship_iter(paths, upload_server.url, log=log, workers=1, progress=False)
    try:
        first = bounded(next, running)  # the first run now holds the log
        assert first.ok
        count = upload_server.received_count
        with pytest.raises(BlockingIOError, match="in use by another run") as caught:
            bounded(ship, paths, upload_server.url, log=log, progress=False)
        assert caught.value.filename == str(log)
        # The refused run sent nothing (the first one may have finished a request meanwhile).
        assert upload_server.received_count <= count + 4
        rest = bounded(list, running)
    finally:
        running.close()
    assert len(rest) == len(paths) - 1
    assert_exactly_once(upload_server.received, expected)
    # Once the first run ended, the log is free again.
    again = bounded(ship, paths, upload_server.url, log=log, progress=False)
    assert all(r.skipped for r in again)


def test_log_lock_ends_with_the_run_even_with_forked_workers_alive(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    """Process-pool workers forked during a run share the log's open file and so its lock;
    they drop it at once, so the next run with the same (still running) pool may take it."""
    import concurrent.futures
    import multiprocessing

    expected = make_files(tmp_path / "src", 6, seed=6)
    log = tmp_path / "log.jsonl"
    context = multiprocessing.get_context("fork")
    with (
        warnings.catch_warnings(),  # 3.12+ warns that forking a threaded process is risky
        concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool,
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        first = bounded(ship, sorted(expected), upload_server.url, executor=pool, log=log,
                        progress=False)  # fmt: skip
        assert all(r.ok for r in first)
        second = bounded(ship, sorted(expected), upload_server.url, executor=pool, log=log,
                         progress=False)  # fmt: skip
        assert all(r.skipped for r in second)
        # The workers are still alive, and the log's lines are intact (they wrote nothing).
        assert pool.submit(os.getpid).result(timeout=10) != os.getpid()
    assert len(read_done(log)) == 6
    assert len(log.read_bytes().splitlines()) == 6


def test_cli_refuses_a_log_locked_by_another_process(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    make_files(tmp_path / "src", 3, seed=3)
    log = tmp_path / "log.jsonl"
    with open(log, "ab") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            [*CLI, "ship", upload_server.url, str(tmp_path / "src"), "--log", str(log)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert "in use by another run" in result.stderr
    assert str(log) in result.stderr
    assert "Traceback" not in result.stderr
    assert upload_server.received_count == 0


def test_cli_log_that_cannot_be_opened_is_a_clear_error(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    make_files(tmp_path / "src", 2, seed=2)
    log = tmp_path / "no such dir" / "log.jsonl"
    result = subprocess.run(
        [*CLI, "ship", upload_server.url, str(tmp_path / "src"), "--log", str(log)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "results log" in result.stderr
    assert "Traceback" not in result.stderr
    assert upload_server.received_count == 0


# --- local errors are not network errors ---------------------------------------------------------


def test_file_shrinking_mid_upload_is_not_retried(tmp_path: Path) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(os.urandom(16 << 20))
    with TruncatingServer(victim, keep=1 << 20) as server:
        (result,) = bounded(
            ship, [str(victim)], server.url, retries=5, timeout=TIMEOUT, progress=False
        )
        requests = server.requests
    assert not result.ok
    assert result.attempts == 1
    assert (result.error or "").startswith("FileChangedError"), result.error
    assert requests == 1


class _DeniedAfter(io.RawIOBase):
    """A file object the kernel stops serving after a few reads (as NFS root squash or an ACL
    does): ``PermissionError`` with errno EACCES and no file name."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        if self.reads > 2:
            raise PermissionError(errno.EACCES, "Permission denied")
        view = memoryview(buffer).cast("B")
        view[:1000] = b"x" * 1000
        return 1000


def test_permission_error_mid_upload_is_not_retried(upload_server: UploadServer) -> None:
    denied = cast(BinaryIO, _DeniedAfter())
    param = MultipartParam("file", filename="denied.bin", fileobj=denied, filesize=1 << 20)
    job = UploadJob(upload_server.url, form=[param], key="denied")
    (result,) = bounded(ship, [job], retries=5, timeout=TIMEOUT, progress=False)
    assert not result.ok
    assert result.attempts == 1
    assert (result.error or "").startswith("PermissionError"), result.error
    assert upload_server.received_count == 0


def test_directory_and_missing_file_are_not_retried(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    (tmp_path / "a dir").mkdir()
    results = bounded(
        ship, [str(tmp_path / "a dir"), str(tmp_path / "missing.bin")], upload_server.url,
        retries=5, progress=False,
    )  # fmt: skip
    errors = sorted((r.error or "").split(":")[0] for r in results)
    assert errors == ["FileNotFoundError", "IsADirectoryError"]
    assert all(r.attempts == 1 and not r.ok for r in results)
    assert upload_server.received_count == 0


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to drop CAP_DAC_OVERRIDE",
)
def test_unreadable_file_for_root_without_dac_override(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    """Mode bits say nothing to root, the kernel does: without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH a mode-000 file cannot be opened. Reported once, never retried."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "readable.txt").write_text("fine")
    locked = src / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    log = tmp_path / "log.jsonl"
    drop = "-dac_override,-dac_read_search"
    result = subprocess.run(
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *CLI, "ship",
         upload_server.url, str(src), "--log", str(log), "--retries", "5"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    entries = {Path(e["path"]).name: e for e in read_log(log).values()}
    assert entries["readable.txt"]["ok"] is True
    denied = entries["locked.txt"]
    assert denied["ok"] is False
    assert denied["attempts"] == 1
    assert denied["error"].startswith("PermissionError"), denied["error"]
    assert upload_server.received_count == 1


# --- proxies from the environment ---------------------------------------------------------------


def test_http_proxy_from_the_environment(
    tmp_path: Path, upload_server: UploadServer, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None
) -> None:
    expected = make_files(tmp_path / "src", 6, seed=6)
    with ForwardProxy(credentials=("proxy user", "p@ss:word")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        results = bounded(
            ship, sorted(expected), upload_server.url + "up?x=1", workers=2, progress=False
        )
        assert all(r.ok for r in results), [r.error for r in results]
        assert proxy.refused == 0
        assert sorted(proxy.seen) == [("POST", upload_server.url + "up?x=1")] * 6
        assert_exactly_once(upload_server.received, expected)

        # NO_PROXY: straight to the server, the proxy sees nothing more.
        monkeypatch.setenv("NO_PROXY", "example.org, 127.0.0.1")
        results = bounded(ship, sorted(expected), upload_server.url, progress=False)
        assert all(r.ok for r in results)
        assert len(proxy.seen) == 6
        monkeypatch.delenv("NO_PROXY")

        # proxies={} turns the environment's proxy off.
        results = bounded(ship, sorted(expected), upload_server.url, proxies={}, progress=False)
        assert all(r.ok for r in results)
        assert len(proxy.seen) == 6
        assert upload_server.received_count == 18


def test_proxy_credentials_refused_is_a_failure_not_a_hang(
    tmp_path: Path, upload_server: UploadServer, no_proxy_env: None
) -> None:
    (path,) = make_files(tmp_path / "src", 1, seed=7)
    with ForwardProxy(credentials=("u", "right")) as proxy:
        wrong = proxy.url.replace(":right@", ":wrong@")
        (result,) = bounded(
            ship, [path], upload_server.url, proxies={"http": wrong}, retry=NO_DELAY,
            progress=False,
        )  # fmt: skip
    assert (result.ok, result.status, result.attempts) == (False, 407, 1)
    assert upload_server.received_count == 0


def test_https_through_a_connect_tunnel_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    expected = make_files(tmp_path / "src", 4, seed=443)
    with (
        WerkzeugServer(ssl_context=server_context) as server,
        ForwardProxy(credentials=("tunnel", "secret")) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        results = bounded(
            ship, sorted(expected), server.url, workers=2, verify=str(ca_file), progress=False,
            timeout=TIMEOUT,
        )  # fmt: skip
        assert all(r.ok for r in results), [r.error for r in results]
        host_port = server.url.removeprefix("https://").rstrip("/")
        assert proxy.seen
        assert all(seen == ("CONNECT", host_port) for seen in proxy.seen)
        names = sorted(f[1] for r in server.requests for f in r["files"])
    assert names == sorted(os.path.basename(p) for p in expected)


def test_cli_ship_honours_http_proxy(
    tmp_path: Path, upload_server: UploadServer, no_proxy_env: None
) -> None:
    make_files(tmp_path / "src", 3, seed=8)
    with ForwardProxy() as proxy:
        env = {**os.environ, "HTTP_PROXY": proxy.url}
        result = subprocess.run(
            [*CLI, "ship", upload_server.url, str(tmp_path / "src")],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
            env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert len(proxy.seen) == 3
    assert upload_server.received_count == 3


def test_proxy_bypass_rules() -> None:
    from poster_rs._ship_transport import _bypasses_proxy

    assert _bypasses_proxy("127.0.0.1", 80, "*")
    assert _bypasses_proxy("api.example.org", 443, "example.org")
    assert _bypasses_proxy("api.example.org", 443, ".example.org")
    assert _bypasses_proxy("example.org", 443, "other, example.org:443")
    assert not _bypasses_proxy("example.org", 80, "example.org:443")
    assert not _bypasses_proxy("notexample.org", 80, "example.org")
    assert not _bypasses_proxy("127.0.0.1", 80, "")


def test_unsupported_proxy_scheme_is_a_clear_error(tmp_path: Path) -> None:
    (path,) = make_files(tmp_path / "src", 1, seed=9)
    (result,) = bounded(
        ship, [path], "http://127.0.0.1:9/", proxies={"http": "socks5://127.0.0.1:1080"},
        progress=False,
    )  # fmt: skip
    assert not result.ok
    assert result.attempts == 1
    assert "unsupported proxy" in (result.error or "")


# --- the per-attempt deadline ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drip", "stall"])
def test_deadline_cuts_off_a_dripping_or_stalling_server(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(64 << 20)  # larger than the socket buffers: a stalled reader blocks the send
    policy = RetryPolicy(retries=1, base_delay=0.01, max_delay=0.01)
    with DripServer(mode, interval=0.2) as server:
        started = time.monotonic()
        (result,) = bounded(
            ship, [str(path)], server.url, timeout=10, deadline=1.0, retry=policy,
            progress=False, limit=30,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert not result.ok
    assert result.attempts == 2
    assert "deadline of 1 s exceeded" in (result.error or "")
    assert 2.0 <= elapsed < 5.0  # two attempts of 1 s each; the socket timeout (10 s) never hit


def test_deadline_leaves_fast_uploads_alone(tmp_path: Path, upload_server: UploadServer) -> None:
    expected = make_files(tmp_path / "src", 50, seed=50)
    results = bounded(
        ship, sorted(expected), upload_server.url, deadline=5.0, workers=4, progress=False
    )
    assert all(r.ok and r.attempts == 1 for r in results)
    assert_exactly_once(upload_server.received, expected)


def test_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="deadline"):
        ship(["x"], "http://127.0.0.1:9/", deadline=0)


def test_cli_max_time(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    with DripServer("drip", interval=0.5) as server:
        started = time.monotonic()
        result = subprocess.run(
            [*CLI, "ship", server.url, str(src), "--max-time", "1", "--retries", "0",
             "--timeout", "20"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "deadline of 1 s exceeded" in result.stderr
    assert elapsed < 10


def test_watchdog_fires_once_on_time_and_never_after_cancel() -> None:
    import threading

    from poster_rs import _watchdog

    fired = threading.Event()
    started = time.monotonic()
    alarm = _watchdog.schedule(0.2, fired.set)
    assert fired.wait(5)
    assert 0.15 <= time.monotonic() - started < 2
    assert alarm.expired
    calls: list[int] = []
    cancelled = [_watchdog.schedule(0.05, lambda: calls.append(1)) for _ in range(600)]
    for each in cancelled:
        each.cancel()
    time.sleep(0.3)
    assert calls == []
    assert not any(each.expired for each in cancelled)
    # Cancelled alarms do not pile up in the heap.
    timer = _watchdog._timer
    assert timer is not None
    assert len(timer.heap) < 300


def test_forked_child_starts_with_fresh_pools_timer_and_limiters(
    tmp_path: Path, upload_server: UploadServer
) -> None:
    """After fork, a child neither sends on its parent's pooled sockets nor waits on a timer
    thread or a lock that exists only in the parent: it ships with a deadline and a rate cap."""
    import multiprocessing

    from poster_rs import _ship_transport, _watchdog

    (path,) = make_files(tmp_path / "src", 1, seed=1)
    # The parent's own thread-local pool holds a connection to the server now.
    # In this thread (bounded by the socket timeout and the deadline), not in bounded()'s.
    (result,) = ship([path], upload_server.url, executor=_Inline(), progress=False,
                     timeout=TIMEOUT, deadline=TIMEOUT)  # fmt: skip
    assert result.ok
    assert _ship_transport.thread_pool().connections
    _watchdog.schedule(60, lambda: None).cancel()  # the parent's timer thread exists

    context = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        process = context.Process(target=_ship_in_child, args=(path, upload_server.url))
        process.start()
    process.join(30)
    assert process.exitcode == 0
    assert upload_server.received_count == 2


class _Inline(concurrent.futures.Executor):
    """Runs each job in the calling thread (so its connection pool is this thread's)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _ship_in_child(path: str, url: str) -> None:
    from poster_rs import _ship_transport

    if _ship_transport.thread_pool().connections:
        os._exit(3)
    (result,) = ship([path], url, executor=_Inline(), deadline=10, limit_rate=1 << 20,
                     progress=False)  # fmt: skip
    os._exit(0 if result.ok else 4)
