#!/usr/bin/env bash
# A Redis Cluster on loopback: three masters with a replica each, for trying tradeflow on a
# cluster and for `tradeflow bench` figures on one (docs/bus.md "Redis Cluster").
#
#   scripts/redis-cluster.sh start DIR [redis-server args...]   prints the redis+cluster:// address
#   scripts/redis-cluster.sh stop DIR
#
# Each node is a redis-server on a free loopback port (its cluster bus port, +10000, free too)
# with its data, log, pid file, port and start command in DIR/nodeN; AOF on; cluster-node-timeout 1000 ms, so a
# killed master's replica takes over within a few seconds. Extra arguments go to every
# redis-server (`--min-replicas-to-write 1`). The address is also written to DIR/url.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1 dir=$2
shift 2

stop() {
  local pids=()
  for f in "$dir"/node*/redis.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$f"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  echo "stopped ${#pids[@]} nodes in $dir" >&2
}

free_pair() {
  python3 - "$@" <<'PY'
import socket, sys
taken = {int(p) for p in sys.argv[1:]}
for _ in range(200):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
    if p >= 55000 or p in taken:
        continue
    try:
        with socket.socket() as b:
            b.bind(("127.0.0.1", p + 10000))
    except OSError:
        continue
    print(p)
    break
else:
    sys.exit("no free port pair")
PY
}

case $action in
  stop) stop ;;
  start)
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
      || { echo "redis-server and redis-cli are needed (scripts/setup.sh installs them)" >&2; exit 1; }
    if compgen -G "$dir/node*/redis.pid" >/dev/null; then
      echo "$dir already holds a running cluster; stop it first: $0 stop $dir" >&2
      exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    ports=()
    for i in 0 1 2 3 4 5; do
      node="$dir/node$i"
      # A pair free when probed can be bound by someone else (another script, a test) before
      # the daemon binds it: then the daemon exits, and a PING would be answered by the
      # stranger. The node is ours only when the server answering reports our daemon's pid.
      for attempt in 1 2 3 4 5; do
        port=$(free_pair "${ports[@]}")
        rm -rf "$node" && mkdir -p "$node"
        # The command is kept in $node/start: `sh DIR/nodeN/start` brings a killed node back with
        # its data (it rejoins as a replica of whoever took its slots).
        printf '%q ' redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --pidfile "$node/redis.pid" \
          --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000 \
          --appendonly yes --save "" --dir "$node" --logfile "$node/redis.log" "$@" >"$node/start"
        echo "$port" >"$node/port"
        sh "$node/start"
        ours=0
        for _ in $(seq 100); do
          pid=$(cat "$node/redis.pid" 2>/dev/null || true)
          answering=$(timeout 2 redis-cli -p "$port" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p' || true)
          if [ -n "$pid" ] && [ "$answering" = "$pid" ]; then ours=1; break; fi
          if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
          sleep 0.1
        done
        [ "$ours" = 1 ] && break
        [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
        rm -f "$node/redis.pid"
        echo "node$i: port $port was taken before the server bound it (attempt $attempt); trying another" >&2
      done
      if [ "$ours" != 1 ]; then
        echo "node$i did not start on any of 5 ports; see $node/redis.log" >&2
        stop
        exit 1
      fi
      ports+=("$port")
    done
    addrs=()
    for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
      cat "$dir/create.log" >&2
      stop
      exit 1
    fi
    for _ in $(seq 300); do
      ok=0
      for port in "${ports[@]}"; do
        redis-cli -p "$port" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' && ok=$((ok + 1))
      done
      [ "$ok" = 6 ] && break
      sleep 0.1
    done
    if [ "$ok" != 6 ]; then
      echo "the cluster did not reach cluster_state:ok on every node; logs in $dir/node*/redis.log" >&2
      stop
      exit 1
    fi
    url="redis+cluster://${addrs[0]},${addrs[1]},${addrs[2]}"
    echo "$url" >"$dir/url"
    echo "$url"
    ;;
  *) usage ;;
esac
