"""``python -m benches``: run the benchmark suite."""

from .runner import main

raise SystemExit(main())
