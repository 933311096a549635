#!/usr/bin/env bash
# The chaos run: the demo feed looped to CANDLES candles (default 1,000,000) over many symbols,
# once cleanly (`tradeflow up`) and once through a fleet (3 processes of every stage, 2 audit
# writers, an ingest worker) whose workers are SIGKILLed at random every 2-5 s and restarted,
# with its redis-server SIGKILLed and restarted twice; then the audit stores are compared:
# every candle, signal and decision (with one symbol, every order, rejection, fill, position and
# balance too) present once in both, each account's balance the fold of its fills, no dead
# letters. Prints the kills, the times, what was lost and what was extra (target 0 and 0); exits
# 1 otherwise. CHAOS_CLUSTER=1 runs the fleet on a Redis Cluster (scripts/redis-cluster.sh) and
# kills masters instead, their replicas taking over, and counts the duplicate stream entries.
# See scripts/chaos.py for the details and its environment (CHAOS_SYMBOLS, CHAOS_KILL_EVERY,
# CHAOS_REDIS_KILLS, CHAOS_COPIES, CHAOS_SEED, CHAOS_JSON, CHAOS_KEEP, CHAOS_CLUSTER,
# CHAOS_WAIT_REPLICAS, CHAOS_COUNT_ENTRIES).
# Usage: scripts/chaos.sh [CANDLES]
# Environment: TRADEFLOW_BIN, a tradeflow binary already built (else a release build is made).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/release-bin.sh
. scripts/release-bin.sh
exec python3 scripts/chaos.py "${1:-1000000}"
