# Sourced by the scripts that run a built tradeflow (soak.sh, chaos.sh): installs what they need
# (scripts/setup.sh) and, unless TRADEFLOW_BIN names a binary already built (the smoke tests
# pass their debug one), makes the release build and exports TRADEFLOW_BIN.
scripts/setup.sh >/dev/null
if [ -z "${TRADEFLOW_BIN:-}" ]; then
  cargo build --release -q -p tradeflow
  TRADEFLOW_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/tradeflow"
  export TRADEFLOW_BIN
fi
