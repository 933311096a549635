#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/setup.sh), checks the alert rules
# (scripts/check-alerts.sh), runs every test of the workspace, then the stack test
# (scripts/stack-test.py: scripts/stack.sh up, the demo feed, every dashboard query through
# Prometheus, the stage alert) and the API contract check (scripts/api-contract.sh). Tests
# that need Redis start their own redis-server on a free loopback port. Arguments go to cargo
# test; with arguments (a filtered run) the stack test and the contract check are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The alert rules: promtool's checks and unit tests, each rule tested firing and quiet.
scripts/check-alerts.sh
cargo test --workspace --all-targets "$@"
if [ $# -eq 0 ]; then
  # The debug binary the tests above built (a no-op build), not a second release build.
  cargo build -q -p tradeflow
  TRADEFLOW_BIN="${CARGO_TARGET_DIR:-target}/debug/tradeflow" scripts/stack-test.py
  # The API contract: schemathesis over every operation of /openapi.json, 25 examples each.
  TRADEFLOW_BIN="${CARGO_TARGET_DIR:-target}/debug/tradeflow" scripts/api-contract.sh 25
fi
