"""``python -m benches.ship_memory``: memory of a shipping job fed by a generator of
1,000,000 paths (issue 13, item 1).

The generator yields the path of one small file a million times; ``ship_iter`` uploads to
``benches.server`` (another process) for ``--seconds`` and the RSS of this process is sampled
as results come in, with the time to the first result. A job that listed its paths first would
grow by the list (and start only after it); a lazy one stays flat. Prints one table.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .runner import discard_server


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--paths", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    from poster_rs import ship_iter

    with tempfile.TemporaryDirectory() as work, discard_server(args.seconds + 60) as url:
        path = Path(work) / "small.bin"
        path.write_bytes(b"x" * 4096)
        consumed = 0

        def paths() -> Iterator[str]:
            nonlocal consumed
            for _ in range(args.paths):
                consumed += 1
                yield str(path)

        before = rss_mib()
        started = time.perf_counter()
        samples: list[tuple[int, float, float]] = []
        first = None
        done = 0
        running = ship_iter(paths(), url + "/", workers=args.workers, progress=False)
        try:
            for result in running:
                done += 1
                if first is None:
                    first = time.perf_counter() - started
                if not result.ok:
                    raise SystemExit(f"failed: {result.error}")
                if done in (1, 1000) or done % 10_000 == 0:
                    samples.append((done, time.perf_counter() - started, rss_mib()))
                if time.perf_counter() - started > args.seconds:
                    break
        finally:
            running.close()
        samples.append((done, time.perf_counter() - started, rss_mib()))
    print(f"{args.paths:,} paths, {args.workers} workers; RSS before: {before:.1f} MiB")
    print(f"first result after {first:.3f} s; generator read {consumed:,} items for {done:,} done")
    print("| results | seconds | RSS MiB |")
    print("|---:|---:|---:|")
    for count, seconds, rss in samples:
        print(f"| {count:,} | {seconds:.1f} | {rss:.1f} |")


if __name__ == "__main__":
    main()
