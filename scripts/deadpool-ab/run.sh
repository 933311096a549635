#!/usr/bin/env bash
# deadpool-redis against what the bus does, interleaved A/B on a private redis-server (release
# build, its own target directory): (1) a reader's dedicated connection opened anew against one
# taken from a pool, each with its first XREAD; (2) 64 concurrent callers reading (XREVRANGE
# COUNT 20) through one multiplexed ConnectionManager against a pool of 8 and of 64.
# Usage: scripts/deadpool-ab/run.sh [rounds (3)]. Figures and conclusion: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
CARGO_TARGET_DIR=$root/target/deadpool-ab cargo build --release -q
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
redis=$!
trap 'kill "$redis" 2>/dev/null; wait "$redis" 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
REDIS_URL=redis://127.0.0.1:$port/ ROUNDS=${1:-3} "$root/target/deadpool-ab/release/deadpool-ab"
