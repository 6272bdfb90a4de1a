"""Runs one case once, in a fresh process: ``python -m benches.child SPEC.json``.

SPEC holds the case id, the workload file, the server URL, ``verify`` and where to write the
result. The child prepares the case (untimed), resets its peak-RSS counter, times ``run`` and
writes ``{"status", "seconds", "peak_rss", "rss_before", ...}``. In the verification run the
body goes through python-multipart (encode) or the server parses it (upload), and the result
says what differs from the workload's expected parts.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from typing import Any

from .cases import CASES, Ctx, UnavailableError
from .verify import BodySink, boundary_of, compare, digest, summary
from .workloads import MiB, Workload, evict, warm


def _rss() -> int:
    """Current resident set size in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm() -> int:
    """Peak resident set size of this process image in bytes (VmHWM).

    Not ``ru_maxrss``: that one also holds the RSS of the image before ``exec``, i.e. of the
    orchestrator that forked this process, so every case would show at least its size."""
    return _status_kib(os.getpid(), "VmHWM") * 1024


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> bool:
    """Resets VmHWM (and so ru_maxrss) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _check(case: Any, wl: Workload, res: Any, sink: Any, verify: bool) -> str | None:
    """``None`` when the result is right; else what is wrong."""
    if case.kind == "limit":
        if res.nbytes <= 0:
            return "no bytes moved"
        if res.reply is not None and res.reply.get("received") != res.nbytes:
            return f"server received {res.reply.get('received')}, sent {res.nbytes}"
        return None
    if case.mode == "upload":
        reply = res.reply
        if reply is None:  # curl in a timed run: HTTP 200 was checked
            return None
        if "error" in reply:
            return f"server: {reply['error']}"
        if reply.get("content_length") is not None and int(reply["content_length"]) != reply.get(
            "received"
        ):
            return f"Content-Length {reply['content_length']} but {reply['received']} sent"
        if reply.get("received", 0) < wl.payload:
            return f"server received {reply.get('received')} < payload {wl.payload}"
        if verify:
            return compare(wl.expected_parts(), reply)
        return None
    # encode / length
    if verify:
        if res.declared is not None and res.declared != res.nbytes:
            return f"declared length {res.declared} but produced {res.nbytes} bytes"
        parts = sink.finish()
        if res.content_type is not None and boundary_of(res.content_type) != sink.boundary:
            return f"Content-Type {res.content_type!r} does not match the body's boundary"
        return compare(wl.expected_parts(), summary(parts, sink.received))
    if case.mode != "length" and res.nbytes < wl.payload:
        return f"produced {res.nbytes} bytes < payload {wl.payload}"
    return None


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    case = CASES[spec["case"]]
    wl = Workload.load(spec["workload"])
    verify = bool(spec["verify"])
    out: dict[str, Any] = {"case": case.id, "workload": wl.name, "verify": verify}
    with tempfile.TemporaryDirectory(prefix="poster-bench-") as tmpdir:
        ctx = Ctx(url=spec["url"], verify=verify, timeout=spec["timeout"], tmpdir=tmpdir)
        try:
            run = case.prepare(wl, ctx)
        except UnavailableError as exc:
            return {**out, "status": "n/a", "reason": str(exc)}
        except ImportError as exc:
            return {**out, "status": "n/a", "reason": f"import failed: {exc}"}
        if case.mode == "length":
            run(None)  # warm-up: lazy initialisation (mimetypes, imports inside libraries)
        if case.cold:
            evict(wl)
        sink = BodySink() if verify and case.mode != "upload" else None
        gc.collect()
        rss_before = _rss()
        reset = _reset_peak()
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu0 = time.process_time()
        started = time.perf_counter()
        try:
            res = run(sink)
        finally:
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
            peak = _hwm()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            if case.cold:
                warm(wl)  # the next cases expect the file in the page cache
    delta = peak - rss_before if reset else None
    if res.child_peak is not None:
        # the work happens in a tool process (curl): report its peak; it has no baseline
        peak, delta = res.child_peak, None
    problem = _check(case, wl, res, sink, verify)
    cpu += children.ru_utime + children.ru_stime
    out.update(
        status="ok" if problem is None else "fail",
        reason=problem,
        seconds=seconds,
        cpu_seconds=cpu,
        minor_faults=faults,
        nbytes=res.nbytes,
        declared=res.declared,
        payload=wl.payload,
        peak_rss_mib=peak / MiB,
        delta_rss_mib=None if delta is None else delta / MiB,
        rss_before_mib=rss_before / MiB,
    )
    core = sys.modules.get("poster_rs._poster_rs")
    if core is not None and getattr(core, "__file__", None):
        st = os.stat(core.__file__)
        out["poster_rs_build"] = f"{st.st_size}:{st.st_mtime_ns}"
    if verify and sink is not None and problem is None:
        out["digest"] = digest(wl.expected_parts())
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        spec = json.load(f)
    try:
        out = run_case(spec)
    except BaseException as exc:
        out = {
            "case": spec.get("case"),
            "status": "fail",
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
        }
    with open(spec["out"], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
