#!/usr/bin/env bash
# The compose topology as local processes, for machines that cannot pull images:
#
#   scripts/stack.sh up       a private redis-server (+ its Prometheus exporter), a private
#                             PostgreSQL cluster (the audit store), one worker of each kind
#                             (`tradeflow worker <kind>`, each with --metrics-listen on a port
#                             of its own), the edge, and Debian's prometheus over
#                             grafana/prometheus/prometheus.yml and alerts.yml with the local
#                             targets; all on free loopback ports
#   scripts/stack.sh status   each process, its pid, port and state; Prometheus's targets
#   scripts/stack.sh stop KIND | start KIND    kill / start again one process (same port)
#   scripts/stack.sh down     stops everything started and removes the state directory
#
# State (pids, ports, logs, the Redis, PostgreSQL and Prometheus data) lives in
# $TRADEFLOW_STACK_DIR (default ./data/stack): `env` there has REDIS_URL, DATABASE_URL,
# EDGE_URL and PROMETHEUS_URL (mode 0600: DATABASE_URL holds the generated password).
# Settings from the environment: TRADEFLOW_BIN (a tradeflow binary; default: the release
# build, built if missing), TRADEFLOW_STACK_PACE (ingest's replay pace, default x3600: one
# hourly demo bar a second, so ingest runs like a live feed for hours instead of finishing in
# seconds and leaving the stage alert firing), TRADEFLOW_STACK_SCRAPE (scrape and rule
# evaluation interval, default the file's), TRADEFLOW_STACK_RULES (an alert rules file instead
# of alerts.yml; the stack test shortens `for` windows with it). Every process inherits the
# caller's environment (TRADEFLOW_LOG, TRADEFLOW_LOG_FORMAT, TRADEFLOW_LLM_CONFIG, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=${TRADEFLOW_STACK_DIR:-$root/data/stack}
case "$state" in /*) ;; *) state=$root/$state ;; esac
# The worker kinds, in start order (every consumer before the producer of the first stream).
kinds=(audit jobs exec risk ensemble inference ingest)
# Every process, in start order; `down` stops them in reverse.
procs=(redis redis-exporter postgres "${kinds[@]}" edge prometheus)

die() { echo "stack: $*" >&2; exit 1; }

usage() {
  echo "usage: scripts/stack.sh up | status | down | stop KIND | start KIND" >&2
  echo "       (KIND: ${procs[*]})" >&2
  exit 2
}

port_of() { sed -n "s/^$1=//p" "$state/ports" 2>/dev/null; }
pid_of() { cat "$state/pids/$1" 2>/dev/null || true; }

# True when $1's recorded pid is alive and still the program we started (a pid reused by an
# unrelated process is never signalled). The kernel's comm is the executed file's name cut to
# 15 characters; the program is the command's first word after `env` and its assignments.
alive() {
  local pid prog comm
  pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  prog=$(grep -vxE 'env|setpriv|--[a-z-]+(=.*)?|[A-Z_]+=.*' "$state/cmd/$1" 2>/dev/null | head -n 1) || return 1
  prog=$(basename "$prog")
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "${prog:0:15}" ]
}

# Starts process $1 from its command file (one argument a line), in its own session so that
# Ctrl-C in the calling shell does not reach it, with its output in logs/$1.log.
launch() {
  local name=$1 args=()
  mapfile -t args <"$state/cmd/$name"
  (cd "$root" && exec setsid "${args[@]}" >>"$state/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$state/pids/$name"
}

# Writes the command of process $1 (the remaining arguments) for launch and `start`.
command_for() {
  local name=$1
  shift
  printf '%s\n' "$@" >"$state/cmd/$name"
}

# Waits until $2 (a command) succeeds, up to $3 seconds, while process $1 lives.
wait_for() {
  local name=$1 check=$2 limit=$3 i
  for ((i = 0; i < limit * 10; i++)); do
    eval "$check" >/dev/null 2>&1 && return 0
    alive "$name" || { tail -n 20 "$state/logs/$name.log" >&2; return 1; }
    sleep 0.1
  done
  tail -n 20 "$state/logs/$name.log" >&2
  return 1
}

# PostgreSQL's server binaries: Debian keeps them off PATH, under /usr/lib/postgresql/<v>/bin.
pg_bindir() {
  local initdb
  initdb=$(command -v initdb 2>/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)
  [ -n "$initdb" ] || die "PostgreSQL's initdb not found; run scripts/setup.sh"
  # The directory of the real file: an initdb linked onto PATH has no pg_isready beside it.
  dirname "$(readlink -f "$initdb")"
}

# initdb and postgres refuse to run as root: as root they run as the `postgres` system user
# (the Debian package creates it), which then owns the cluster's directory.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    printf '%s\n' setpriv --reuid=postgres --regid=postgres --init-groups
  fi
}

pg_ready() {
  local bindir
  bindir=$(pg_bindir)
  "$bindir/pg_isready" -q -h 127.0.0.1 -p "$1" || return 1
  [ -f "$state/postgres.created" ] && return 0
  PGPASSWORD=$(cat "$state/postgres-password") "$bindir/createdb" -h 127.0.0.1 -p "$1" -U tradeflow tradeflow \
    && touch "$state/postgres.created"
}

http_ok() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"; }

# Ready when its port answers: the metrics endpoint, Redis's PING, Prometheus's readiness.
ready_check() {
  local name=$1 port
  port=$(port_of "$name")
  case "$name" in
    redis) echo "redis-cli -h 127.0.0.1 -p $port ping | grep -q PONG" ;;
    # Accepting connections, and the audit store's database made (once, at the first start).
    postgres) echo "pg_ready $port" ;;
    prometheus) echo "http_ok http://127.0.0.1:$port/-/ready" ;;
    *) echo "http_ok http://127.0.0.1:$port/metrics" ;;
  esac
}

start_one() {
  local name=$1
  [ -f "$state/cmd/$name" ] || die "no process named $name in $state (one of: ${procs[*]})"
  alive "$name" && die "$name is already running (pid $(pid_of "$name"))"
  launch "$name"
  wait_for "$name" "$(ready_check "$name")" 60 || die "$name did not become ready (log: $state/logs/$name.log, above)"
  echo "stack: $name started (pid $(pid_of "$name"), port $(port_of "$name"))"
}

stop_one() {
  local name=$1 pid i
  alive "$name" || return 0
  pid=$(pid_of "$name")
  # PostgreSQL's SIGTERM waits for its clients to leave; SIGINT is its fast shutdown.
  if [ "$name" = postgres ]; then kill -INT "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
  # Workers finish their in-flight batch on SIGTERM; give them time before SIGKILL.
  for ((i = 0; i < 100; i++)); do
    alive "$name" || break
    sleep 0.1
  done
  alive "$name" && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$state/pids/$name"
}

# The Prometheus configuration: grafana/prometheus/prometheus.yml with its global settings and
# job names as they are, the rules file by absolute path, and each job's targets replaced by
# the local port of the process of that name. A job of the file with no local process is an
# error, so the two cannot drift apart silently.
prometheus_config() {
  local rules=${TRADEFLOW_STACK_RULES:-$root/grafana/prometheus/alerts.yml}
  case "$rules" in /*) ;; *) rules=$root/$rules ;; esac
  python3 - "$root/grafana/prometheus/prometheus.yml" "$state/ports" "$rules" "${TRADEFLOW_STACK_SCRAPE:-}" <<'EOF'
import re, sys
source, ports_file, rules, interval = sys.argv[1:]
text = open(source).read()
ports = dict(line.strip().split("=", 1) for line in open(ports_file) if "=" in line)
head, sep, scrapes = text.partition("\nscrape_configs:")
if not sep:
    sys.exit(f"stack: {source} has no scrape_configs")
head = re.sub(r"(?m)^(rule_files:\s*\n)(\s*- ).*$", lambda m: f"{m.group(1)}{m.group(2)}{rules}", head)
if interval:
    head = re.sub(r"(?m)^(\s*(scrape|evaluation)_interval:).*$", rf"\g<1> {interval}", head)
jobs = re.findall(r"(?m)^\s*- job_name:\s*(\S+)\s*$", scrapes)
# The process each job scrapes, where the names differ: the redis job is Redis's exporter.
process = {"redis": "redis-exporter"}
ports = {j: ports[process.get(j, j)] for j in jobs if process.get(j, j) in ports}
missing = [j for j in jobs if j not in ports]
if missing:
    sys.exit(f"stack: {source} scrapes jobs that stack.sh does not start: {', '.join(missing)}")
out = [head.rstrip("\n"), "", "# Generated by scripts/stack.sh from " + source + ": local targets.", "scrape_configs:"]
for j in jobs:
    out += [f"  - job_name: {j}", "    static_configs:", f"      - targets: [\"127.0.0.1:{ports[j]}\"]"]
print("\n".join(out))
EOF
}

up() {
  if [ -d "$state" ]; then
    for name in "${procs[@]}"; do
      alive "$name" && die "a stack is already running in $state ($name, pid $(pid_of "$name")); scripts/stack.sh down first"
    done
    rm -rf "$state"
  fi
  scripts/setup.sh >/dev/null
  local bin=${TRADEFLOW_BIN:-}
  if [ -z "$bin" ]; then
    cargo build --release -q -p tradeflow || die "cargo build failed"
    bin=${CARGO_TARGET_DIR:-$root/target}/release/tradeflow
  fi
  case "$bin" in /*) ;; *) bin=$root/$bin ;; esac
  [ -x "$bin" ] || die "TRADEFLOW_BIN=$bin is not an executable"
  mkdir -p "$state"/{pids,cmd,logs,redis,prometheus}
  # Free loopback ports, all held open until every one is chosen so that none repeats.
  python3 - "${procs[@]}" >"$state/ports" <<'EOF'
import socket, sys
socks = []
for name in sys.argv[1:]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    print(f"{name}={s.getsockname()[1]}")
EOF
  local redis_url="redis://127.0.0.1:$(port_of redis)/"
  # The edge signs its tokens with the first; the audit store's user has the second. Generated
  # per stack, readable by the owner only.
  (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$state/jwt-secret")
  (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16))' >"$state/postgres-password")
  local db="postgres://tradeflow:$(cat "$state/postgres-password")@127.0.0.1:$(port_of postgres)/tradeflow"
  # A private cluster: initdb once per stack, password authentication for its one user.
  local bindir pg_as=()
  bindir=$(pg_bindir)
  mapfile -t pg_as < <(as_pg)
  # The cluster's directory: in the state directory, or, as root, a private one of the
  # postgres user's (the state directory's parents may be closed to it), named in pgdir so
  # that `down` removes it.
  local pg="$state/postgres"
  if [ ${#pg_as[@]} -gt 0 ]; then
    pg=$(mktemp -d "${TMPDIR:-/tmp}/tradeflow-stack-pg.XXXXXX")
    chown postgres:postgres "$pg"
  fi
  echo "$pg" >"$state/pgdir"
  mkdir -p "$pg"
  (umask 077 && cp "$state/postgres-password" "$pg/pwfile")
  [ ${#pg_as[@]} -eq 0 ] || chown postgres:postgres "$pg/pwfile"
  "${pg_as[@]}" "$bindir/initdb" -D "$pg/data" -U tradeflow --pwfile="$pg/pwfile" \
    -A scram-sha-256 -E UTF8 --locale=C >"$state/logs/initdb.log" 2>&1 \
    || die "initdb failed: $(tail -n 5 "$state/logs/initdb.log")"
  rm -f "$pg/pwfile"
  (umask 077 && {
    echo "REDIS_URL=$redis_url"
    echo "DATABASE_URL=$db"
    echo "EDGE_URL=http://127.0.0.1:$(port_of edge)"
    echo "PROMETHEUS_URL=http://127.0.0.1:$(port_of prometheus)"
  } >"$state/env")

  # `env` puts each process's settings on its command line, so `start` repeats them exactly.
  command_for redis redis-server --bind 127.0.0.1 --port "$(port_of redis)" --dir "$state/redis" \
    --appendonly yes --save "" --protected-mode yes
  command_for redis-exporter prometheus-redis-exporter --redis.addr "$redis_url" \
    --web.listen-address "127.0.0.1:$(port_of redis-exporter)"
  command_for postgres "${pg_as[@]}" "$bindir/postgres" -D "$pg/data" -p "$(port_of postgres)" \
    -k "$pg" -c listen_addresses=127.0.0.1
  # Secrets travel in the environment (private to the process once `env` has exec'd it), not
  # on command lines anyone can list.
  local kind extra
  for kind in "${kinds[@]}"; do
    extra=()
    case "$kind" in
      ingest) extra=(--pace "${TRADEFLOW_STACK_PACE:-x3600}") ;;
    esac
    command_for "$kind" env REDIS_URL="$redis_url" DATABASE_URL="$db" "$bin" worker "$kind" \
      --metrics-listen "127.0.0.1:$(port_of "$kind")" "${extra[@]}"
  done
  command_for edge env REDIS_URL="$redis_url" DATABASE_URL="$db" TRADEFLOW_JWT_SECRET="$(cat "$state/jwt-secret")" \
    "$bin" edge --listen "127.0.0.1:$(port_of edge)"
  prometheus_config >"$state/prometheus.yml" || die "cannot write the Prometheus configuration"
  promtool check config "$state/prometheus.yml" >/dev/null \
    || die "the generated $state/prometheus.yml is invalid: $(promtool check config "$state/prometheus.yml" 2>&1 | tail -n 3)"
  command_for prometheus prometheus --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/prometheus" --web.listen-address="127.0.0.1:$(port_of prometheus)"
  # The command files hold the JWT secret: owner only.
  chmod 600 "$state"/cmd/*

  local name
  for name in "${procs[@]}"; do
    if ! (start_one "$name"); then
      echo "stack: stopping what started" >&2
      down_all
      exit 1
    fi
  done
  echo "stack: up in $state"
  # The addresses, the database password masked: it stays in the 0600 env file, not on a
  # terminal or in a CI log.
  sed -E 's#^(DATABASE_URL=[^:]+://[^:]+:)[^@]*@#\1***@#' "$state/env"
  echo "(DATABASE_URL with its password: $state/env)"
}

down_all() {
  local i
  [ -d "$state" ] || return 0
  for ((i = ${#procs[@]} - 1; i >= 0; i--)); do
    stop_one "${procs[i]}"
  done
  local pg
  pg=$(cat "$state/pgdir" 2>/dev/null || true)
  # Only the cluster directory up() made (its own, or mktemp's pattern), never another path.
  case "$pg" in "$state/postgres" | */tradeflow-stack-pg.*) rm -rf "$pg" ;; esac
  rm -rf "$state"
}

