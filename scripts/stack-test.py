#!/usr/bin/env python3
"""Proof that the monitoring works (run by scripts/test.sh; also the smoke test of
scripts/stack.sh).

Starts the local stack (scripts/stack.sh up) in a temporary state directory, replays the demo
feed through it, then through Prometheus's HTTP API:
1. evaluates every PromQL expression of every panel of every dashboard in grafana/dashboards
   (template variables substituted, each variable's own query too): each must parse and return
   at least one series;
2. kills the risk worker (SIGKILL, like a crash) and sees TradeflowStageWithoutWorker{job="risk"}
   go pending, then firing; starts it again (scripts/stack.sh start risk) and sees it resolve.

The inference worker runs one LLM analyst besides the rule models, against a fake
OpenAI-style server in this process (a fixed `hold` answer with token usage), so that the
models dashboard's LLM panels (requests, latency, tokens, cost) have series.

Run time is kept to a couple of minutes: Prometheus scrapes and evaluates every second
(TRADEFLOW_STACK_SCRAPE=1s), ingest replays 100 bars a second, and the rules are a copy of
alerts.yml whose TradeflowStageWithoutWorker waits 10 s instead of 1 minute (the only change).
Needs TRADEFLOW_BIN (a built tradeflow binary); stdlib only.
"""

import http.server
import json
import os
import threading
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "scripts" / "stack.sh"
ALERT = "TradeflowStageWithoutWorker"
FOR_WINDOW = "10s"
# What Grafana would put for its built-in variables at a 1 s scrape interval; ranges of a
# minute hold enough samples for rate() and histogram_quantile().
BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def fail(msg):
    print(f"stack-test: FAILED: {msg}", file=sys.stderr)
    raise SystemExit(1)


def log(msg):
    print(f"stack-test: {msg}", flush=True)


