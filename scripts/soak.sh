#!/usr/bin/env bash
# The soak: the whole pipeline at 1,000 candles/s with 200 WebSocket clients and a steady REST
# load for MINUTES (default 60), every process's resident memory sampled; prints per 5-minute
# window the candles in, the streams' backlog, REST and WebSocket latency percentiles, memory
# and CPU, then each process's memory growth after the first window (target < 5 %).
# Usage: scripts/soak.sh [MINUTES]
# Environment: TRADEFLOW_BIN, a tradeflow binary already built (no release build; the smoke
# test passes its debug one); SOAK_WINDOW_S (300), SOAK_RATE (1000), SOAK_SYMBOLS (20),
# SOAK_WS_CLIENTS (200), SOAK_WS_EVENTS (10 a second), SOAK_REST_RPS (50), SOAK_JSON=FILE
# (the figures as JSON), SOAK_KEEP=1 (keep the working directory and its logs).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/release-bin.sh
. scripts/release-bin.sh
ulimit -n 65536 2>/dev/null || true
exec python3 scripts/soak.py "${1:-60}"
