#!/usr/bin/env python3
"""The soak (run by scripts/soak.sh; stdlib only): the whole pipeline under a steady load for
MINUTES, every process's resident memory sampled, figures per window.

What runs:
- `tradeflow up` (every stage, the edge and the embedded redis-server; a few demo candles
  first so that the live view has prices),
- `tradeflow worker ingest --synthetic SYMBOLS --pace RATE/s`: RATE candles a second (1,000),
- `tradeflow bench ws`: WS_CLIENTS WebSocket clients (200) connected to the edge for each
  window, receiving WS_EVENTS alert events a second that it publishes on sys.events,
- a steady REST load from this process: REST_RPS requests a second (50) over five read routes
  with an admin token, each timed from request to the last byte.

Every 10 s: VmRSS and CPU time of up, its redis-server and the ingest worker. At the end of
each window (WINDOW seconds, 300): the candles that went in, the backlog left in the streams,
REST and WebSocket latency percentiles, memory (at the window's end, and the median of its
samples) and CPU. At the end: the growth of each process's memory from the first window (the
warm-up) to the last, end to end and median to median (target < 5 %), as a Markdown table and,
with SOAK_JSON=FILE, as JSON.

Environment: TRADEFLOW_BIN (the binary), SOAK_WINDOW_S, SOAK_RATE, SOAK_SYMBOLS,
SOAK_WS_CLIENTS, SOAK_WS_EVENTS, SOAK_REST_RPS, SOAK_JSON.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ["TRADEFLOW_BIN"]
MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
WINDOW = float(os.environ.get("SOAK_WINDOW_S", "300"))
RATE = int(os.environ.get("SOAK_RATE", "1000"))
SYMBOLS = int(os.environ.get("SOAK_SYMBOLS", "20"))
WS_CLIENTS = int(os.environ.get("SOAK_WS_CLIENTS", "200"))
WS_EVENTS = int(os.environ.get("SOAK_WS_EVENTS", "10"))
REST_RPS = float(os.environ.get("SOAK_REST_RPS", "50"))
ROUTES = [
    "/api/v1/trading/status",
    "/api/v1/market/prices",
    "/api/v1/trading/positions",
    "/api/v1/streams",
    "/health",
]
TICK = 10.0
PAGE = os.sysconf("SC_PAGE_SIZE")
HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[round((len(sorted_values) - 1) * q)]


def proc_sample(pid):
    """(resident bytes, CPU seconds) of a live process, or None."""
    try:
        rss = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return rss, (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, ValueError, IndexError):
        return None


def child_named(parent, name):
    """The pid of `parent`'s child whose command is `name` (up's embedded redis-server)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)
            comm = fields[0].split("(", 1)[1]
            ppid = int(fields[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and comm.startswith(name):
            return int(entry)
    return None


class RestLoad(threading.Thread):
    """REST_RPS requests a second, one keep-alive connection, latencies kept per window."""

    def __init__(self, host, port, token):
        super().__init__(daemon=True)
        self.host, self.port, self.token = host, port, token
        self.lock = threading.Lock()
        self.latencies, self.errors, self.by_route = [], {}, {}
        self.stop = threading.Event()

    def take(self):
        with self.lock:
            out = (sorted(self.latencies), dict(self.errors),
                   {r: percentile(sorted(v), 0.99) for r, v in self.by_route.items()})
            self.latencies, self.errors, self.by_route = [], {}, {}
            return out

    def run(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {"Authorization": f"Bearer {self.token}"}
        period, n, start = 1.0 / REST_RPS, 0, time.monotonic()
        while not self.stop.is_set():
            route = ROUTES[n % len(ROUTES)]
            t0 = time.monotonic()
            try:
                conn.request("GET", route, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            ms = (time.monotonic() - t0) * 1000
            with self.lock:
                if status == 200:
                    self.latencies.append(ms)
                    self.by_route.setdefault(route, []).append(ms)
                else:
                    self.errors[f"{route} {status}"] = self.errors.get(f"{route} {status}", 0) + 1
            n += 1
            time.sleep(max(0.0, start + n * period - time.monotonic()))


def metric_sum(text, name, **labels):
    """Sum of a Prometheus text exposition's samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def backlog(redis_url):
    """Entries not yet read, per kind of group: the trading path's and the audit's."""
    out = subprocess.run(
        [BIN, "streams", "health", "--json"], env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True, text=True, timeout=60,
    )
    trading = audit = 0
    if out.returncode != 0:
        return None, None
    for stream in json.loads(out.stdout):
        for part in stream["partitions"]:
            for g in part["groups"]:
                lag = g.get("lag") or 0
                if g["group"] == "audit":
                    audit += lag
                elif g["group"] not in ("monitor", "control"):
                    trading += lag
    return trading, audit


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(addr, name, **labels):
    """`name`'s samples summed from a process's /metrics, or None when it does not answer."""
    try:
        c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
        c.request("GET", "/metrics")
        return metric_sum(c.getresponse().read().decode(), name, **labels)
    except (OSError, http.client.HTTPException, ValueError):
        return None


def main():
    work = Path(tempfile.mkdtemp(prefix="tradeflow-soak-"))
    procs = []

    def start(args, logname, env=None):
        f = open(work / logname, "w")
        p = subprocess.Popen([BIN, *args], stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        procs.append(p)
        return p

    def stop_all():
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()

    # The topology every process of the run reads, copied once: a streams.toml edited while the
    # soak runs must not split the processes between two topologies.
    streams = Path(os.environ.get("TRADEFLOW_STREAMS") or ROOT / "streams.toml")
    (work / "streams.toml").write_text(streams.read_text())
    os.environ["TRADEFLOW_STREAMS"] = str(work / "streams.toml")
    try:
        (work / "tradeflow.toml").write_text(
            # The admin token outlives the run (the default hour would end a 60-minute soak).
            f"[edge]\ntoken_ttl_s = {int(MINUTES * 60) + 3600}\n[edge.rate_limit]\nread_per_minute = 100000000\n[edge.ws]\nclient_queue = 1024\nmax_clients = 20000\n"
        )
        demo = (ROOT / "demo/btcusd_1h.csv").read_text().splitlines()
        (work / "warmup.csv").write_text("\n".join(demo[:301]) + "\n")
        env = {"TRADEFLOW_ADMIN_PASSWORD": "soak-admin", "TRADEFLOW_JWT_SECRET": "soak-secret-0123456789abcdef0123456789"}
        up = start(["--config", str(work / "tradeflow.toml"), "up", "--data-dir", str(work / "data"),
                    "--listen", "127.0.0.1:0",
                    "--replay", f"BTCUSD={work / 'warmup.csv'}"], "up.log", env)
        base = redis_url = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (base and redis_url):
            text = (work / "up.log").read_text()
            m = re.search(r"^edge: (http://[^/]+)/api/v1", text, re.M)
            base = m and m.group(1)
            m = re.search(r"^embedded redis-server on (redis://\S+)", text, re.M)
            redis_url = m and m.group(1)
            if up.poll() is not None:
                break
            time.sleep(0.2)
        if not (base and redis_url):
            print((work / "up.log").read_text(), file=sys.stderr)
            sys.exit("soak: tradeflow up did not start")
        host, port = base[len("http://"):].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/api/v1/auth/login", json.dumps({"username": "admin", "password": "soak-admin"}),
                     {"content-type": "application/json"})
        token = json.loads(conn.getresponse().read())["access_token"]

        metrics = f"127.0.0.1:{free_port()}"
        bars = int(MINUTES * 60 * RATE / SYMBOLS) + 10 * RATE
        ingest = start(["worker", "ingest", "--synthetic", str(SYMBOLS), "--synthetic-bars", str(bars),
                        "--interval", "1m", "--pace", f"{RATE}/s", "--metrics-listen", metrics],
                       "ingest.log", {"REDIS_URL": redis_url})
        redis_pid = child_named(up.pid, "redis-server")
        watched = {"up": up.pid, "redis-server": redis_pid, "ingest": ingest.pid}
        log(f"edge {base}, redis {redis_url} (pid {redis_pid}), ingest metrics {metrics}; "
            f"{RATE} candles/s over {SYMBOLS} symbols, {WS_CLIENTS} WebSocket clients, {REST_RPS:g} REST requests/s")
        rest = RestLoad(host, int(port), token)
        rest.start()

        windows, samples = [], []
        started = time.monotonic()
        end = started + MINUTES * 60
        candles_before = 0.0
        last_cpu = {k: (proc_sample(p) or (0, 0))[1] for k, p in watched.items() if p}
        while time.monotonic() < end - 1:
            w_start = time.monotonic()
            w_end = min(w_start + WINDOW, end)
            ws_secs = max(1, int(w_end - w_start - 4))
            ws = subprocess.Popen(
                [BIN, "bench", "ws", "--json", "--url", base.replace("http:", "ws:"), "--token", token,
                 "--clients", str(WS_CLIENTS), "--rate", str(WS_EVENTS), "--seconds", str(ws_secs)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env={**os.environ, "REDIS_URL": redis_url},
            )
            while time.monotonic() < w_end:
                time.sleep(min(TICK, max(0.0, w_end - time.monotonic())))
                now = round(time.monotonic() - started, 1)
                for name, pid in watched.items():
                    s = pid and proc_sample(pid)
                    if s:
                        samples.append({"t": now, "process": name, "rss": s[0]})
                for name, p in (("up", up), ("ingest", ingest)):
                    if p.poll() is not None:
                        sys.exit(f"soak: {name} exited ({p.returncode}); see {work}/{name}.log")
            try:
                ws_out, _ = ws.communicate(timeout=120)
                ws_report = json.loads(ws_out.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
                ws.kill()
                ws_report = {}
            rest_lat, rest_err, rest_routes = rest.take()
            candles = scrape(metrics, "tradeflow_ingest_candles_total")
            trading, audit = backlog(redis_url)
            secs = time.monotonic() - w_start
            w = {
                "window": len(windows) + 1,
                "end_s": round(time.monotonic() - started),
                "candles_per_s": None if candles is None else round((candles - candles_before) / secs, 1),
                "backlog_trading": trading,
                "backlog_audit": audit,
                "rest_requests": len(rest_lat),
                "rest_errors": rest_err,
                "rest_p50_ms": percentile(rest_lat, 0.5),
                "rest_p99_ms": percentile(rest_lat, 0.99),
                "rest_max_ms": rest_lat[-1] if rest_lat else None,
                "rest_p99_ms_by_route": rest_routes,
                "ws_connected": ws_report.get("connected"),
                "ws_delivered": ws_report.get("delivered"),
                "ws_expected": ws_report.get("expected"),
                "ws_p50_ms": ws_report.get("p50_ms"),
                "ws_p99_ms": ws_report.get("p99_ms"),
                "ws_dropped": ws_report.get("dropped"),
                "rss_mb": {},
                "rss_median_mb": {},
                "cpu_pct": {},
            }
            candles_before = candles if candles is not None else candles_before
            for name, pid in watched.items():
                s = pid and proc_sample(pid)
                if s:
                    w["rss_mb"][name] = round(s[0] / 2**20, 1)
                    w["cpu_pct"][name] = round((s[1] - last_cpu.get(name, 0)) / secs * 100, 1)
                    last_cpu[name] = s[1]
            # The median of the window's 10-s samples: a heap that swings by tens of MB between
            # allocations says little at one instant; a trend shows in the medians.
            for name in watched:
                in_window = sorted(x["rss"] for x in samples
                                   if x["process"] == name and w["end_s"] - secs < x["t"] <= w["end_s"])
                if in_window:
                    w["rss_median_mb"][name] = round(in_window[len(in_window) // 2] / 2**20, 1)
            windows.append(w)
            log(json.dumps(w))

        rest.stop.set()
        report = summarize(windows, samples)
        if os.environ.get("SOAK_JSON"):
            Path(os.environ["SOAK_JSON"]).write_text(json.dumps({"windows": windows, **report}, indent=1))
        print_table(windows, report)
        failed = [w for w in windows if w["rest_errors"]]
        if failed:
            log(f"REST errors in {len(failed)} windows: {failed[0]['rest_errors']}")
    finally:
        stop_all()
        if not os.environ.get("SOAK_KEEP"):
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def summarize(windows, samples):
    """Memory growth per process from the end of the first window (the warm-up) to the end."""
    growth = {}
    if len(windows) >= 2:
        for name in windows[0]["rss_mb"]:
            a, b = windows[0]["rss_mb"].get(name), windows[-1]["rss_mb"].get(name)
            if a and b:
                growth[name] = round((b - a) / a * 100, 1)
    # The same from the first window's median to the last window's.
    median_growth = {}
    if len(windows) >= 2:
        for name in windows[0].get("rss_median_mb", {}):
            a, b = windows[0]["rss_median_mb"].get(name), windows[-1]["rss_median_mb"].get(name)
            if a and b:
                median_growth[name] = round((b - a) / a * 100, 1)
    peak = {}
    for s in samples:
        peak[s["process"]] = max(peak.get(s["process"], 0), round(s["rss"] / 2**20, 1))
    return {"minutes": MINUTES, "rate_per_s": RATE, "ws_clients": WS_CLIENTS, "rest_rps": REST_RPS,
            "growth_after_warmup_pct": growth if growth else None,
            "median_growth_after_warmup_pct": median_growth if median_growth else None,
            "growth_note": None if growth else "one window only: no warm-up to compare with",
            "peak_rss_mb": peak}


def print_table(windows, report):
    fmt = lambda v: "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))
    names = list(windows[0]["rss_mb"]) if windows else []
    print(f"soak: {report['minutes']:g} min, {report['rate_per_s']} candles/s, {report['ws_clients']} WebSocket "
          f"clients, {report['rest_rps']:g} REST requests/s")
    print("| window | end s | candles/s in | backlog trading / audit | REST p50 / p99 / max ms | WS p50 / p99 ms "
          "(delivered/expected) | " + " | ".join(f"{n} MB / CPU %" for n in names) + " |")
    print("|" + "---|" * (6 + len(names)))
    for w in windows:
        cells = [str(w["window"]), str(w["end_s"]), fmt(w["candles_per_s"]),
                 f"{fmt(w['backlog_trading'])} / {fmt(w['backlog_audit'])}",
                 f"{fmt(w['rest_p50_ms'])} / {fmt(w['rest_p99_ms'])} / {fmt(w['rest_max_ms'])}",
                 f"{fmt(w['ws_p50_ms'])} / {fmt(w['ws_p99_ms'])} ({fmt(w['ws_delivered'])}/{fmt(w['ws_expected'])})"]
        cells += [f"{fmt(w['rss_mb'].get(n))} / {fmt(w['cpu_pct'].get(n))}" for n in names]
        print("| " + " | ".join(cells) + " |")
    g = report["growth_after_warmup_pct"]
    print("memory growth after the first window: " +
          (", ".join(f"{k} {v:+.1f} %" for k, v in g.items()) if g else report["growth_note"]))
    m = report["median_growth_after_warmup_pct"]
    if m:
        print("memory growth, first window's median to the last's: " + ", ".join(f"{k} {v:+.1f} %" for k, v in m.items())
              + " (per window: " + "; ".join(
                  f"{n} " + " ".join(fmt(w["rss_median_mb"].get(n)) for w in windows) for n in names) + " MB)")
    print("peak resident memory: " + ", ".join(f"{k} {v:.1f} MB" for k, v in report["peak_rss_mb"].items()))


if __name__ == "__main__":
    main()
