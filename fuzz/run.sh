#!/usr/bin/env bash
# Fuzz each hand-written reader for a bounded time (default 60 s each) and print a summary.
#   bash fuzz/run.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 lets it
# pass its -Z flags. Not part of every CI run: findings are fixed and kept as unit tests.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
export RUSTC_BOOTSTRAP=1
for t in csv_scanner json_template timestamp; do
  mkdir -p "corpus/$t"
  echo "== $t ($secs s)"
  cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -max_len=4096 2>&1 \
    | grep -E "^#[0-9]+.*(DONE|pulse)|Done [0-9]+ runs|ERROR|panicked|SUMMARY" | tail -3
done
