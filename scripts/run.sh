#!/usr/bin/env bash
# The run command: installs what tradeflow needs (scripts/setup.sh), then `tradeflow up`:
# a private redis-server under ./data (unless REDIS_URL is set) with every stream and group
# of streams.toml. Extra arguments go to `tradeflow up` (e.g. --once).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release -q -p tradeflow -- up "$@"
