"""``python -m benches.ship_bench``: shipping many files (issue 13), poster-rs against its peers.

Two workloads of random files, created once in the data directory: 10,000 files of 64 KiB and
100,000 files of 4 KiB (``--quick``: a tenth of each), uploaded 8 at a time to
``benches.server`` (a keep-alive discard server in another process, the same one for every
case):

- ``poster-rs ship (API)``: ``poster_rs.ship(paths, url, workers=8)`` in a fresh process, one
  request per file, timed around the call;
- ``poster-rs ship (API, batch 64)``: the same with ``batch=64`` (64 files per request, as
  repeated parts; results still per file);
- ``poster-rs ship (CLI)``, ``(CLI, --log)``, ``(CLI, --batch 64)``: ``poster-rs ship URL DIR
  -j 8 --no-progress`` (plus ``--log results.jsonl``, a fresh log each run, or ``--batch
  64``), wall time of the command (interpreter start and the directory walk included);
- ``poster-rs ship (Dask, 2 processes)``: ``ship(..., executor=client.get_executor())`` on a
  local Dask cluster of 2 worker processes (4 threads each), timed around the call (the
  cluster's start is not counted);
- ``curl -F (xargs -P 8)``: ``xargs -0 -P 8 -I{} curl -sS --fail -o /dev/null -F file=@{} URL``
  (n/a when curl is not installed);
- ``httpx AsyncClient (8 concurrent)``: 8 coroutines sharing one ``httpx.AsyncClient`` posting
  ``files={"file": (name, open file)}``;
- ``receiver ceiling``: what the server can take, shown beside the clients: 8 threads sending
  pre-built requests (one file, and 64 files, per request) over keep-alive connections with
  nothing else to do. Its files/s is a lower bound of the receiver's capacity; a client case
  near it is limited by the receiver, not by itself.

Before any timing, each case uploads a few files to the server's ``/verify`` path, which parses
the body and answers with each part's name, filename, size and SHA-256: a case whose bodies are
wrong is reported as such and not timed. Runs are interleaved (every case once per round, the
order rotating), and each table gives the median of ``--runs`` (>= 3) with the min–max, in
files/s and MB/s of file data (10^6 bytes), and each poster-rs case's ratio to the faster of
the two peers. Targets (issue 13): unbatched >= 3x the faster peer, batches of 64 >= 20x,
``--log`` within 15 % of the same run without it. Results go to ``ship.md`` (also printed)
and ``ship.json`` in ``--out``. ``--profile`` adds a cProfile of the ship worker path.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import cProfile
import hashlib
import importlib
import io
import json
import os
import platform
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .runner import discard_server

REPO = Path(__file__).resolve().parent.parent
#: name: (files, bytes per file); --quick divides the file counts by 10.
WORKLOADS = {"64k": (10_000, 64 << 10), "4k": (100_000, 4 << 10)}
VERIFY_FILES = 6
BATCH = 64
#: Issue 13's targets: ratio to the faster peer (unbatched, batched); --log against no log.
TARGET_UNBATCHED = 3.0
TARGET_BATCHED = 20.0
LOG_TOLERANCE = 0.15

API = "poster-rs ship (API)"
API_BATCH = f"poster-rs ship (API, batch {BATCH})"
CLI = "poster-rs ship (CLI)"
CLI_LOG = "poster-rs ship (CLI, --log)"
CLI_BATCH = f"poster-rs ship (CLI, --batch {BATCH})"
DASK = "poster-rs ship (Dask, 2 processes)"
CURL = "curl -F (xargs -P 8)"
HTTPX = "httpx AsyncClient (8 concurrent)"
CEILING = "receiver ceiling (1 file per request)"
CEILING_BATCH = f"receiver ceiling ({BATCH} files per request)"
CASES = (API, API_BATCH, CLI, CLI_LOG, CLI_BATCH, DASK, CURL, HTTPX, CEILING, CEILING_BATCH)
POSTER_CASES = (API, API_BATCH, CLI, CLI_LOG, CLI_BATCH, DASK)
BATCHED_CASES = (API_BATCH, CLI_BATCH)
PEERS = (CURL, HTTPX)
CEILINGS = (CEILING, CEILING_BATCH)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- data ---------------------------------------------------------------------------------------


def make_data(base: Path, count: int, size: int) -> tuple[Path, list[Path], dict[str, str]]:
    """``count`` random files of ``size`` bytes in ``base/ship_{count}x{size}/files`` (made once,
    reused while the manifest matches); returns the directory, the sorted paths and
    ``{name: sha256}``. Every file is read once so it sits in the page cache."""
    root = base / f"ship_{count}x{size}"
    files = root / "files"
    manifest_path = root / "manifest.json"
    manifest: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        manifest = json.loads(manifest_path.read_text())
    names = [f"f{i:05d}.bin" for i in range(count)]
    intact = (
        sorted(manifest) == names
        and files.is_dir()
        and sorted(os.listdir(files)) == names
        and all((files / n).stat().st_size == size for n in names)
    )
    if not intact:
        log(f"creating {count:,} random files of {size:,} bytes in {files} ...")
        shutil.rmtree(root, ignore_errors=True)
        files.mkdir(parents=True)
        manifest = {}
        for name in names:
            data = os.urandom(size)
            (files / name).write_bytes(data)
            manifest[name] = hashlib.sha256(data).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
    for name in names:  # warm the page cache
        with open(files / name, "rb") as f:
            while f.read(1 << 20):
                pass
    return files, [files / n for n in names], manifest


# --- the cases, each in its own process ---------------------------------------------------------


def _results_summary(results: list[Any], seconds: float) -> dict[str, Any]:
    failed = [f"{r.path}: {r.error}" for r in results if not r.ok]
    return {
        "seconds": seconds,
        "ok": len(results) - len(failed),
        "failed": failed[:5],
        "responses": [r.response for r in results[:VERIFY_FILES]],
    }


def _child_api(spec: dict[str, Any]) -> dict[str, Any]:
    from poster_rs import ship

    started = time.perf_counter()
    results = ship(
        spec["paths"], spec["url"], workers=spec["workers"], batch=spec.get("batch"),
        progress=False,
    )  # fmt: skip
    return _results_summary(results, time.perf_counter() - started)


def _child_dask(spec: dict[str, Any]) -> dict[str, Any]:
    from poster_rs import ship

    distributed: Any = importlib.import_module("distributed")  # untyped

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=spec["workers"] // 2 or 1, processes=True,
            host="127.0.0.1", dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        executor = client.get_executor()
        ship(spec["paths"][:20], spec["url"], executor=executor, progress=False)  # warm-up
        started = time.perf_counter()
        results = ship(spec["paths"], spec["url"], executor=executor, progress=False)
        return _results_summary(results, time.perf_counter() - started)


def _child_httpx(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    url, paths, workers = spec["url"], spec["paths"], spec["workers"]
    failed: list[str] = []
    responses: list[str] = []
    ok = 0

    async def main() -> None:
        nonlocal ok
        queue = list(reversed(paths))
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def worker() -> None:
                nonlocal ok
                while queue:
                    path = queue.pop()
                    with open(path, "rb") as f:
                        response = await client.post(
                            url, files={"file": (os.path.basename(path), f)}
                        )
                    if response.status_code == 200:
                        ok += 1
                        if len(responses) < VERIFY_FILES:
                            responses.append(response.text)
                    else:
                        failed.append(f"{path}: HTTP {response.status_code}")

            await asyncio.gather(*(worker() for _ in range(workers)))

    started = time.perf_counter()
    asyncio.run(main())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "ok": ok, "failed": failed, "responses": responses}


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[int, bytes]:
    """One response off a keep-alive connection: ``(status, body)``."""
    while b"\r\n\r\n" not in pending:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the receiver closed the connection")
        pending += data
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the receiver closed the connection")
        rest += data
    pending[:] = rest[length:]
    return int(lines[0].split()[1]), rest[:length]


def _child_ceiling(spec: dict[str, Any]) -> dict[str, Any]:
    """The receiver's ceiling: ``workers`` threads sending one pre-built request (``per``
    files) again and again over keep-alive connections, ``len(paths)`` files in all."""
    import urllib.parse

    from poster_rs import multipart_encode

    url = urllib.parse.urlsplit(spec["url"])
    paths, per = spec["paths"], spec["per"]
    stream, headers = multipart_encode([("file", Path(p)) for p in paths[:per]])
    with stream:
        body = b"".join(stream)
    head = f"POST {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    request = head.encode("latin-1") + body
    requests = -(-len(paths) // per)
    tickets = iter(range(requests))  # next() on a range iterator is atomic under the GIL
    responses: list[str] = []
    failed: list[str] = []

    def worker() -> None:
        with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending = bytearray()
            for _ in tickets:
                sock.sendall(request)
                status, reply = _read_response(sock, pending)
                if status != 200:
                    failed.append(f"HTTP {status}")
                elif len(responses) < VERIFY_FILES:
                    responses.append(reply.decode())

    threads = [threading.Thread(target=worker) for _ in range(spec["workers"])]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    ok = 0 if failed else len(paths)
    return {"seconds": seconds, "ok": ok, "failed": failed[:5], "responses": responses}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "api": _child_api,
    "dask": _child_dask,
    "httpx": _child_httpx,
    "ceiling": _child_ceiling,
}


def _run(args: list[str], timeout: float, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Runs a command in its own session; kills the whole group on timeout."""
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _child_spec(case: str, url: str, paths: list[Path], workers: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url, "workers": workers, "paths": [str(p) for p in paths]}
    if case in (API, API_BATCH):
        spec.update(case="api", batch=BATCH if case == API_BATCH else None)
    elif case == DASK:
        spec["case"] = "dask"
    elif case == HTTPX:
        spec["case"] = "httpx"
    else:
        spec.update(case="ceiling", per=BATCH if case == CEILING_BATCH else 1)
    return spec


