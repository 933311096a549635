#!/usr/bin/env bash
# Installs what tradeflow's run and tests need on a Debian machine, idempotently:
# redis-server (7.0+) and redis-tools (redis-cli, redis-benchmark), PostgreSQL, wrk, chromium
# and Prometheus (promtool for the alert rules' tests, prometheus and its Redis exporter for
# scripts/stack.sh); from PyPI, the OpenAPI validator and pyarrow the tests use; a nightly Rust
# toolchain and cargo-fuzz for the fuzz targets.
# Nothing is started here: `tradeflow up` and every test start their own private redis-server
# on a free loopback port.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
# PostgreSQL server binaries (initdb, postgres) for the audit store's tests, which start a
# private cluster each; Debian keeps them off PATH, under /usr/lib/postgresql/<version>/bin.
pg_initdb() {
  command -v initdb 2>/dev/null && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 | grep . && return 0
  return 1
}
pg_initdb >/dev/null || need+=(postgresql)
# wrk: the edge's HTTP benchmark (a second process on loopback).
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# chromium: the backtest report test renders report.html headless (screenshot and DOM).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# prometheus: promtool checks and unit-tests grafana/prometheus/alerts.yml (.ci/run), and
# scripts/stack.sh runs the server over the same rules against the local processes.
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || need+=(prometheus)
# Redis's own memory, clients and availability for Prometheus (the "Redis memory near maxmemory"
# alert); stack.sh runs it beside its redis-server, compose runs the same exporter's image.
command -v prometheus-redis-exporter >/dev/null 2>&1 || need+=(prometheus-redis-exporter)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} from Debian"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Keep the packages from starting the system PostgreSQL and Prometheus (tests never use
  # them; Prometheus would take port 9090): invoke-rc.d asks policy-rc.d, and 101 means "not
  # allowed". Only a policy-rc.d we put there is removed.
  policy=""
  if [[ " ${need[*]} " == *" postgresql "* || " ${need[*]} " == *" prometheus "* || " ${need[*]} " == *" prometheus-redis-exporter "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
  fi
  status=0
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || status=$?
  [ -z "$policy" ] || $sudo rm -f "$policy"
  [ "$status" -eq 0 ] || { echo "setup: apt-get install ${need[*]} failed ($status)" >&2; exit "$status"; }
fi

initdb_path=$(pg_initdb) || { echo "setup: PostgreSQL's initdb not found after install" >&2; exit 1; }
pg_version=$("$initdb_path" --version | sed -E 's/.* ([0-9]+(\.[0-9]+)?).*/\1/')

# Debian's package starts a system redis on 6379; tradeflow never uses it, and leaves it alone.
version=$(redis-server --version | sed -E 's/.*v=([0-9]+)\.([0-9]+).*/\1 \2/')
read -r major minor <<<"$version"
if [ "$major" -lt 7 ]; then
  echo "setup: redis-server $major.$minor is too old; tradeflow needs Redis 7.0 or newer" >&2
  exit 1
fi

# The OpenAPI 3 validator the edge's tests run over /openapi.json (PyPI).
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  echo "setup: installing openapi-spec-validator from PyPI"
  python3 -m pip install -q --disable-pip-version-check openapi-spec-validator \
    || { echo "setup: pip install openapi-spec-validator failed" >&2; exit 1; }
fi

# pyarrow, with which the datasets' tests read back the Parquet files tradeflow writes (PyPI).
if ! python3 -c 'import pyarrow.parquet' >/dev/null 2>&1; then
  echo "setup: installing pyarrow from PyPI"
  python3 -m pip install -q --disable-pip-version-check pyarrow \
    || { echo "setup: pip install pyarrow failed" >&2; exit 1; }
fi

# schemathesis, the schema fuzzer of scripts/api-contract.sh, pinned, in a venv of its own (its
# dependencies stay apart from the packages above).
st_version=4.32.5
st_venv="${XDG_CACHE_HOME:-$HOME/.cache}/tradeflow/schemathesis-$st_version"
if [ ! -x "$st_venv/bin/schemathesis" ]; then
  echo "setup: installing schemathesis $st_version from PyPI into $st_venv"
  { python3 -m venv "$st_venv" && "$st_venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$st_version"; } \
    || { echo "setup: installing schemathesis failed" >&2; rm -rf "$st_venv"; exit 1; }
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }

# The fuzz targets (fuzz/, scripts/fuzz.sh and its smoke test): a nightly toolchain (rustup)
# and cargo-fuzz (crates.io).
if ! cargo +nightly --version >/dev/null 2>&1; then
  command -v rustup >/dev/null 2>&1 || { echo "setup: no nightly toolchain and no rustup to install one" >&2; exit 1; }
  echo "setup: installing the nightly toolchain (rustup, minimal profile) for the fuzz targets"
  rustup toolchain install nightly --profile minimal >/dev/null \
    || { echo "setup: rustup toolchain install nightly failed" >&2; exit 1; }
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --quiet || { echo "setup: cargo install cargo-fuzz failed" >&2; exit 1; }
fi
prom_version=$(promtool --version 2>&1 | sed -nE 's/^promtool, version ([0-9.]+).*/\1/p')
echo "setup: redis-server $major.$minor, PostgreSQL $pg_version, Prometheus $prom_version and cargo $(cargo --version | cut -d' ' -f2) ready"
