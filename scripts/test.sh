#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/setup.sh), then runs every test of
# the workspace, after the alert rules' checks (scripts/check-alerts.sh). Tests that need Redis start their own redis-server on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The alert rules: promtool's checks and unit tests, each rule tested firing and quiet.
scripts/check-alerts.sh
cargo test --workspace --all-targets "$@"
