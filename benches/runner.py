"""The orchestrator: data, discard server, verification, interleaved timed runs, report."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from . import report
from .cases import CASES, Case
from .workloads import FULL, QUICK, WORKLOADS, DataDir, Workload, warm

REPO = Path(__file__).resolve().parent.parent
PACKAGES = (
    "poster-rs",
    "httpx",
    "requests",
    "requests-toolbelt",
    "aiohttp",
    "urllib3",
    "python-multipart",
    "matplotlib",
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benches",
        description="poster_rs benchmark suite: peers and physical limits, side by side.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (128 MiB big file, 100 files, 10,000 fields) and 3 runs: a smoke test",
    )
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    p.add_argument(
        "--modes", default="", help="only these modes (encode,encode-cold,upload,length)"
    )
    p.add_argument("--cases", default="", help="only cases whose name contains one of these")
    p.add_argument(
        "--runs", type=int, default=None, help="timed runs per case (default 5; 3 quick)"
    )
    p.add_argument("--out", default=str(REPO / "benches" / "results"), help="results directory")
    p.add_argument(
        "--data-dir",
        default=str(Path(tempfile.gettempdir()) / "poster_rs_bench"),
        help="where the random input files live (reused between runs)",
    )
    p.add_argument(
        "--timeout", type=float, default=None, help="seconds per case process (300; 60 quick)"
    )
    p.add_argument(
        "--pause",
        type=float,
        default=None,
        help="seconds of rest between case processes (0.2; 0.02 quick)",
    )
    p.add_argument("--seed", type=int, default=5, help="seed of the per-run case order")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    return p.parse_args(argv)


@contextlib.contextmanager
def discard_server(lifetime: float) -> Iterator[str]:
    """Starts ``benches.server`` in its own process and yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benches.server", "--lifetime", str(int(lifetime))],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the discard server did not start (got {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def run_child(spec: dict[str, Any], timeout: float, workdir: Path) -> dict[str, Any]:
    """Runs one case in a fresh interpreter; kills its whole process group on timeout."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    spec_path = workdir / f"spec-{tag}.json"
    out_path = workdir / f"out-{tag}.json"
    spec = {**spec, "out": str(out_path)}
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "benches.child", str(spec_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"case": spec["case"], "status": "fail", "reason": f"timed out after {timeout} s"}
    except BaseException:  # Ctrl-C: the child is in its own session and did not get it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        spec_path.unlink(missing_ok=True)
    try:
        result = json.loads(out_path.read_text())
    except (OSError, ValueError):
        tail = (stderr or stdout or "").strip().splitlines()[-3:]
        result = {
            "case": spec["case"],
            "status": "fail",
            "reason": f"child exited {proc.returncode}: {' | '.join(tail)}",
        }
    finally:
        out_path.unlink(missing_ok=True)
    return result


def poster_build() -> str | None:
    """SHA-256 (first 12 hex digits) of the installed compiled core, to notice a rebuild
    during a run."""
    try:
        import poster_rs._poster_rs as core
    except ImportError:
        return None
    digest = hashlib.sha256(Path(core.__file__).read_bytes()).hexdigest()[:12]
    return f"{Path(core.__file__).name} sha256:{digest}"


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    curl = shutil.which("curl")
    if curl:
        out = subprocess.run(
            [curl, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        versions["curl"] = out.stdout.split()[1] if out.stdout else "?"
    else:
        versions["curl"] = None
    cpu = ""
    with contextlib.suppress(OSError):
        info: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        # Virtual machines often report a bare "Intel(R) Xeon(R) Processor": the vendor,
        # family and model numbers tell the CPU generations apart.
        cpu = (
            f"{info.get('model name', '?')} ({info.get('vendor_id', '?')}, family "
            f"{info.get('cpu family', '?')} model {info.get('model', '?')})"
        )
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = QUICK if args.quick else FULL
    runs = args.runs or (3 if args.quick else 5)
    timeout = args.timeout or (60.0 if args.quick else 300.0)
    pause = args.pause if args.pause is not None else (0.02 if args.quick else 0.2)
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for name in names:
        if name not in WORKLOADS:
            log(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
            return 2
    modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    filters = [c.strip() for c in args.cases.split(",") if c.strip()]
    build_at_start = poster_build()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    log(f"data in {args.data_dir} ({'quick' if args.quick else 'full'} sizes)")
    data = DataDir(Path(args.data_dir), log=log)
    workloads: dict[str, Workload] = {}
    wl_files: dict[str, str] = {}
    for name in names:
        wl = data.build(name, scale)
        path = Path(args.data_dir) / f"workload-{name}-{'quick' if args.quick else 'full'}.json"
        wl.save(path)
        workloads[name] = wl
        wl_files[name] = str(path)
        log(f"  {wl.label}: warmed into the page cache in {warm(wl):.2f} s")

    plan: list[tuple[Case, str]] = []
    for name in names:
        for case in CASES.values():
            if name not in case.workloads:
                continue
            if modes and case.mode not in modes:
                continue
            if filters and not any(f in case.name for f in filters):
                continue
            plan.append((case, name))
    if not plan:
        log("no case selected")
        return 2
    if shutil.which("curl") is None:
        log("note: curl not found; the curl -F cases are reported as n/a (apt-get install curl)")

    results: list[dict[str, Any]] = []
    status: dict[tuple[str, str], dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="poster-bench-") as workdir,
        discard_server(lifetime=timeout * len(plan) * (runs + 1) + 600) as url,
    ):
        log(f"discard server at {url}; {len(plan)} cases x {runs} runs")

        def spec(case: Case, name: str, verify: bool) -> dict[str, Any]:
            return {
                "case": case.id,
                "workload": wl_files[name],
                "url": url,
                "verify": verify,
                "timeout": timeout,
            }

        log("verification (each encoder's output parsed once, before timing)")
        for case, name in plan:
            if case.kind == "limit":
                status[case.id, name] = {"status": "ok"}
                continue
            res = run_child(spec(case, name, True), timeout, Path(workdir))
            status[case.id, name] = res
            shown = res["status"] if res["status"] == "ok" else f"{res['status']}: {res['reason']}"
            log(f"  {name:10} {case.mode:11} {case.name:28} {shown}")
            if res["status"] == "fail" and res.get("traceback"):
                log("    " + res["traceback"].strip().replace("\n", "\n    "))

        timed = [(c, n) for c, n in plan if status[c.id, n]["status"] == "ok"]
        rng = random.Random(args.seed)
        for r in range(runs):
            # every run visits every case once, in a new order: no case always follows the
            # same neighbour (a 2 GiB process exiting, a cold read) or runs first
            order = rng.sample(timed, len(timed))
            log(f"run {r + 1}/{runs}")
            for case, name in order:
                time.sleep(pause)
                if not case.cold:
                    # Read again right before: a host may page out file pages read too rarely
                    # (this one's DAMON pageout scheme took 91 MiB of files1000 and 11 MiB of big
                    # in a few idle minutes), and a case that then reads from disk measures the
                    # disk, not the encoder.
                    warm(workloads[name])
                res = run_child(spec(case, name, False), timeout, Path(workdir))
                if case.cold and res["status"] != "ok":
                    warm(workloads[name])  # a killed cold case may have left it evicted
                res.update(run=r, workload=name, case=case.id)
                results.append(res)
                if res["status"] == "ok":
                    log(
                        f"  {name:10} {case.mode:11} {case.name:28} {_fmt(res['seconds']):>10}"
                        f"  {res['payload'] / res['seconds'] / 1e9:6.2f} GB/s"
                        f"  peak {res['peak_rss_mib']:7.1f} MiB"
                    )
                else:
                    log(f"  {name:10} {case.mode:11} {case.name:28} FAILED: {res['reason']}")

    env = environment()
    env["poster_rs_build"] = build_at_start
    if poster_build() != build_at_start:
        env["warning"] = "poster_rs was reinstalled during the run: its rows mix two builds"
        log(f"WARNING: {env['warning']}")
    env["scale"] = "quick" if args.quick else "full"
    env["runs"] = runs
    env["elapsed_s"] = round(time.monotonic() - started, 1)
    rep = report.build(plan, status, results, workloads, env)
    md = report.markdown(rep)
    (out_dir / "results.md").write_text(md)
    (out_dir / "results.json").write_text(json.dumps(rep, indent=1))
    if not args.no_chart:
        try:
            report.chart(rep, out_dir / "chart.png")
        except ImportError as exc:
            log(f"no chart: {exc}")
    print(md)
    log(f"wrote {out_dir / 'results.md'}, results.json, chart.png in {env['elapsed_s']} s")
    return 0