def run_case(
    case: str,
    url: str,
    directory: Path,
    paths: list[Path],
    workers: int,
    timeout: float,
    *,
    check: bool = False,
) -> dict[str, Any]:
    """One timed run: ``{"seconds", "ok", "failed", "responses"}``; raises on a failed run.
    ``check``: a verification run of a few ``paths``, keeping the server's answers."""
    if case in (API, API_BATCH, DASK, HTTPX, CEILING, CEILING_BATCH):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(_child_spec(case, url, paths, workers), f)
        try:
            code, out, err = _run(
                [sys.executable, "-m", "benches.ship_bench", "--child", f.name], timeout
            )
        finally:
            os.unlink(f.name)
        if code != 0:
            raise RuntimeError(f"{case}: exit {code}: {err.strip()[-2000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    elif case in (CLI, CLI_LOG, CLI_BATCH):
        with tempfile.TemporaryDirectory() as work:
            log_path = Path(work) / "log.jsonl"
            command = [sys.executable, "-m", "poster_rs", "ship", url, str(directory)]
            command += ["-j", str(workers), "--no-progress"]
            if check:  # the listed files, not the whole directory; the answers from the log
                command[5:6] = [str(p) for p in paths]
            if check or case == CLI_LOG:
                command += ["--log", str(log_path)]
            if case == CLI_BATCH:
                command += ["--batch", str(BATCH)]
            started = time.perf_counter()
            code, out, err = _run(command, timeout)
            seconds = time.perf_counter() - started
            entries = []
            if log_path.exists():
                entries = [json.loads(line) for line in log_path.read_text().splitlines()]
        if code != 0:
            raise RuntimeError(f"{case}: exit {code}: {err.strip()[-2000:]}")
        last = out.strip().splitlines()[-1] if out.strip() else ""
        ok = int(last.split(" ok,", 1)[0]) if " ok," in last else 0
        if entries and sum(e["ok"] for e in entries) != ok:
            raise RuntimeError(f"{case}: the summary says {ok} ok, the log differs")
        result = {
            "seconds": seconds,
            "ok": ok,
            "failed": [e["path"] for e in entries if not e["ok"]][:5],
            "responses": [e["response"] for e in entries[:VERIFY_FILES]],
            "summary": last,
        }
    elif case == CURL:
        curl = shutil.which("curl")
        assert curl is not None
        command = ["xargs", "-0", "-P", str(workers), "-I{}"]
        command += [curl, "-sS", "--fail", "-o", "/dev/null", "-F", "file=@{}", url]
        listing = b"".join(os.fsencode(p) + b"\0" for p in paths)
        started = time.perf_counter()
        code, out, err = _run(command, timeout, stdin=listing)
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"{case}: exit {code}: {err.strip()[-2000:]}")
        result = {"seconds": seconds, "ok": len(paths), "failed": [], "responses": []}
        if check:  # one curl per file, answers kept
            for path in paths:
                code, out, err = _run([curl, "-sS", "--fail", "-F", f"file=@{path}", url], 60)
                if code != 0:
                    raise RuntimeError(f"{case}: exit {code}: {err.strip()}")
                result["responses"].append(out)
    else:
        raise ValueError(case)
    if result["ok"] != len(paths):
        raise RuntimeError(f"{case}: {result['ok']} of {len(paths)} ok; {result['failed']}")
    return result


