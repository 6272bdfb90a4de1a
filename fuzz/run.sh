#!/usr/bin/env bash
# Fuzzes poster-core's round trip for a bounded time: fuzz/run.sh [SECONDS] (default 30).
#
# Works on stable Rust: the coverage instrumentation cargo-fuzz uses is stable, only the
# sanitizers are not, so the target runs with --sanitizer none (poster-core has no unsafe code).
# Installs cargo-fuzz when it is missing; if that is impossible, falls back to the stable harness
# (tests/smoke.rs: the same check over random inputs, without coverage guidance).
# Extra arguments after SECONDS go to libFuzzer (e.g. -jobs=2, -seed=1).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
shift || true
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [libFuzzer options...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz --locked)" >&2
  if ! cargo install cargo-fuzz --locked; then
    echo "cargo-fuzz could not be installed: running the stable harness instead" >&2
    # About 30,000 inputs a second on this machine's kind.
    POSTER_FUZZ_CASES=$((seconds * 30000)) POSTER_FUZZ_SEED="$(date +%s)" \
      exec cargo test --release --test smoke -- --nocapture
  fi
fi

mkdir -p corpus/roundtrip
exec cargo fuzz run roundtrip --sanitizer none corpus/roundtrip -- \
  -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 "$@"
