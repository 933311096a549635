#!/usr/bin/env bash
# The API contract check: schemathesis (pinned in scripts/setup.sh) against /openapi.json of a
# running `tradeflow up`, authenticated as admin, every operation, every check: no 5xx, every
# response valid against its schema, every status code documented, every schema-valid request
# accepted or refused with a documented status (schemathesis.toml says which refusals count).
#
#   scripts/api-contract.sh [EXAMPLES_PER_OPERATION]     (default 25)
#
# The pipeline runs in a temporary directory over the bundled demo candles, with the edge's
# rate limits and job quotas lifted (a client generator's burst is not what they guard against;
# their own tests are in crates/cli/tests). TRADEFLOW_BIN: a built binary (default: the debug
# build). Exit status: schemathesis's (0 = clean).
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"
bin="${TRADEFLOW_BIN:-${CARGO_TARGET_DIR:-target}/debug/tradeflow}"
[ -x "$bin" ] || { echo "api-contract: no tradeflow binary at $bin (cargo build -p tradeflow, or set TRADEFLOW_BIN)" >&2; exit 2; }
# The venv scripts/setup.sh installs it in, else one on PATH.
st="${XDG_CACHE_HOME:-$HOME/.cache}/tradeflow/schemathesis-4.32.5/bin/schemathesis"
[ -x "$st" ] || st="$(command -v schemathesis || true)"
[ -n "$st" ] || { echo "api-contract: schemathesis is not installed (scripts/setup.sh installs it)" >&2; exit 2; }

tmp="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$tmp/tradeflow.toml" <<'EOF'
[edge.rate_limit]
read_per_minute = 1000000
write_per_minute = 1000000
auth_per_minute = 1000000

[edge.tasks.quota]
max_running = 1000
max_queued = 100000
per_day = { backtest = 1000000, hyperopt = 1000000, download = 1000000, train = 1000000 }
EOF
password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
TRADEFLOW_ADMIN_PASSWORD="$password" "$bin" --config "$tmp/tradeflow.toml" up \
  --data-dir "$tmp/data" --listen "127.0.0.1:$port" >"$tmp/up.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  if curl -fsS "$base/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "api-contract: tradeflow up exited:" >&2; cat "$tmp/up.log" >&2; exit 1; fi
  sleep 0.2
done
token="$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$base/api/v1/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

status=0
"$st" --no-color --config-file "$PWD/schemathesis.toml" run "$base/openapi.json" \
  -H "Authorization: Bearer $token" --max-examples "$examples" --checks all --seed 1 \
  --suppress-health-check=filter_too_much --generation-database=none || status=$?
if [ "$status" -ne 0 ]; then
  echo "api-contract: schemathesis found contract failures (above); the server's log:" >&2
  tail -n 50 "$tmp/up.log" >&2
fi
exit "$status"