def verify(
    case: str, url: str, directory: Path, paths: list[Path], sums: dict[str, str], size: int
) -> None:
    """Uploads the first files to ``/verify`` and checks what the server parsed: every file
    once, with its name, size and SHA-256 (a batch's parts checked by their digest)."""
    from .verify import Part, compare

    sample = paths[:VERIFY_FILES]
    if case == CEILING_BATCH:
        sample = paths[:BATCH]
    result = run_case(case, url + "verify", directory, sample, VERIFY_FILES, 120, check=True)
    replies = [json.loads(text) for text in dict.fromkeys(result["responses"])]
    if case in CEILINGS:
        replies = replies[:1]  # the same pre-built request every time
    seen: list[str] = []
    for reply in replies:
        if reply.get("count", 0) > 2:
            expected: list[Part] = [("file", p.name, size, sums[p.name]) for p in sample]
            problem = compare(expected, reply)
            if problem is not None:
                raise RuntimeError(f"{case}: {problem}")
            seen += [p.name for p in sample]
            continue
        for name, filename, length, digest in reply.get("head", []):
            if name != "file" or sums.get(filename) != digest or length != size:
                raise RuntimeError(f"{case}: wrong part {[name, filename, length, digest]}")
            seen.append(filename)
    want = sorted(p.name for p in sample[: 1 if case == CEILING else len(sample)])
    if sorted(seen) != want:
        raise RuntimeError(f"{case}: parts for {sorted(seen)}, sent {want}")


