"""``python -m dummyserver``: the recording, fault-injecting upload server as a process, with
``poster-rs serve``'s first line (``Serving on URL (...)``) and per-part lines."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from poster_rs.cli import parse_size

from .upload import FaultPlan, RecordingUploadServer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dummyserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir")
    parser.add_argument("--max-body", type=parse_size)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fail this fraction")
    parser.add_argument("--fail-seed", type=int)
    args = parser.parse_args(argv)
    faults = FaultPlan(rate=args.fail_rate, seed=args.fail_seed) if args.fail_rate else None
    server = RecordingUploadServer(
        args.host, args.port, args.dir, max_body=args.max_body, faults=faults, print_parts=True
    )
    print(f"Serving on {server.url} (test server, faults {args.fail_rate:g})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
