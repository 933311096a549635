#!/usr/bin/env bash
# Checks the alert rules (run by scripts/test.sh): promtool's syntax check of
# grafana/prometheus/alerts.yml and prometheus.yml, its unit tests (alerts_test.yml), and that
# every alert has a test where it fires, a test where it does not, and a runbook entry in
# docs/runbook.md. promtool comes with Debian's prometheus package (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=grafana/prometheus
command -v promtool >/dev/null 2>&1 \
  || { echo "check-alerts: promtool not found; run scripts/setup.sh (Debian package prometheus)" >&2; exit 1; }

promtool check rules "$dir/alerts.yml" >/dev/null \
  || { promtool check rules "$dir/alerts.yml" >&2 || true; echo "check-alerts: $dir/alerts.yml is invalid (above)" >&2; exit 1; }
promtool check config "$dir/prometheus.yml" >/dev/null \
  || { promtool check config "$dir/prometheus.yml" >&2 || true; echo "check-alerts: $dir/prometheus.yml is invalid (above)" >&2; exit 1; }
if ! out=$(promtool test rules "$dir/alerts_test.yml" 2>&1); then
  echo "$out" >&2
  echo "check-alerts: the alert rules' unit tests failed ($dir/alerts_test.yml, above)" >&2
  exit 1
fi

# Coverage: promtool runs only the cases written, so a rule without a firing case (or without
# a quiet one) would pass unnoticed. Read with the standard library (no YAML parser needed:
# both files keep one `alert:`/`alertname:` per line).
python3 - "$dir/alerts.yml" "$dir/alerts_test.yml" docs/runbook.md <<'EOF'
import re, sys
rules_path, tests_path, runbook_path = sys.argv[1:]
rules = re.findall(r"^\s*- alert:\s*(\S+)\s*$", open(rules_path).read(), re.M)
tests = open(tests_path).read()
runbook = open(runbook_path).read()
fires, quiet = set(), set()
# Each alert_rule_test case: its alertname, then exp_alerts either `[]` or a list.
for name, exp in re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:(.*)", tests):
    (quiet if exp.strip() == "[]" else fires).add(name)
problems = []
for r in rules:
    if r not in fires:
        problems.append(f"{r}: no test case where it fires")
    if r not in quiet:
        problems.append(f"{r}: no test case where it stays quiet")
    if not re.search(rf"^#+ {re.escape(r)}\s*$", runbook, re.M):
        problems.append(f"{r}: no '## {r}' entry in {runbook_path}")
    if f"runbook.md#{r.lower()}" not in open(rules_path).read():
        problems.append(f"{r}: no runbook annotation pointing at docs/runbook.md#{r.lower()}")
unknown = (fires | quiet) - set(rules)
problems += [f"{u}: tested but not a rule of {rules_path}" for u in sorted(unknown)]
if problems:
    print("check-alerts: " + "\ncheck-alerts: ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"check-alerts: {len(rules)} rules valid, each tested firing and quiet, each in the runbook")
EOF
