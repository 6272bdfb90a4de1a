"""Aggregation (median, min-max, ratios), the markdown table, the targets and the chart."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from .cases import LIMIT_OF_MODE, Case
from .workloads import Workload

MODE_ORDER = {"encode": 0, "encode-cold": 1, "upload": 2, "length": 3}
KIND_ORDER = {"poster": 0, "peer": 1, "limit": 2}
#: Workloads measured in time (small payload, per-part overhead) rather than GB/s.
TIMED_WORKLOADS = {"fields100k", "meta10k"}


def build(
    plan: list[tuple[Case, str]],
    status: dict[tuple[str, str], dict[str, Any]],
    results: list[dict[str, Any]],
    workloads: dict[str, Workload],
    env: dict[str, Any],
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for case, name in plan:
        wl = workloads[name]
        row: dict[str, Any] = {
            "workload": name,
            "mode": case.mode,
            "case": case.name,
            "case_id": case.id,
            "kind": case.kind,
            "note": case.note,
            "payload": wl.payload,
        }
        first = status[case.id, name]
        mine = [r for r in results if r.get("case") == case.id and r.get("workload") == name]
        ok = [r for r in mine if r["status"] == "ok"]
        if first["status"] != "ok":
            row["status"] = first["status"]
            row["reason"] = first.get("reason")
        elif not ok:
            row["status"] = "fail"
            row["reason"] = next((r.get("reason") for r in mine), "no run")
        else:
            times = [r["seconds"] for r in ok]
            row.update(
                status="ok",
                runs=len(ok),
                failed_runs=len(mine) - len(ok),
                times=times,
                median=statistics.median(times),
                min=min(times),
                max=max(times),
                gbps=wl.payload / statistics.median(times) / 1e9,
                peak_rss_mib=max(r["peak_rss_mib"] for r in ok),
                delta_rss_mib=(
                    None
                    if any(r.get("delta_rss_mib") is None for r in ok)
                    else max(r["delta_rss_mib"] for r in ok)
                ),
                cpu_seconds=statistics.median(r["cpu_seconds"] for r in ok),
                minor_faults=statistics.median(r.get("minor_faults", 0) for r in ok),
            )
        rows.append(row)

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["workload"], row["mode"]), []).append(row)
    for (_, mode), members in groups.items():
        good = [r for r in members if r["status"] == "ok"]
        peers = [r for r in good if r["kind"] == "peer"]
        best = min(peers, key=lambda r: r["median"]) if peers else None
        limit_name = LIMIT_OF_MODE.get(mode)
        limit = next((r for r in good if r["case"] == limit_name), None)
        for r in good:
            r["best_peer"] = best["case"] if best else None
            r["x_best_peer"] = best["median"] / r["median"] if best else None
            r["limit"] = limit["case"] if limit else None
            r["x_limit"] = limit["median"] / r["median"] if limit else None
            r["is_best_peer"] = best is r
    rows.sort(
        key=lambda r: (
            list(workloads).index(r["workload"]),
            MODE_ORDER.get(r["mode"], 9),
            KIND_ORDER.get(r["kind"], 9),
            r.get("median", float("inf")),
        )
    )
    rep = {
        "env": env,
        "workloads": {n: {"label": w.label, "payload": w.payload} for n, w in workloads.items()},
        "rows": rows,
        "raw": results,
    }
    builds = sorted({r["poster_rs_build"] for r in results if r.get("poster_rs_build")})
    if len(builds) > 1:
        counts = {b: sum(r.get("poster_rs_build") == b for r in results) for b in builds}
        env["warning"] = (
            "poster_rs was reinstalled during the run; its timed runs used several builds "
            f"(size:mtime of the core -> runs): {counts}"
        )
    rep["targets"] = targets(rows)
    rep["server_check"] = server_check(rows)
    return rep


def _row(rows: list[dict[str, Any]], workload: str, mode: str, case: str) -> dict[str, Any] | None:
    for r in rows:
        if (r["workload"], r["mode"], r["case"]) == (workload, mode, case) and r["status"] == "ok":
            return r
    return None


def _ratio(rows: list[dict[str, Any]], workload: str, mode: str, mine: str, other: str) -> Any:
    a = _row(rows, workload, mode, mine)
    b = _row(rows, workload, mode, other)
    if a is None or b is None:
        return None
    return b["median"] / a["median"]


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets of issues 5 and 9, each as measured / wanted / met."""
    out: list[dict[str, Any]] = []

    def ratio_target(what: str, value: Any, want: float) -> None:
        out.append(
            {
                "target": what,
                "measured": None if value is None else f"{value:.2f}x",
                "wanted": f">= {want}x",
                "met": None if value is None else value >= want,
            }
        )

    for workload in ("big", "files1000"):
        ratio_target(
            f"encode {workload} vs httpx",
            _ratio(rows, workload, "encode", "poster_rs", "httpx"),
            1.0,
        )
        ratio_target(
            f"encode {workload} vs page-cache read (readinto, reused 1 MiB buffer)",
            _ratio(rows, workload, "encode", "poster_rs", "page-cache read"),
            0.9,
        )
    ratio_target(
        "encode fields100k (incl. multipart_encode) vs httpx",
        _ratio(rows, "fields100k", "encode", "poster_rs", "httpx"),
        10,
    )
    ratio_target(
        "encode fields100k via MultipartParam (built, encoded, iterated) vs httpx",
        _ratio(rows, "fields100k", "encode", "poster_rs MultipartParam", "httpx"),
        4,
    )
    ratio_target(
        "upload big via register_openers + urllib vs curl -F",
        _ratio(rows, "big", "upload", "poster_rs urllib", "curl -F"),
        1.5,
    )
    ratio_target(
        "upload big via register_openers + urllib vs loopback TCP (sendall 1 MiB)",
        _ratio(rows, "big", "upload", "poster_rs urllib", "sendall 1 MiB"),
        0.7,
    )
    ratio_target(
        "upload big via requests vs curl -F",
        _ratio(rows, "big", "upload", "poster_rs requests", "curl -F"),
        1.3,
    )
    ratio_target(
        "upload files1000 (own openers) vs curl -F",
        _ratio(rows, "files1000", "upload", "poster_rs urllib", "curl -F"),
        1.5,
    )
    for workload in ("big", "files1000"):
        mine = _row(rows, workload, "upload", "poster_rs urllib")
        curl = _row(rows, workload, "upload", "curl -F")
        out.append(
            {
                "target": f"client CPU per GiB uploaded, {workload}, own openers vs curl -F",
                "measured": (
                    None
                    if mine is None or curl is None
                    else f"{cpu_per_gib(mine):.3f} s vs {cpu_per_gib(curl):.3f} s"
                ),
                "wanted": "<= curl -F's",
                "met": (
                    None if mine is None or curl is None else cpu_per_gib(mine) <= cpu_per_gib(curl)
                ),
            }
        )
    deltas = [
        (r["delta_rss_mib"], f"{r['mode']}/{r['case']}")
        for r in rows
        if r["workload"] == "big"
        and r["kind"] == "poster"
        and r["status"] == "ok"
        and r.get("delta_rss_mib") is not None
    ]
    worst = max(deltas) if deltas else None
    out.append(
        {
            "target": "peak RSS growth streaming big, any poster_rs path",
            "measured": None if worst is None else f"{worst[0]:.1f} MiB ({worst[1]})",
            "wanted": "<= 16 MiB",
            "met": None if worst is None else worst[0] <= 16,
        }
    )
    meta = _row(rows, "meta10k", "length", "poster_rs get_headers")
    out.append(
        {
            "target": "Content-Length of 10,000 file parts (get_headers)",
            "measured": None if meta is None else f"{meta['median'] * 1e3:.1f} ms",
            "wanted": "< 20 ms",
            "met": None if meta is None else meta["median"] < 0.020,
        }
    )
    cb = _ratio(rows, "big", "encode", "poster_rs cb=", "poster_rs")
    out.append(
        {
            "target": "progress callback on, encode big (throughput cost)",
            "measured": None if cb is None else f"{(1 - cb) * 100:+.1f}%",
            "wanted": "< 5%",
            "met": None if cb is None else (1 - cb) < 0.05,
        }
    )
    return out