def stack(env, *args, check=True):
    r = subprocess.run([str(STACK), *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if check and r.returncode != 0:
        fail(f"scripts/stack.sh {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def get(url, params=None):
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def query(prom, expr):
    """The instant query's result list, or an error text."""
    status, body = get(f"{prom}/api/v1/query", {"query": expr})
    data = json.loads(body)
    if status != 200 or data.get("status") != "success":
        return None, f"{data.get('errorType')}: {data.get('error')}"
    return data["data"]["result"], None


def rules_copy(dest):
    """alerts.yml with the stage rule's `for` shortened: the rule's block is the text from its
    `- alert:` line to the next one."""
    text = (ROOT / "grafana/prometheus/alerts.yml").read_text()
    start = text.index(f"- alert: {ALERT}\n")
    end = text.find("- alert:", start + 1)
    end = len(text) if end < 0 else end
    block, n = re.subn(r"(?m)^(\s*for:).*$", rf"\1 {FOR_WINDOW}", text[start:end])
    if n != 1:
        fail(f"{ALERT} has no single `for:` to shorten")
    dest.write_text(text[:start] + block + text[end:])


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def dashboard_queries():
    """(dashboard file, what, expression) of every panel target and template variable."""
    for path in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        d = json.loads(path.read_text())
        variables = {}
        for v in d.get("templating", {}).get("list", []):
            # Every variable as "All" (a regex matching anything); the test needs each
            # expression to find data, not one value to.
            variables[v["name"]] = ".*"
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q or "")
            if v.get("type") == "query" and m:
                # Grafana's label_values(selector, label): the label's values on the series.
                yield path.name, f"variable {v['name']}", f"count by ({m.group(2)}) ({m.group(1)})", variables
        for p in panels(d.get("panels", [])):
            for t in p.get("targets", []):
                if t.get("expr"):
                    yield path.name, f"panel {p.get('id')} \"{p.get('title')}\" {t.get('refId', '')}", t["expr"], variables


def substitute(expr, variables):
    for k, v in BUILTINS.items():
        expr = expr.replace(k, v)
    # Longest names first, so that $group is not replaced inside $groups.
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def wait(what, timeout, probe, every=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"{what}: not within {timeout} s")
        time.sleep(every)


def alert_state(prom, job):
    status, body = get(f"{prom}/api/v1/alerts")
    if status != 200:
        return None
    for a in json.loads(body)["data"]["alerts"]:
        if a["labels"].get("alertname") == ALERT and a["labels"].get("job") == job:
            return a["state"]
    return "inactive"


HOLD = '{"action": "hold", "confidence": 0.3, "reasoning": "Waiting.", "stop_loss": null, "take_profit": null}'


class FakeLlm(http.server.BaseHTTPRequestHandler):
    """An OpenAI-style chat completions endpoint answering every request with HOLD: the
    response shape of POST /v1/chat/completions (`id`, `object: chat.completion`,
    `choices[].message.content`, `finish_reason`, `usage.prompt_tokens/completion_tokens/
    total_tokens`) as OpenAI's API reference documents it, followed as of 2026-12-06 (the date
    the other fakes of the repository name)."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": HOLD}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 400, "completion_tokens": 40, "total_tokens": 440},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    # A worker stopped mid-request (the test kills and stops them) is no test failure.
    def handle_error(self, request, client_address):
        pass


def fake_llm(tmp):
    """Starts the fake provider; returns the analyst configuration file naming it."""
    server = QuietServer(("127.0.0.1", 0), FakeLlm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp / "llm.toml"
    # Replayed candles are years old: max_candle_age_s lets the analyst see them anyway.
    config.write_text(
        f"""[[analyst]]
name = "fake-llm"
dialect = "openai"
base_url = "http://127.0.0.1:{server.server_address[1]}/v1"
model = "fake"
timeout_ms = 5000
min_interval_ms = 0
cache_ttl_s = 0
max_candle_age_s = 100000000000
headlines = 0
price = {{ input_per_mtok_usd = 3.0, output_per_mtok_usd = 15.0 }}
"""
    )
    return config


def exercise_edge(edge):
    """Requests that every edge panel has a series for: successes, a 401 (no token) and a 404.
    /health is also docker-compose.yml's health check of the edge: it must answer 200."""
    status, body = get(edge + "/health")
    if status != 200:
        fail(f"GET {edge}/health (the compose health check) answered {status}: {body[:200]!r}")
    for path in ["/health", "/api/v1/trading/status", "/api/v1/no-such-route", "/metrics"]:
        for _ in range(3):
            get(edge + path)


def main():
    binary = os.environ.get("TRADEFLOW_BIN")
    if not binary or not os.access(binary, os.X_OK):
        fail("set TRADEFLOW_BIN to a built tradeflow binary (scripts/test.sh does)")
    tmp = Path(tempfile.mkdtemp(prefix="tradeflow-stack-test-"))
    state = tmp / "stack"
    rules = tmp / "alerts.yml"
    rules_copy(rules)
    env = dict(os.environ)
    env.update(
        TRADEFLOW_STACK_DIR=str(state),
        TRADEFLOW_STACK_RULES=str(rules),
        TRADEFLOW_STACK_SCRAPE="1s",
        # 100 bars a second: ingest is still replaying (alive, scraped) when the queries run,
        # even on a slow machine (the 20,111 demo bars take 200 s).
        TRADEFLOW_STACK_PACE="100/s",
        TRADEFLOW_BIN=str(Path(binary).resolve()),
        # Read by the inference worker (and the edge) that stack.sh starts.
        TRADEFLOW_LLM_CONFIG=str(fake_llm(tmp)),
    )
    started = time.monotonic()
    try:
        log("scripts/stack.sh up")
        out = stack(env, "up").stdout
        urls = dict(line.split("=", 1) for line in (state / "env").read_text().split())
        prom, edge = urls["PROMETHEUS_URL"], urls["EDGE_URL"]
        st = stack(env, "status")
        if "stopped" in st.stdout:
            fail(f"status after up shows a stopped process:\n{st.stdout}")

        # Every target scraped, then the replay through every stage: fills reach the audit
        # store's group, so the whole pipeline ran.
        jobs = re.findall(r"(?m)^\s*- job_name:\s*(\S+)", (state / "prometheus.yml").read_text())
        last = {}

        def all_up():
            res, _ = query(prom, "up")
            last.update({r["metric"]["job"]: r["value"][1] for r in res or []})
            return sorted(last) == sorted(jobs) and all(v == "1" for v in last.values())

        try:
            wait("every Prometheus target up", 30, all_up)
        except SystemExit:
            fail(f"targets: {last}, jobs: {jobs}")
        log("every target up; waiting for fills from the demo feed")
        wait(
            "fills from the demo feed",
            120,
            lambda: (query(prom, "sum(tradeflow_exec_fills_total)")[0] or [{"value": [0, "0"]}])[0]["value"][1] != "0",
        )
        log(f"fills after {time.monotonic() - started:.0f} s")
        exercise_edge(edge)
        # A minute of samples for the panels' [1m] ranges, with the edge's requests in it.
        time.sleep(20)
        exercise_edge(edge)
        time.sleep(5)

        problems, checked = [], 0
        for dash, what, expr, variables in dashboard_queries():
            checked += 1
            e = substitute(expr, variables)
            res, err = query(prom, e)
            if err:
                problems.append(f"{dash} {what}: does not parse or evaluate: {err}\n    {e}")
            elif not res:
                problems.append(f"{dash} {what}: no series\n    {e}")
        if problems:
            fail(f"{len(problems)} of {checked} dashboard expressions:\n" + "\n".join(problems))
        log(f"{checked} dashboard expressions parse and return series")

        # The risk worker dies: the stage alert goes pending, then firing after its `for`.
        pid = int((state / "pids" / "risk").read_text())
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        log(f"killed the risk worker (pid {pid})")
        wait(f"{ALERT}{{job=risk}} pending", 20, lambda: alert_state(prom, "risk") == "pending", 0.2)
        log(f"{ALERT}{{job=risk}} pending after {time.monotonic() - killed:.1f} s")
        wait(f"{ALERT}{{job=risk}} firing", 40, lambda: alert_state(prom, "risk") == "firing", 0.2)
        log(f"{ALERT}{{job=risk}} firing after {time.monotonic() - killed:.1f} s (for: {FOR_WINDOW})")
        stack(env, "start", "risk")
        restarted = time.monotonic()
        wait(f"{ALERT}{{job=risk}} resolved", 30, lambda: alert_state(prom, "risk") == "inactive", 0.2)
        log(f"{ALERT}{{job=risk}} resolved {time.monotonic() - restarted:.1f} s after the restart")

        # `stop` ends one process; `status` then says so and exits non-zero.
        stack(env, "stop", "edge")
        st = stack(env, "status", check=False)
        if st.returncode == 0 or not re.search(r"(?m)^edge\s+-\s+\d+\s+stopped$", st.stdout):
            fail(f"status after `stop edge` (exit {st.returncode}):\n{st.stdout}{st.stderr}")
        log("stack.sh stop edge: status shows it stopped")
    finally:
        pids = [int(p.read_text()) for p in (state / "pids").glob("*")] if (state / "pids").is_dir() else []
        down = stack(env, "down", check=False)
        leftover = state.exists()
        shutil.rmtree(tmp, ignore_errors=True)
    running = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    if down.returncode != 0 or leftover or running:
        fail(f"scripts/stack.sh down left {running or 'no process'} and {'its' if leftover else 'no'} state:\n{down.stdout}{down.stderr}")
    log(f"passed in {time.monotonic() - started:.0f} s; the stack is down")


if __name__ == "__main__":
    main()
