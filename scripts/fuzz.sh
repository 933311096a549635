#!/usr/bin/env bash
# Fuzzes the parsers that take outside input (fuzz/, cargo-fuzz targets; docs/security.md,
# "Fuzzing"): TARGET for SECONDS (default 60), or every target in turn. Each target runs as one
# libFuzzer process (no -jobs/-workers), starting from its corpus fuzz/corpus/<target>/ (the
# committed seed-* files and what earlier runs added); a crash, timeout or out-of-memory input
# is written under fuzz/artifacts/<target>/ and stops that target.
# Prints per target: executions, executions per second, corpus size and findings; exits 1 when
# a target found something (or did not build), 2 on a usage error or a missing tool.
# Usage: scripts/fuzz.sh [TARGET] [SECONDS]
#   FUZZ_SANITIZER (default none; address for ASan, slower) and FUZZ_ARGS (more libFuzzer
#   options) tune a run. Needs a nightly toolchain and cargo-fuzz, which scripts/setup.sh
#   installs; this script installs nothing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
# Run from a cargo command (the smoke test under `cargo test`), the toolchain it names would
# win over `+nightly` in cargo-fuzz's own cargo calls.
unset CARGO RUSTC RUSTDOC RUSTUP_TOOLCHAIN

usage() {
  echo "usage: scripts/fuzz.sh [TARGET] [SECONDS]" >&2
  exit 2
}
[ $# -le 2 ] || usage
target=${1:-}
seconds=${2:-60}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: SECONDS must be a positive whole number, got '$seconds'" >&2; usage; }

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain (cargo-fuzz needs one): run scripts/setup.sh, or" \
    "rustup toolchain install nightly --profile minimal" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed: run scripts/setup.sh, or cargo install cargo-fuzz --locked" >&2
  exit 2
fi

mapfile -t all < <(cargo +nightly fuzz list)
if [ -n "$target" ]; then
  printf '%s\n' "${all[@]}" | grep -qx -- "$target" || {
    echo "fuzz: no target '$target'; the targets: ${all[*]}" >&2
    exit 2
  }
  targets=("$target")
else
  targets=("${all[@]}")
fi

sanitizer=${FUZZ_SANITIZER:-none}
mkdir -p logs
failed=0
for t in "${targets[@]}"; do
  # The edge's targets need the edge crate, which only they build (fuzz/Cargo.toml), in a
  # target directory of their own: the features it turns on in shared crates would otherwise
  # rebuild those for every switch between an edge target and another.
  features=()
  [[ "$t" == edge_* ]] && features=(--features edge --target-dir target/edge)
  # Debug assertions on (-a): an arithmetic overflow is a finding, as in a debug build.
  build=(cargo +nightly fuzz build -s "$sanitizer" -a "${features[@]}" "$t")
  if ! "${build[@]}" >"logs/$t.build.log" 2>&1; then
    echo "fuzz: $t: does not build (fuzz/logs/$t.build.log):" >&2
    tail -n 20 "logs/$t.build.log" >&2
    failed=1
    continue
  fi
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="logs/$t.log"
  started=$(date +%s)
  status=0
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
  cargo +nightly fuzz run -s "$sanitizer" -a "${features[@]}" "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_ARGS:-} \
    >"$log" 2>&1 || status=$?
  took=$(($(date +%s) - started))
  # libFuzzer's final statistics; the last status line when it stopped early.
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -nE 's/^#([0-9]+).*/\1/p' "$log" | tail -n 1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  [ -n "$rate" ] || rate=$(sed -nE 's/^#[0-9]+.*exec\/s: ([0-9]+).*/\1/p' "$log" | tail -n 1)
  corpus=$(find "corpus/$t" -type f | wc -l)
  findings=$(($(find "artifacts/$t" -type f | wc -l) - before))
  echo "fuzz: $t: ${runs:-0} executions in ${took} s (${rate:-0} exec/s), corpus ${corpus} inputs, ${findings} finding(s)"
  if [ "$findings" -gt 0 ] || [ "$status" -ne 0 ]; then
    failed=1
    echo "fuzz: $t: stopped with exit $status; the finding(s) and the log (fuzz/$log):" >&2
    find "artifacts/$t" -type f -newer "logs/$t.build.log" | sed 's|^|  fuzz/|' >&2
    grep -m 5 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/  /' >&2 || true
  fi
done
exit "$failed"
