#!/usr/bin/env bash
# Installs what tradeflow's run and tests need on a Debian machine, idempotently:
# redis-server (7.0+) and redis-tools (redis-cli, redis-benchmark). Nothing is started here:
# `tradeflow up` and every test start their own private redis-server on a free loopback port.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} from Debian"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Debian's package starts a system redis on 6379; tradeflow never uses it, and leaves it alone.
version=$(redis-server --version | sed -E 's/.*v=([0-9]+)\.([0-9]+).*/\1 \2/')
read -r major minor <<<"$version"
if [ "$major" -lt 7 ]; then
  echo "setup: redis-server $major.$minor is too old; tradeflow needs Redis 7.0 or newer" >&2
  exit 1
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
echo "setup: redis-server $major.$minor and cargo $(cargo --version | cut -d' ' -f2) ready"
