#!/usr/bin/env bash
# The edge's benchmarks (release build), each client a second process on loopback:
#   1. wrk: GET /api/v1/trading/status and /api/v1/market/prices while the pipeline idles
#      (after `tradeflow up` has run the demo feed through every stage);
#   2. `tradeflow bench ws`: WebSocket fan-out to N clients at a steady event rate.
# Usage: scripts/bench-edge.sh [wrk seconds (15)] [ws clients (1000)] [ws events/s (1000)] [ws seconds (10)]
# Environment: TRADEFLOW_BIN, a tradeflow binary already built (no release build; the smoke
# test passes its debug one); BENCH_EDGE_CANDLES=N, only the demo feed's first N candles.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
clients=${2:-1000}
rate=${3:-1000}
ws_secs=${4:-10}
scripts/setup.sh >/dev/null
if [ -n "${TRADEFLOW_BIN:-}" ]; then
  bin=$TRADEFLOW_BIN
else
  cargo build --release -q -p tradeflow
  bin=$PWD/target/release/tradeflow
fi
dir=$(mktemp -d)
log=$dir/up.log
up="" ws="" sampler=""
# Everything this script started goes with it, whichever way it ends.
cleanup() {
  for pid in $sampler $ws $up; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
replay=()
if [ -n "${BENCH_EDGE_CANDLES:-}" ]; then
  head -n "$((BENCH_EDGE_CANDLES + 1))" demo/btcusd_1h.csv >"$dir/candles.csv"
  replay=(--replay "BTCUSD=$dir/candles.csv")
fi
# Limits high enough not to be what is measured; the queue deep enough for a fan-out burst.
cat >"$dir/tradeflow.toml" <<TOML
[edge]
[edge.rate_limit]
read_per_minute = 100000000
[edge.ws]
client_queue = 1024
max_clients = 20000
TOML
ulimit -n 65536 2>/dev/null || true
TRADEFLOW_ADMIN_PASSWORD=bench-admin TRADEFLOW_JWT_SECRET=bench-secret-0123456789abcdef0123456789 \
  "$bin" --config "$dir/tradeflow.toml" up --data-dir "$dir" --listen 127.0.0.1:0 "${replay[@]}" >"$log" 2>&1 &
up=$!
for _ in $(seq 600); do grep -q '^edge: http' "$log" && grep -q '^ingest:' "$log" && break; sleep 0.2; done
base=$(sed -n 's|^edge: \(http://[^/]*\)/api/v1.*|\1|p' "$log")
redis=$(sed -n 's|^embedded redis-server on \(redis://[^ ]*\) .*|\1|p' "$log")
[ -n "$base" ] && [ -n "$redis" ] || { cat "$log"; echo "bench-edge: tradeflow up did not start" >&2; exit 1; }
# Idle: wait until the pipeline has drained the demo feed.
deadline=$((SECONDS + 1800))
until REDIS_URL=$redis "$bin" streams health --json | python3 -c '
import json, sys
h = json.load(sys.stdin)
sys.exit(0 if all((g.get("lag") or 0) == 0 and g["pending"] == 0 for s in h for p in s["partitions"] for g in p["groups"]
        if g["group"] not in ("monitor", "control") and not (s["stream"] == "exec.fills" and g["group"] == "risk")) else 1)' 2>/dev/null
do
  [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$log"; echo "bench-edge: the pipeline did not drain" >&2; exit 1; }
  sleep 1
done
token=$(curl -s -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-admin"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
echo "== pipeline idle; edge at $base"
for route in /api/v1/trading/status /api/v1/market/prices; do
  echo "== wrk -t2 -c64 -d${secs}s $route"
  curl -s -o /dev/null -w "status %{http_code}\n" -H "Authorization: Bearer $token" "$base$route"
  wrk -t2 -c64 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base$route"
done
echo "== tradeflow bench ws: $clients clients, $rate events/s"
REDIS_URL=$redis "$bin" bench ws --url "${base/http:/ws:}" --token "$token" --clients "$clients" --rate "$rate" --seconds "$ws_secs" &
ws=$!
# CPU of the edge's process and of the load generator, 6-10 s into the run (the clients take
# 2 s to connect): only runs long enough to be inside the fan-out then have the sample.
if [ "$ws_secs" -ge 8 ]; then
  ( sleep 6; for pid in "$up" "$ws"; do
      a=$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null) || continue; sleep 2
      b=$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null) || continue
      echo "cpu of $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-60)): $(( (b - a) / 2 ))% of one core"
    done ) &
  sampler=$!
fi
[ -z "${PERF_EDGE:-}" ] || ( sleep 5; perf record -F 499 -g -o "$PERF_EDGE" -p "$up" -- sleep 4 >/dev/null 2>&1 ) &
[ -z "${PERF_CLIENT:-}" ] || ( sleep 5; perf record -F 499 -g -o "$PERF_CLIENT" -p "$ws" -- sleep 4 >/dev/null 2>&1 ) &
status=0
wait "$ws" || status=$?
ws=""
exit "$status"
