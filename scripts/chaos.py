#!/usr/bin/env python3
"""The chaos run (run by scripts/chaos.sh; stdlib only): the demo feed looped to CANDLES candles
over many symbols, once cleanly and once through a fleet whose workers are SIGKILLed at random
and whose Redis is SIGKILLed and restarted; then the two audit stores are compared.

The clean run: `tradeflow up --exit-when-drained` on its own redis-server (every stage in one
process). The chaos run: its own redis-server (AOF on, `appendfsync everysec`), COPIES processes
of inference, ensemble, risk and exec (3), two audit writers and one ingest worker, each a
`tradeflow worker` process, the ingest worker paced to last about as long as the clean run.
Every KILL_MIN–KILL_MAX seconds (2–5) one of them, picked at random,
the ingest worker included while it runs, is SIGKILLed and started again under the same member
name (a restarted ingest resumes from the last candle on md.candles), for as long as the clean
run took and while ingest runs; then the fleet drains undisturbed. REDIS_KILLS times (2),
spread over the run, the redis-server is SIGKILLed and started again on its files. When the
ingest worker is done and every stage group and the audit writer have drained, the workers are
stopped (SIGTERM) and the stores compared:

- candles, signals and decisions: the same rows in both (timing columns left out: recorded_at,
  latency_us); with one symbol also orders, rejections, fills, positions, balance history and
  trading logs. With several symbols an account trades all of them and the order in which two
  symbols' decisions reach its partition depends on timing, clean run or not, so those tables are
  checked by invariants instead;
- invariants on the chaos store: one candle per bar, one signal per model and candle, one
  decision per profile and candle, a fill for every order, and each account's last balance equal
  to its starting balance plus the fold of its fills (realized P&L less fees);
- dead letters left on any stream.

Lost = rows of the clean run missing from the chaos run; extra = rows the chaos run has that
the clean one has not (a doubled effect would show here, or in the invariants). Target: 0 and 0.

Environment: TRADEFLOW_BIN (the binary); CHAOS_SYMBOLS (default: as many as the demo feed's
20,111 bars need for CANDLES), CHAOS_KILL_EVERY ("2-5" seconds), CHAOS_REDIS_KILLS (2),
CHAOS_COPIES (3), CHAOS_SEED (the kills' random seed, default from the clock; printed),
CHAOS_TIMEOUT_S (the chaos run's limit, default 3 × the clean run + 600 s), CHAOS_JSON=FILE
(the figures as JSON), CHAOS_KEEP=1 (keep the working directory and its logs).

CHAOS_CLUSTER=1 runs the chaos fleet on a Redis Cluster (scripts/redis-cluster.sh: three masters
with a replica each) instead: each Redis kill SIGKILLs a master, waits for its replica to take
over and starts the old master again (it rejoins as a replica), and the workers WAIT for
CHAOS_WAIT_REPLICAS (1) replicas after each write. Both runs then (and with CHAOS_COUNT_ENTRIES=1
on one server too) keep every entry (pack_max 1, trim_acked false) so that the entries on md.candles, inf.signals and ens.decisions can be
counted against their distinct rows: the surplus is the duplicate stream entries the cluster's
two-step settle and the producers' resends leave (docs/bus.md "Redis Cluster").
"""

import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ["TRADEFLOW_BIN"]
DEMO = ROOT / "demo" / "btcusd_1h.csv"
CANDLES = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
MODELS = "rsi,macd,technical"
# The pipeline tests' profiles and accounts (two rule-model profiles; an account per profile,
# the second with leverage, shorts off, a trailing stop and tight limits, so that rejections and
# stops happen).
PIPELINE = ROOT / "tests" / "data" / "pipeline"
STARTING = {a["id"]: a["starting_balance"]
            for a in tomllib.loads((PIPELINE / "accounts.toml").read_text())["account"]}