# --- profile --------------------------------------------------------------------------------------


class InlineExecutor(concurrent.futures.Executor):
    """Runs every job in the caller's thread at submit(), so cProfile sees the whole job path."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def profile(url: str, paths: list[Path], out: Path) -> str:
    """cProfile of ship() with jobs run inline (one at a time, in this thread)."""
    from poster_rs import ship

    sample = [str(p) for p in paths[:2000]]
    ship(sample[:50], url, executor=InlineExecutor(), progress=False)  # warm-up: connection
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    results = ship(sample, url, executor=InlineExecutor(), progress=False)
    profiler.disable()
    seconds = time.perf_counter() - started
    assert all(r.ok for r in results)
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(30)
    text = (
        f"ship() of {len(sample)} files run inline in one thread: {seconds:.2f} s "
        f"({len(sample) / seconds:,.0f} files/s under cProfile)\n\n{buffer.getvalue()}"
    )
    (out / "ship_profile.txt").write_text(text)
    return text


# --- report ---------------------------------------------------------------------------------------


def _fmt(values: list[float], digits: int = 0) -> str:
    med = statistics.median(values)
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def _verdicts(rows: dict[str, dict[str, Any]], best_peer: str | None) -> list[str]:
    out = []
    if best_peer is not None:
        for case in POSTER_CASES:
            if "ratio" not in rows.get(case, {}):
                continue
            target = TARGET_BATCHED if case in BATCHED_CASES else TARGET_UNBATCHED
            ratio = rows[case]["ratio"]
            met = "met" if ratio >= target else "MISSED"
            out.append(f"{case} {ratio:.2f}x (>= {target:g}x: {met})")
    if CLI in rows and CLI_LOG in rows:
        share = rows[CLI_LOG]["median_files_per_s"] / rows[CLI]["median_files_per_s"]
        met = "met" if share >= 1 - LOG_TOLERANCE else "MISSED"
        floor = 1 - LOG_TOLERANCE
        out.append(f"--log at {share:.0%} of the same run without it (>= {floor:.0%}: {met})")
    # Each ceiling against the clients that send as it does: one file, or 64, per request.
    for ceiling, label, batched in (
        (CEILING, "1 file per request", False),
        (CEILING_BATCH, f"{BATCH} files per request", True),
    ):
        clients = [
            rows[c]["median_files_per_s"]
            for c in rows
            if c not in CEILINGS and (c in BATCHED_CASES) == batched
        ]
        if ceiling not in rows or not clients:
            continue
        limit, fastest = rows[ceiling]["median_files_per_s"], max(clients)
        verdict = "faster than every client" if limit > fastest else "NOT faster than every client"
        out.append(f"receiver ceiling {limit:,.0f} files/s ({label}) vs {fastest:,.0f}: {verdict}")
    return out


def build_report(
    times: dict[str, list[float]],
    skipped: dict[str, str],
    count: int,
    size: int,
    workers: int,
    runs: int,
) -> tuple[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for case, seconds in times.items():
        if not seconds:
            continue
        rates = [count / s for s in seconds]
        rows[case] = {
            "seconds": seconds,
            "files_per_s": rates,
            "mb_per_s": [count * size / s / 1e6 for s in seconds],
            "median_files_per_s": statistics.median(rates),
        }
    peers = [c for c in PEERS if c in rows]
    best_peer = max(peers, key=lambda c: rows[c]["median_files_per_s"]) if peers else None
    lines = [
        f"## Shipping {count:,} files of {size // 1024} KiB, {workers} concurrent uploads",
        "",
        f"{_cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"poster-rs {_version('poster-rs')}, httpx {_version('httpx')}, {_curl_version()}; "
        "receiver: `benches/server.py` in another process (keep-alive, reads and discards "
        f"each body, answers 200). Median of {runs} runs (min–max); MB/s of file data (10^6 B).",
        "",
        "| case | files/s | MB/s | seconds | vs faster peer |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in CASES:
        if case in skipped:
            lines.append(f"| {case} | n/a | n/a | n/a | {skipped[case]} |")
            continue
        row = rows.get(case)
        if row is None:
            continue
        if best_peer is None:
            ratio = "n/a"
        elif case in POSTER_CASES or case in CEILINGS:
            row["ratio"] = row["median_files_per_s"] / rows[best_peer]["median_files_per_s"]
            ratio = f"**{row['ratio']:.2f}x**" if case in POSTER_CASES else f"{row['ratio']:.2f}x"
        else:
            ratio = "(faster peer)" if case == best_peer else ""
        lines.append(
            f"| {case} | {_fmt(row['files_per_s'])} | {_fmt(row['mb_per_s'], 1)} | "
            f"{_fmt(row['seconds'], 2)} | {ratio} |"
        )
    verdicts = _verdicts(rows, best_peer)
    if verdicts:
        lines += ["", f"Targets (faster peer: {best_peer}): " + "; ".join(verdicts) + "."]
    data = {
        "files": count,
        "size": size,
        "workers": workers,
        "runs": runs,
        "rows": rows,
        "skipped": skipped,
        "faster_peer": best_peer,
        "environment": {
            "python": sys.version,
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "poster-rs": _version("poster-rs"),
            "httpx": _version("httpx"),
            "curl": _curl_version(),
        },
    }
    return "\n".join(lines) + "\n", data


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "n/a"


def _curl_version() -> str:
    curl = shutil.which("curl")
    if curl is None:
        return "curl n/a"
    first = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False)
    return " ".join(first.stdout.split()[:2]) or "curl"


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benches.ship_bench",
        description="Shipping many files: poster-rs ship vs xargs+curl -F vs httpx AsyncClient.",
    )
    p.add_argument("--quick", action="store_true", help="a tenth of the files of each workload")
    p.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="64k, 4k or both (default: 64k,4k)"
    )
    p.add_argument("--files", type=int, help="number of files (overrides the workload's)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per case (>= 3; default 3)")
    p.add_argument("--workers", type=int, default=8, help="concurrent uploads (8)")
    p.add_argument("--cases", default="", help="only cases whose name contains one of these")
    p.add_argument("--out", default=str(REPO / "benches" / "results"), help="results directory")
    p.add_argument(
        "--data-dir",
        default=str(Path(tempfile.gettempdir()) / "poster_rs_bench"),
        help="where the random input files live (reused between runs)",
    )
    p.add_argument("--timeout", type=float, default=900, help="seconds per case run (900)")
    p.add_argument("--pause", type=float, default=0.5, help="rest between runs (0.5 s)")
    p.add_argument("--profile", action="store_true", help="also cProfile the ship worker path")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.runs < 3 and args.child is None:
        p.error("--runs must be at least 3 (the table reports a median)")
    unknown = set(args.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads {sorted(unknown)} (choose from {', '.join(WORKLOADS)})")
    return args


def _child(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    print(json.dumps(CHILDREN[spec["case"]](spec)))
    return 0


@contextlib.contextmanager
def _server() -> Iterator[str]:
    """``benches.server`` in another process; yields its URL, ending in ``/``."""
    with discard_server(4 * 3600) as base:
        yield base + "/"


def _unavailable(cases: list[str]) -> dict[str, str]:
    skipped = {}
    if CURL in cases and shutil.which("curl") is None:
        skipped[CURL] = "curl not installed (apt-get install curl)"
    if DASK in cases:
        try:
            metadata.version("distributed")
        except metadata.PackageNotFoundError:
            skipped[DASK] = "dask distributed not installed"
    return skipped


def run_workload(
    args: argparse.Namespace, url: str, count: int, size: int, cases: list[str]
) -> tuple[str, dict[str, Any]]:
    skipped = _unavailable(cases)
    directory, paths, sums = make_data(Path(args.data_dir), count, size)
    times: dict[str, list[float]] = {c: [] for c in cases if c not in skipped}
    for case in list(times):
        log(f"verifying {case} ...")
        try:
            verify(case, url, directory, paths, sums, size)
        except Exception as exc:
            log(f"  FAILED: {exc}")
            skipped[case] = f"wrong body: {exc}"[:200]
            del times[case]
    order = list(times)
    for run in range(args.runs):
        for case in order[run % len(order) :] + order[: run % len(order)]:
            time.sleep(args.pause)
            result = run_case(case, url, directory, paths, args.workers, args.timeout)
            times[case].append(result["seconds"])
            log(
                f"{count:,} x {size // 1024} KiB, run {run + 1}/{args.runs} {case}: "
                f"{result['seconds']:.2f} s, {count / result['seconds']:,.0f} files/s"
            )
    return build_report(times, skipped, count, size, args.workers, args.runs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return _child(args.child)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    cases = [c for c in CASES if not wanted or any(w in c for w in wanted)]
    tables: list[str] = []
    results: dict[str, Any] = {}
    with _server() as url:
        for name in args.workloads.split(","):
            count, size = WORKLOADS[name]
            count = args.files or (count // 10 if args.quick else count)
            table, data = run_workload(args, url, count, size, cases)
            tables.append(table)
            results[name] = data
        profile_text = None
        if args.profile:
            _, paths, _ = make_data(Path(args.data_dir), *WORKLOADS["64k"])
            profile_text = profile(url, paths, out)
    text = "\n".join(tables)
    (out / "ship.md").write_text(text)
    (out / "ship.json").write_text(json.dumps(results, indent=2))
    print(text)
    if profile_text is not None:
        print("\n".join(profile_text.splitlines()[:45]))
        print(f"(whole profile in {out / 'ship_profile.txt'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