def cpu_per_gib(row: dict[str, Any]) -> float:
    """CPU seconds (user + system, of the case process and its children such as curl) per GiB
    of payload: on a real network the wire is the limit and this is the client's cost."""
    return float(row["cpu_seconds"]) / (row["payload"] / (1 << 30))


def server_check(rows: list[dict[str, Any]]) -> list[str]:
    """The discard server must outrun every client: compare the fastest raw-socket limit with
    the fastest client in each upload group."""
    lines = []
    for workload in ("big", "files1000"):
        ups = [
            r
            for r in rows
            if r["workload"] == workload and r["mode"] == "upload" and r["status"] == "ok"
        ]
        limits = [r for r in ups if r["kind"] == "limit"]
        clients = [r for r in ups if r["kind"] != "limit"]
        if not limits or not clients:
            continue
        lim = max(limits, key=lambda r: r["gbps"])
        cli = max(clients, key=lambda r: r["gbps"])
        verdict = "faster than" if lim["gbps"] > cli["gbps"] else "NOT faster than"
        lines.append(
            f"{workload}: the server absorbs {lim['gbps']:.2f} GB/s from `{lim['case']}`, "
            f"{verdict} the fastest client (`{cli['case']}`, {cli['gbps']:.2f} GB/s)"
        )
    return lines