# (stream, group) pairs that must have nothing pending and no lag for a run to be over.
DRAIN = [
    ("md.candles", "inference"), ("inf.signals", "ensemble"), ("ens.decisions", "risk"),
    ("risk.orders", "exec"), ("md.candles", "audit"), ("inf.signals", "audit"),
    ("ens.decisions", "audit"), ("risk.orders", "audit"), ("exec.fills", "audit"),
    ("audit.events", "audit"),
]
ALWAYS_COMPARED = ["candles", "signals", "decisions"]
TRADING_TABLES = ["orders", "rejections", "fills", "positions", "balance_history", "trading_logs"]
TIMING_COLUMNS = {"recorded_at", "latency_us"}


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A redis-server of our own on a free loopback port, AOF on, killable and restartable."""

    def __init__(self, directory):
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--logfile", str(self.dir / "redis.log"), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"redis-server exited ({self.proc.returncode}); see {self.dir / 'redis.log'}")
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "PING"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise SystemExit(f"redis-server did not answer within 60 s; see {self.dir / 'redis.log'}")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    """A Redis Cluster of our own (scripts/redis-cluster.sh), whose masters can be SIGKILLed."""

    def __init__(self, directory):
        self.dir = directory
        out = subprocess.run([str(ROOT / "scripts" / "redis-cluster.sh"), "start", str(directory)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"the cluster did not start: {out.stderr}")
        self.url = out.stdout.strip()
        self.nodes = {int((d / "port").read_text()): d for d in sorted(directory.glob("node*"))}

    def _cli(self, port, *args):
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10)

    def _live(self):
        return [p for p, d in self.nodes.items() if self._cli(p, "PING").stdout.strip() == "PONG"]

    def masters(self):
        for port in self._live():
            nodes = self._cli(port, "CLUSTER", "NODES").stdout.splitlines()
            return [int(line.split()[1].split("@")[0].rsplit(":", 1)[1]) for line in nodes
                    if "master" in line.split()[2] and "fail" not in line.split()[2]]
        return []

    def healthy(self):
        live = self._live()
        return bool(live) and all("cluster_state:ok" in self._cli(p, "CLUSTER", "INFO").stdout for p in live)

    def kill_master(self, rng):
        """SIGKILLs a random master, waits until the cluster is served again (its replica
        promoted) and starts it again; returns (port, seconds until served again)."""
        port = rng.choice(self.masters())
        d = self.nodes[port]
        os.kill(int((d / "redis.pid").read_text()), signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(0.5)
        while time.monotonic() - killed < 60:
            if self.healthy() and port not in self.masters():
                break
            time.sleep(0.1)
        served = time.monotonic() - killed
        (d / "redis.pid").unlink(missing_ok=True)
        subprocess.run(["sh", str(d / "start")], check=True)
        return port, served

    def stop(self):
        subprocess.run([str(ROOT / "scripts" / "redis-cluster.sh"), "stop", str(self.dir)],
                       capture_output=True)


# Streams whose entries are counted against their rows in cluster mode.
COUNTED = {"md.candles": "candles", "inf.signals": "signals", "ens.decisions": "decisions"}


def keep_every_entry(streams_toml):
    """One message per entry, none trimmed: entries can be counted as messages."""
    text = streams_toml.read_text()
    for old, new in [("pack_max = 64", "pack_max = 1"), ("trim_acked = true", "trim_acked = false")]:
        if old not in text:
            raise SystemExit(f"{streams_toml} has no `{old}` to change for counting entries")
        text = text.replace(old, new, 1)
    streams_toml.write_text(text)


def entries(env, streams_toml, ports):
    """Entries on each COUNTED stream, summed over its partitions (any node answers with -c)."""
    topo = tomllib.loads(streams_toml.read_text())
    ns = topo.get("namespace", "tf")
    default_parts = topo.get("defaults", {}).get("partitions", 8)
    out = {}
    for stream in COUNTED:
        parts = topo["streams"][stream].get("partitions", default_parts)
        total = 0
        for p in range(parts):
            key = f"{ns}:{{{stream}:{p}}}"
            for port in ports:
                r = subprocess.run(["redis-cli", "-c", "-p", str(port), "XLEN", key], capture_output=True, text=True)
                if r.returncode == 0 and r.stdout.strip().isdigit():
                    total += int(r.stdout.strip())
                    break
            else:
                raise SystemExit(f"XLEN {key}: no node answered")
        out[stream] = total
    return out


def run_dir(work, name, redis):
    d = work / name
    d.mkdir()
    shutil.copy(PIPELINE / "profiles.toml", d / "profiles.toml")
    shutil.copy(PIPELINE / "accounts.toml", d / "accounts.toml")
    shutil.copy(Path(os.environ.get("TRADEFLOW_STREAMS") or ROOT / "streams.toml"), d / "streams.toml")
    env = dict(os.environ)
    env.pop("TRADEFLOW_CONFIG", None)
    env.update({
        "REDIS_URL": redis.url,
        "TRADEFLOW_STREAMS": str(d / "streams.toml"),
        "TRADEFLOW_PROFILES": str(d / "profiles.toml"),
        "TRADEFLOW_ACCOUNTS": str(d / "accounts.toml"),
        "DATABASE_URL": f"sqlite://{d / 'tradeflow.db'}",
        "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
    })
    return d, env


def drained(env):
    """Whether every stage group and the audit writer have nothing pending and no lag."""
    out = subprocess.run([BIN, "streams", "health", "--json"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return False  # Redis restarting: not yet
    try:
        assessed = json.loads(out.stdout)
    except json.JSONDecodeError:
        return False
    groups = {}
    for a in assessed:
        for g in a.get("group_summaries", []):
            groups[(a["stream"], g["group"])] = g
    for key in DRAIN:
        g = groups.get(key)
        if g is None or g["pending"] != 0 or not g["lag_known"] or g["lag"] != 0:
            return False
    return True


def dead_letters(env):
    out = subprocess.run([BIN, "streams", "health", "--json"], env=env, capture_output=True, text=True, check=True)
    return {a["stream"]: a["dlq_length"] for a in json.loads(out.stdout)
            if a["dlq_length"]}


class Worker:
    def __init__(self, name, args, env, d):
        self.name, self.args, self.env, self.dir = name, args, env, d
        self.log = open(d / f"{name}.log", "ab")
        self.proc = None
        self.kills = 0
        self.start()

    def start(self):
        self.proc = subprocess.Popen([BIN, *self.args], env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

    def kill_and_restart(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        self.start()


def replay_args(csv, symbols):
    args = []
    for i in range(symbols):
        args += ["--replay", f"SYM{i:03d}={csv}"]
    return args


def columns(db, schema, table):
    return [r[1] for r in db.execute(f'PRAGMA {schema}.table_info("{table}")') if r[1] not in TIMING_COLUMNS]


def compare(chaos_db, clean_db, tables):
    """Per table: rows of the clean run missing from the chaos run, and the other way round."""
    db = sqlite3.connect(chaos_db)
    db.execute("ATTACH DATABASE ? AS clean", (str(clean_db),))
    out = {}
    for t in tables:
        log(f"comparing {t}")
        cols = ", ".join(f'"{c}"' for c in columns(db, "main", t))
        lost = db.execute(f'SELECT COUNT(*) FROM (SELECT {cols} FROM clean."{t}" EXCEPT SELECT {cols} FROM main."{t}")').fetchone()[0]
        extra = db.execute(f'SELECT COUNT(*) FROM (SELECT {cols} FROM main."{t}" EXCEPT SELECT {cols} FROM clean."{t}")').fetchone()[0]
        rows = db.execute(f'SELECT COUNT(*) FROM main."{t}"').fetchone()[0]
        clean_rows = db.execute(f'SELECT COUNT(*) FROM clean."{t}"').fetchone()[0]
        out[t] = {"rows": rows, "clean_rows": clean_rows, "lost": lost, "extra": extra}
    db.close()
    return out


def invariants(path, candles):
    db = sqlite3.connect(path)
    one = lambda q, *a: db.execute(q, a).fetchone()[0]  # noqa: E731
    problems = []
    n = one("SELECT COUNT(*) FROM candles")
    if n != candles:
        problems.append(f"{n} candles, expected {candles}")
    models = len(MODELS.split(","))
    if one("SELECT COUNT(*) FROM signals") != models * n:
        problems.append(f"{one('SELECT COUNT(*) FROM signals')} signals, expected {models} per candle ({models * n})")
    if one("SELECT COUNT(*) FROM decisions") != 2 * n:
        problems.append(f"{one('SELECT COUNT(*) FROM decisions')} decisions, expected 2 per candle ({2 * n})")
    unfilled = one("SELECT COUNT(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM fills f WHERE f.order_id = o.id)")
    if unfilled:
        problems.append(f"{unfilled} orders without a fill")
    balances = {}
    for account, start in STARTING.items():
        folded = start + one("SELECT COALESCE(SUM(realized_pnl - fee), 0) FROM fills WHERE account = ?", account)
        last = db.execute("SELECT balance FROM balance_history WHERE account = ? ORDER BY seq DESC, time DESC LIMIT 1",
                          (account,)).fetchone()
        stored = last[0] if last else start
        balances[account] = {"stored": stored, "folded": folded}
        if abs(stored - folded) > 1e-6 * max(1.0, abs(folded)):
            problems.append(f"{account}: stored balance {stored} but its fills fold to {folded}")
    counts = {t: one(f'SELECT COUNT(*) FROM "{t}"') for t in ALWAYS_COMPARED + TRADING_TABLES}
    db.close()
    return problems, balances, counts


def main():
    symbols = int(os.environ.get("CHAOS_SYMBOLS") or max(1, math.ceil(CANDLES / 20_111)))
    kill_min, kill_max = (float(x) for x in os.environ.get("CHAOS_KILL_EVERY", "2-5").split("-"))
    redis_kills = int(os.environ.get("CHAOS_REDIS_KILLS", "2"))
    copies = int(os.environ.get("CHAOS_COPIES", "3"))
    seed = int(os.environ.get("CHAOS_SEED") or time.time_ns() % 1_000_000)
    cluster_mode = os.environ.get("CHAOS_CLUSTER") == "1"
    counting = cluster_mode or os.environ.get("CHAOS_COUNT_ENTRIES") == "1"
    wait_replicas = os.environ.get("CHAOS_WAIT_REPLICAS", "1")
    rng = random.Random(seed)
    bars = math.ceil(CANDLES / symbols)
    lines = DEMO.read_text().splitlines()
    if bars > len(lines) - 1:
        raise SystemExit(f"{CANDLES} candles over {symbols} symbols is {bars} bars each; the demo feed has "
                         f"{len(lines) - 1}: set CHAOS_SYMBOLS to at least {math.ceil(CANDLES / (len(lines) - 1))}")
    total = bars * symbols
    work = Path(tempfile.mkdtemp(prefix="tradeflow-chaos-"))
    csv = work / "feed.csv"
    csv.write_text("\n".join(lines[: bars + 1]) + "\n")
    log(f"{total} candles: {symbols} symbols x {bars} bars of the demo feed; kills every {kill_min:g}-{kill_max:g} s, "
        f"{redis_kills} Redis kills, {copies} of every stage; seed {seed}; in {work}")
    report = {"candles": total, "symbols": symbols, "bars_per_symbol": bars, "seed": seed,
              "kill_every_s": [kill_min, kill_max], "copies": copies,
              "redis": f"cluster, WAIT {wait_replicas}" if cluster_mode else "one server"}
    servers = []
    workers = []
    finished = False
    try:
        # The clean run.
        clean_redis = Redis(work / "clean-redis")
        servers.append(clean_redis)
        clean, env = run_dir(work, "clean", clean_redis)
        if counting:
            keep_every_entry(clean / "streams.toml")
        started = time.monotonic()
        with open(clean / "up.log", "wb") as out:
            up = subprocess.run([BIN, "up", "--exit-when-drained", "--listen", "127.0.0.1:0", "--models", MODELS,
                                 *replay_args(csv, symbols)], env=env, cwd=clean, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)
        if up.returncode != 0:
            raise SystemExit(f"the clean run failed ({up.returncode}); see {clean / 'up.log'}")
        clean_s = time.monotonic() - started
        report["clean_run_s"] = round(clean_s, 1)
        log(f"clean run: {clean_s:.0f} s")
        if counting:
            clean_entries = entries(env, clean / "streams.toml", [clean_redis.port])
        clean_redis.stop()

        # The chaos run.
        redis = Cluster(work / "chaos-cluster") if cluster_mode else Redis(work / "chaos-redis")
        servers.append(redis)
        chaos, env = run_dir(work, "chaos", redis)
        if counting:
            keep_every_entry(chaos / "streams.toml")
        if cluster_mode:
            env["TRADEFLOW_REDIS_WAIT_REPLICAS"] = wait_replicas
            log(f"chaos fleet on the cluster {redis.url}, WAIT {wait_replicas}")
        master_kills = []
        subprocess.run([BIN, "streams", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        for stage in ["inference", "ensemble", "risk", "exec"]:
            for i in range(copies):
                args = ["worker", stage, "--member-name", f"{stage}-{i}"]
                if stage == "inference":
                    args += ["--models", MODELS]
                workers.append(Worker(f"{stage}-{i}", args, env, chaos))
        for i in range(2):
            workers.append(Worker(f"audit-{i}", ["worker", "audit", "--member-name", f"audit-{i}"], env, chaos))
        # Paced to last about as long as the clean run, so that kills find it running too.
        rate = max(1, round(total / max(0.8 * clean_s, 1.0)))
        report["ingest_pace_per_s"] = rate
        ingest = Worker("ingest", ["worker", "ingest", "--pace", f"{rate}/s", *replay_args(csv, symbols)], env, chaos)
        timeout = float(os.environ.get("CHAOS_TIMEOUT_S") or 3 * clean_s + 600)
        started = time.monotonic()
        redis_at = [clean_s * (k + 1) / (redis_kills + 1) for k in range(redis_kills)]
        redis_killed, ingest_done, next_kill, next_check, ingest_exits = 0, False, rng.uniform(kill_min, kill_max), 0.0, 0
        while True:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise SystemExit(f"the chaos run did not drain within {timeout:.0f} s; logs in {chaos}")
            if not ingest_done and ingest.proc.poll() is not None:
                if ingest.proc.returncode == 0:
                    ingest_done = True
                    log(f"ingest done at {elapsed:.0f} s")
                else:
                    # Our kills restart it at once, so this is an exit of its own: it must ride
                    # out Redis's restarts. Counted (the run fails), and started again.
                    ingest_exits += 1
                    log(f"ingest exited with {ingest.proc.returncode}; started again")
                    ingest.start()
            if redis_killed < len(redis_at) and elapsed >= redis_at[redis_killed]:
                if cluster_mode:
                    port, served = redis.kill_master(rng)
                    master_kills.append({"port": port, "at_s": round(elapsed, 1), "served_again_s": round(served, 1)})
                    log(f"master on port {port} SIGKILLed at {elapsed:.0f} s; slots served again after "
                        f"{served:.1f} s; it rejoins as a replica")
                else:
                    redis.kill()
                    time.sleep(1.0)
                    redis.start()
                    log(f"redis-server SIGKILLed and restarted at {elapsed:.0f} s")
                redis_killed += 1
            # Kills go on for as long as the clean run took and while ingest runs; then the fleet
            # is left to drain (a killed consumer's entries wait claim_idle_ms, 30 s, to be
            # claimed, so kills every few seconds forever would never let it).
            if elapsed >= next_kill and (elapsed < clean_s or not ingest_done):
                victims = workers + ([] if ingest_done else [ingest])
                victim = rng.choice(victims)
                victim.kill_and_restart()
                next_kill = elapsed + rng.uniform(kill_min, kill_max)
            if ingest_done and redis_killed == len(redis_at) and elapsed >= next_check:
                if drained(env):
                    break
                next_check = elapsed + 1.0
            time.sleep(0.2)
        chaos_s = time.monotonic() - started
        report["chaos_run_s"] = round(chaos_s, 1)
        for w in workers:
            w.proc.terminate()
        for w in workers:
            try:
                w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        kills = {}
        for w in workers + [ingest]:
            stage = w.name.rsplit("-", 1)[0]
            kills[stage] = kills.get(stage, 0) + w.kills
        report["kills"] = kills
        report["kills_total"] = sum(kills.values())
        report["redis_kills"] = redis_killed
        report["ingest_exits"] = ingest_exits
        report["dead_letters"] = dead_letters(env)
        if cluster_mode:
            report["master_kills"] = master_kills
        if counting:
            chaos_entries = entries(env, chaos / "streams.toml", list(redis.nodes) if cluster_mode else [redis.port])
        redis.stop()

        tables = ALWAYS_COMPARED + (TRADING_TABLES if symbols == 1 else [])
        report["compared"] = compare(chaos / "tradeflow.db", clean / "tradeflow.db", tables)
        problems, balances, counts = invariants(chaos / "tradeflow.db", total)
        clean_problems, clean_balances, clean_counts = invariants(clean / "tradeflow.db", total)
        report.update({"invariant_problems": problems, "clean_invariant_problems": clean_problems,
                       "balances": balances, "clean_balances": clean_balances, "counts": counts,
                       "clean_counts": clean_counts})
        if counting:
            report["duplicate_entries"] = {
                run: {stream: {"entries": n, "rows": rows[table], "duplicates": n - rows[table]}
                      for stream, table in COUNTED.items() for n in [counted[stream]]}
                for run, counted, rows in [("clean", clean_entries, clean_counts), ("chaos", chaos_entries, counts)]}
        report["lost"] = sum(c["lost"] for c in report["compared"].values())
        report["extra"] = sum(c["extra"] for c in report["compared"].values())
        finished = True
    finally:
        for w in workers:
            if w.proc and w.proc.poll() is None:
                w.proc.kill()
        if "ingest" in locals() and ingest.proc.poll() is None:
            ingest.proc.kill()
        for s in servers:
            s.stop()
        if os.environ.get("CHAOS_KEEP") or not finished:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"## Chaos run: {total:,} candles ({symbols} symbols x {bars} bars), seed {seed}\n")
    print(f"clean run {report['clean_run_s']} s; chaos run {report['chaos_run_s']} s; "
          f"{report['kills_total']} worker kills ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}), "
          f"{report['redis_kills']} Redis kills\n")
    print("| table | clean rows | chaos rows | lost | extra |\n|---|---:|---:|---:|---:|")
    for t, c in report["compared"].items():
        print(f"| {t} | {c['clean_rows']:,} | {c['rows']:,} | {c['lost']} | {c['extra']} |")
    if symbols > 1:
        print(f"\ntrading tables (not compared row by row with {symbols} symbols per account): "
              + ", ".join(f"{t} {counts[t]:,} (clean {clean_counts[t]:,})" for t in TRADING_TABLES))
    print("\nbalances: " + "; ".join(f"{a} stored {b['stored']:.6f}, fills fold to {b['folded']:.6f}"
                                     for a, b in balances.items()))
    print(f"dead letters: {report['dead_letters'] or 'none'}; ingest exits of its own: {ingest_exits}")
    if cluster_mode:
        print("master kills: " + "; ".join(f"port {k['port']} at {k['at_s']} s, served again after {k['served_again_s']} s"
                                          for k in report["master_kills"]))
    if counting:
        print("duplicate stream entries (entries - distinct rows): " + "; ".join(
            f"{run}: " + ", ".join(f"{s} {d['duplicates']} of {d['entries']:,}" for s, d in runs.items())
            for run, runs in report["duplicate_entries"].items()))
    print(f"invariants: {'; '.join(problems) if problems else 'all hold'}")
    print(f"\nlost {report['lost']}, extra {report['extra']}")
    if os.environ.get("CHAOS_JSON"):
        Path(os.environ["CHAOS_JSON"]).write_text(json.dumps(report, indent=2))
    failed = (report["lost"] or report["extra"] or problems or report["dead_letters"] or clean_problems
              or ingest_exits)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
