#!/usr/bin/env bash
# The run command: installs what tradeflow needs (scripts/setup.sh), then `tradeflow up`:
# a private redis-server under ./data (unless REDIS_URL is set), every stream and group of
# streams.toml, and the pipeline over the bundled demo candles. Extra arguments go to
# `tradeflow up` (e.g. --exit-when-drained).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# TRADEFLOW_BIN: a tradeflow binary already built (the smoke tests pass theirs), no release build.
[ -z "${TRADEFLOW_BIN:-}" ] || exec "$TRADEFLOW_BIN" up "$@"
exec cargo run --release -q -p tradeflow -- up "$@"