def _t(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _x(value: Any) -> str:
    return "" if value is None else f"{value:.2f}x"


def _mib(value: Any) -> str:
    return "—" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _count(value: Any) -> str:
    if value is None:
        return ""
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}"


def markdown(rep: dict[str, Any]) -> str:
    env = rep["env"]
    v = env["versions"]
    lines = [
        "# poster_rs benchmark results",
        "",
        f"{env['date']} · Python {env['python']} · {env['cpus']} CPUs ({env['cpu']}) · "
        f"{env['scale']} sizes · median of {env['runs']} runs (min–max), cases interleaved, "
        f"each run in a fresh process · {env['elapsed_s']} s in all",
        "",
        "Versions: " + ", ".join(f"{k} {v[k]}" for k in v if v[k]) + f"; poster_rs core "
        f"{env.get('poster_rs_build')}.",
        "",
        *([f"**{env['warning']}**", ""] if env.get("warning") else []),
        "Workloads: "
        + "; ".join(
            f"{w['label']} ({w['payload'] / 1e9:.3f} GB payload)" for w in rep["workloads"].values()
        )
        + ".",
        "",
        f"## Targets (issues 5 and 9) on {env['cpu'] or 'an unknown CPU'}",
        "",
        "| target | measured | wanted | met |",
        "|---|---|---|---|",
    ]
    for t in rep["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['measured'] or 'n/a'} | {t['wanted']} | {met} |")
    lines += [
        "",
        f"## All cases ({env['cpu'] or 'unknown CPU'}, {env['cpus']} CPUs)",
        "",
        "GB/s = payload bytes (file data + field values) / median time, 10^9 bytes. "
        "x best peer = best peer's median time / this case's (> 1: faster than every peer); "
        "x limit = the limit's median time / this case's (encode: page-cache read; cold: disk "
        "read; upload: loopback `sendall` of 1 MiB). Peak RSS is the case process's VmHWM "
        "(for curl: curl's, sampled every 2 ms); ΔRSS is its growth over the RSS just before "
        "the timed part (the peak counter is reset through /proc/self/clear_refs). Faults: "
        "minor page faults of the case process during the timed part (median). Times "
        "include opening the files and building the encoder. CPU s/GiB: user + system CPU "
        "seconds of the case process (and of curl for the curl cases) per GiB of payload.",
        "",
        "| workload | mode | case | median | min–max | GB/s | x best peer | x limit "
        "| CPU s/GiB | peak RSS MiB | ΔRSS MiB | faults | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rep["rows"]:
        case = f"**{r['case']}**" if r["kind"] == "poster" else r["case"]
        if r["kind"] == "limit":
            case = f"*{r['case']}* (limit)"
        if r["status"] != "ok":
            lines.append(
                f"| {r['workload']} | {r['mode']} | {case} | {r['status']} |  |  |  |  |  |  "
                f"|  |  | {r.get('reason') or ''} |"
            )
            continue
        note = r["note"]
        if r.get("is_best_peer"):
            note = f"best peer; {note}" if note else "best peer"
        if r["failed_runs"]:
            note += f"; {r['failed_runs']} run(s) failed"
        gbps = "" if r["mode"] == "length" else f"{r['gbps']:.2f}"
        lines.append(
            f"| {r['workload']} | {r['mode']} | {case} | {_t(r['median'])} | "
            f"{_t(r['min'])}–{_t(r['max'])} | {gbps} | {_x(r.get('x_best_peer'))} | "
            f"{_x(r.get('x_limit'))} | {cpu_per_gib(r):.3f} | {_mib(r['peak_rss_mib'])} | "
            f"{_mib(r['delta_rss_mib'])} "
            f"| {_count(r.get('minor_faults'))} | {note} |"
        )
    if rep["server_check"]:
        lines += ["", "## Discard server check", ""]
        lines += [f"- {line}" for line in rep["server_check"]]
    lines.append("")
    return "\n".join(lines)


def chart(rep: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rep["rows"]:
        if r["status"] == "ok":
            groups.setdefault((r["workload"], r["mode"]), []).append(r)
    if not groups:
        return
    ncols = 2
    nrows = (len(groups) + ncols - 1) // ncols
    heights = [
        max(len(g) for g in list(groups.values())[i * ncols : (i + 1) * ncols])
        for i in range(nrows)
    ]
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(15, sum(0.32 * h + 1.2 for h in heights)),
        gridspec_kw={"height_ratios": [0.32 * h + 1.2 for h in heights]},
        squeeze=False,
    )
    colors = {"poster": "#e8710a", "peer": "#1a73e8", "limit": "#9aa0a6"}
    for ax, ((workload, mode), group) in zip(axes.flat, groups.items(), strict=False):
        by_time = workload in TIMED_WORKLOADS
        members = sorted(group, key=lambda r: r["median"], reverse=not by_time)
        labels = [r["case"] for r in members]
        if by_time:
            scale = 1e3
            values = [r["median"] * scale for r in members]
            lo = [(r["median"] - r["min"]) * scale for r in members]
            hi = [(r["max"] - r["median"]) * scale for r in members]
            ax.set_xlabel("time, ms (lower is better)")
        else:
            values = [r["gbps"] for r in members]
            lo = [r["gbps"] - r["payload"] / r["max"] / 1e9 for r in members]
            hi = [r["payload"] / r["min"] / 1e9 - r["gbps"] for r in members]
            ax.set_xlabel("GB/s (higher is better)")
        y = range(len(members))
        ax.barh(
            list(y),
            values,
            xerr=[lo, hi],
            color=[colors[r["kind"]] for r in members],
            hatch=None,
            capsize=2,
        )
        for i, (value, extra, r) in enumerate(zip(values, hi, members, strict=True)):
            text = f"{value:.1f} ms" if by_time else f"{value:.2f}"
            if r["kind"] == "limit":
                text += " (limit)"
            ax.text(value + extra, i, "  " + text, va="center", fontsize=7)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.set_title(f"{rep['workloads'][workload]['label']} — {mode}", fontsize=9)
        ax.margins(x=0.25)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"poster_rs (orange) vs peers (blue) and physical limits (grey); median of "
        f"{rep['env']['runs']} runs, bars min–max",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