status() {
  [ -f "$state/ports" ] || { echo "stack: not up ($state does not exist)"; return 3; }
  local name all=0
  printf '%-15s %-8s %-6s %s\n' process pid port state
  for name in "${procs[@]}"; do
    if alive "$name"; then
      printf '%-15s %-8s %-6s %s\n' "$name" "$(pid_of "$name")" "$(port_of "$name")" running
    else
      printf '%-15s %-8s %-6s %s\n' "$name" - "$(port_of "$name")" stopped
      all=1
    fi
  done
  if alive prometheus; then
    python3 - "http://127.0.0.1:$(port_of prometheus)" <<'EOF' || true
import json, sys, urllib.request
targets = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v1/targets", timeout=5))["data"]["activeTargets"]
print("prometheus targets: " + ", ".join(f"{t['labels']['job']} {t['health']}" for t in targets))
EOF
  fi
  return $all
}

case "${1:-}" in
  up) up ;;
  down) down_all; echo "stack: down" ;;
  status) status ;;
  start) [ $# -eq 2 ] || usage; start_one "$2" ;;
  stop) [ $# -eq 2 ] || usage; [ -f "$state/cmd/$2" ] || die "no process named $2 in $state"; stop_one "$2"; echo "stack: $2 stopped" ;;
  *) usage ;;
esac
