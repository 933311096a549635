#!/usr/bin/env bash
# forust-ml against gbdt (gbdt-rs) on tradeflow's own features of a candle file (default the
# demo feed): `tradeflow bench models --features-csv` writes them, this program trains both on
# the first 60 % (binary next-bar labels; 200 trees of depth 6, learning rate 0.05) and tests on
# the last 20 %: training seconds, test accuracy, ns per one-row prediction.
# Usage: scripts/gbdt-compare/run.sh [candles.csv]. Figures and conclusion: docs/models.md.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
bin=${TRADEFLOW_BIN:-$root/target/release/tradeflow}
[ -x "$bin" ] || (cd "$root" && cargo build --release -q -p tradeflow)
features=$(mktemp)
trap 'rm -f "$features"' EXIT
"$bin" bench models --min-seconds 0.01 --iterations 10 --json --features-csv "$features" ${1:+--csv "$1"} >/dev/null
CARGO_TARGET_DIR=$root/target/gbdt-compare cargo build --release -q
"$root/target/gbdt-compare/release/gbdt-compare" "$features"
