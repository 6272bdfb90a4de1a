"""``python -m benches.ship_bench``: shipping many files (issue 6), poster-rs against its peers.

10,000 files of 64 KiB (``--quick``: 1,000) of random data, created once in the data directory,
are uploaded one request per file, 8 at a time, to ``benches.server`` (a keep-alive discard
server in another process, the same one for every case):

- ``poster-rs ship (API)``: ``poster_rs.ship(paths, url, workers=8)`` in a fresh process, timed
  around the call;
- ``poster-rs ship (CLI)``: ``poster-rs ship URL DIR -j 8 --no-progress``, wall time of the
  command (interpreter start and the directory walk included);
- ``poster-rs ship (CLI, --log)``: the same with ``--log results.jsonl`` (a fresh log each run):
  one JSON line appended and fsynced per file, on the thread that dispatches the jobs;
- ``curl -F (xargs -P 8)``: ``xargs -0 -P 8 -I{} curl -sS --fail -o /dev/null -F file=@{} URL``
  with Debian's curl, wall time (n/a when curl is not installed);
- ``httpx AsyncClient (8 concurrent)``: 8 coroutines sharing one ``httpx.AsyncClient`` (8
  keep-alive connections) posting ``files={"file": (name, open file)}``, timed around
  ``asyncio.run``.

Before any timing, each case uploads a few files to the server's ``/verify`` path, which parses
the body and answers with each part's name, filename, size and SHA-256: a case whose bodies are
wrong is reported as such and not timed. Runs are interleaved (every case once per round, the
order rotating), and the table gives the median of ``--runs`` (>= 3) with the min–max, in
files/s and MB/s of file data (10^6 bytes), and the ratio of each poster-rs case to the faster
of the two peers (target: >= 2x). Results go to ``ship.md`` (also printed) and ``ship.json`` in
``--out``. ``--profile`` adds a cProfile of the ship worker path (``ship_profile.txt``).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .runner import discard_server

REPO = Path(__file__).resolve().parent.parent
FULL_FILES = 10_000
QUICK_FILES = 1_000
FILE_SIZE = 64 << 10
VERIFY_FILES = 6
TARGET = 2.0

API = "poster-rs ship (API)"
CLI = "poster-rs ship (CLI)"
CLI_LOG = "poster-rs ship (CLI, --log)"
CURL = "curl -F (xargs -P 8)"
HTTPX = "httpx AsyncClient (8 concurrent)"
CASES = (API, CLI, CLI_LOG, CURL, HTTPX)
POSTER_CASES = (API, CLI, CLI_LOG)
PEERS = (CURL, HTTPX)


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


def _child_api(url: str, paths: list[str], workers: int) -> dict[str, Any]:
    from poster_rs import ship

    started = time.perf_counter()
    results = ship(paths, url, workers=workers, progress=False)
    seconds = time.perf_counter() - started
    failed = [f"{r.path}: {r.error}" for r in results if not r.ok]
    return {
        "seconds": seconds,
        "ok": len(results) - len(failed),
        "failed": failed[:5],
        "responses": [r.response for r in results[:VERIFY_FILES]],
    }


def _child_httpx(url: str, paths: list[str], workers: int) -> dict[str, Any]:
    import httpx

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
    return {"seconds": seconds, "ok": ok, "failed": failed[:5], "responses": responses}


CHILDREN: dict[str, Callable[[str, list[str], int], dict[str, Any]]] = {
    "api": _child_api,
    "httpx": _child_httpx,
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
    if case in (API, HTTPX):
        spec = {"case": "api" if case == API else "httpx", "url": url, "workers": workers}
        spec["paths"] = [str(p) for p in paths]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
        try:
            code, out, err = _run(
                [sys.executable, "-m", "benches.ship_bench", "--child", f.name], timeout
            )
        finally:
            os.unlink(f.name)
        if code != 0:
            raise RuntimeError(f"{case}: exit {code}: {err.strip()[-2000:]}")
        result = json.loads(out.strip().splitlines()[-1])
    elif case in (CLI, CLI_LOG):
        with tempfile.TemporaryDirectory() as work:
            log_path = Path(work) / "log.jsonl"
            command = [sys.executable, "-m", "poster_rs", "ship", url, str(directory)]
            command += ["-j", str(workers), "--no-progress"]
            if check:  # the listed files, not the whole directory; the answers from the log
                command[5:6] = [str(p) for p in paths]
            if check or case == CLI_LOG:
                command += ["--log", str(log_path)]
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
    """Uploads the first files to ``/verify`` and checks what the server parsed."""
    sample = paths[:VERIFY_FILES]
    result = run_case(case, url + "verify", directory, sample, VERIFY_FILES, 120, check=True)
    if len(result["responses"]) != len(sample):
        raise RuntimeError(f"{case}: {len(result['responses'])} answers for {len(sample)} files")
    seen = set()
    for text in result["responses"]:
        reply = json.loads(text)
        if reply.get("count") != 1:
            raise RuntimeError(f"{case}: the server parsed {reply}")
        name, filename, length, digest = reply["head"][0]
        if name != "file" or filename not in sums or length != size or digest != sums[filename]:
            raise RuntimeError(f"{case}: wrong part {reply['head'][0]}")
        seen.add(filename)
    if seen != {p.name for p in sample}:
        raise RuntimeError(f"{case}: parts for {sorted(seen)}, sent {[p.name for p in sample]}")


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
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"poster-rs {_version('poster-rs')}, httpx {_version('httpx')}, {_curl_version()}; "
        "server: `benches/server.py` in another process (keep-alive, reads and discards each "
        f"body, answers 200). Median of {runs} runs (min–max); MB/s of file data (10^6 B).",
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
        elif case in POSTER_CASES:
            row["ratio"] = row["median_files_per_s"] / rows[best_peer]["median_files_per_s"]
            ratio = f"**{row['ratio']:.2f}x**"
        else:
            ratio = "(faster peer)" if case == best_peer else ""
        lines.append(
            f"| {case} | {_fmt(row['files_per_s'])} | {_fmt(row['mb_per_s'], 1)} | "
            f"{_fmt(row['seconds'], 2)} | {ratio} |"
        )
    verdicts = []
    if best_peer is not None:
        for case in POSTER_CASES:
            if "ratio" in rows.get(case, {}):
                ratio = rows[case]["ratio"]
                met = "met" if ratio >= TARGET else "MISSED"
                verdicts.append(f"{case} {ratio:.2f}x ({met})")
        lines += [
            "",
            f"Target: >= {TARGET:g}x the faster peer ({best_peer}): " + "; ".join(verdicts) + ".",
        ]
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
            "cpus": os.cpu_count(),
            "poster-rs": _version("poster-rs"),
            "httpx": _version("httpx"),
            "curl": _curl_version(),
        },
    }
    return "\n".join(lines) + "\n", data


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
    p.add_argument("--quick", action="store_true", help=f"{QUICK_FILES:,} files, not 10,000")
    p.add_argument("--files", type=int, help="number of files (overrides --quick)")
    p.add_argument("--size", type=int, default=FILE_SIZE, help="bytes per file (65536)")
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
    return args


def _child(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    result = CHILDREN[spec["case"]](spec["url"], spec["paths"], spec["workers"])
    print(json.dumps(result))
    return 0


@contextlib.contextmanager
def _server() -> Iterator[str]:
    """``benches.server`` in another process; yields its URL, ending in ``/``."""
    with discard_server(4 * 3600) as base:
        yield base + "/"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return _child(args.child)
    count = args.files or (QUICK_FILES if args.quick else FULL_FILES)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    cases = [c for c in CASES if not wanted or any(w in c for w in wanted)]
    skipped: dict[str, str] = {}
    if CURL in cases and shutil.which("curl") is None:
        skipped[CURL] = "curl not installed (apt-get install curl)"
    directory, paths, sums = make_data(Path(args.data_dir), count, args.size)
    times: dict[str, list[float]] = {c: [] for c in cases if c not in skipped}
    with _server() as url:
        for case in list(times):
            log(f"verifying {case} ...")
            try:
                verify(case, url, directory, paths, sums, args.size)
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
                    f"run {run + 1}/{args.runs} {case}: {result['seconds']:.2f} s, "
                    f"{count / result['seconds']:,.0f} files/s"
                )
        profile_text = profile(url, paths, out) if args.profile else None
    table, data = build_report(times, skipped, count, args.size, args.workers, args.runs)
    (out / "ship.md").write_text(table)
    (out / "ship.json").write_text(json.dumps(data, indent=2))
    print(table)
    if profile_text is not None:
        print("\n".join(profile_text.splitlines()[:45]))
        print(f"(whole profile in {out / 'ship_profile.txt'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
