#!/usr/bin/env python3
"""Regenerates the reference part of docs/cli.md from the binary's own --help.

Usage: scripts/cli-reference.py [--check] [BINARY]   (default target/debug/tradeflow; build it first)
  --check: write nothing; exit 1 (naming the first differing line) if docs/cli.md is not what
  the binary's --help gives, so a test can keep the reference current.

Walks `tradeflow --help` and every subcommand's, and rewrites everything after the
`## Reference` heading of docs/cli.md: per command its description, usage line, subcommands and
flags (the global ones, described once above the reference, are left out). The part above the
heading is written by hand and kept as it is.
"""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli.md"
MARK = "## Reference\n"
GLOBAL = {"--redis-url", "--config", "--streams", "-h", "-V"}
# Help texts clap leaves empty, filled from what the code does.
FALLBACK = {
    "--json": "print JSON instead of text",
    "<STREAM>": "logical stream name from streams.toml (e.g. inf.signals)",
    "<ACCOUNT>": "account id (`[[account]] id`)",
    "[SYMBOL]": "one symbol; without it every tracked one",
    "--limit": "at most this many dead letters",
    "--clients": "WebSocket clients to open",
    "--seconds": "length of the run",
    "resume": "Lift the pause",
}
DESC = {"ctl resume": "Lift the pause"}


def help_of(binary, words):
    out = subprocess.run([binary, *words, "--help"], capture_output=True, text=True, check=True)
    return out.stdout


def parse(body):
    desc, usage, sect, cur = [], "", None, None
    items = {"Arguments": [], "Options": [], "Commands": []}
    for line in body.rstrip("\n").split("\n"):
        if line.startswith("Usage: "):
            usage, sect = line[len("Usage: "):], None
            continue
        m = re.match(r"^(Arguments|Options|Commands):$", line)
        if m:
            sect, cur = m.group(1), None
            continue
        if sect is None:
            if line.strip() and not usage:
                desc.append(line.strip())
            continue
        if not line.strip():
            continue
        starts = (
            (sect == "Options" and re.match(r"^\s{2,6}-", line))
            or (sect == "Arguments" and re.match(r"^  [<\[]", line))
            or (sect == "Commands" and re.match(r"^  \S", line))
        )
        if starts:
            m = re.match(r"^\s+(\S.*?)(?:\s{2,}(.*))?$", line.rstrip())
            cur = [m.group(1).strip(), (m.group(2) or "").strip()]
            items[sect].append(cur)
        elif cur is not None:
            cur[1] = (cur[1] + " " + line.strip()).strip()
    return " ".join(desc), usage, items


def esc(text):
    return text.replace("|", "\\|")


def section(binary, words, out):
    desc, usage, items = parse(help_of(binary, words))
    name = " ".join(words)
    if name:
        desc = desc or DESC.get(name, "")
        out.append("#" * (len(words) + 2) + " " + name)
        if desc:
            out.append(textwrap.fill(esc(desc).rstrip(".") + ".", 100, break_on_hyphens=False))
        out.append("")
        out.append("```\n" + usage + "\n```")
        if items["Commands"]:
            out += ["", "| command | what it does |", "|---|---|"]
            out += [f"| `{c}` | {esc(d or FALLBACK.get(c, ''))} |" for c, d in items["Commands"] if c != "help"]
        rows = [(f"`{a}`", d or FALLBACK.get(a, "")) for a, d in items["Arguments"]]
        for flag, d in items["Options"]:
            key = flag.split()[0].rstrip(",")
            if key not in GLOBAL:
                rows.append((f"`{flag}`", d or FALLBACK.get(key, "")))
        if rows:
            out += ["", "| argument or flag | meaning |", "|---|---|"]
            out += [f"| {esc(r)} | {esc(d)} |" for r, d in rows]
        out.append("")
    for sub, _ in items["Commands"]:
        if sub != "help":
            section(binary, words + [sub], out)


def main():
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    binary = args[0] if args else str(ROOT / "target" / "debug" / "tradeflow")
    text = DOC.read_text(encoding="utf-8")
    if MARK not in text:
        sys.exit(f"{DOC}: no '{MARK.strip()}' heading")
    out = []
    section(binary, [], out)
    new = text[: text.index(MARK) + len(MARK)] + "\n".join(out).rstrip("\n") + "\n"
    if check:
        if new != text:
            old_lines, new_lines = text.splitlines(), new.splitlines()
            line = next((i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b), min(len(old_lines), len(new_lines)))
            got = old_lines[line] if line < len(old_lines) else "(end of file)"
            want = new_lines[line] if line < len(new_lines) else "(end of file)"
            sys.exit(f"{DOC} is stale at line {line + 1}: has {got!r}, --help gives {want!r}; run scripts/cli-reference.py")
        print(f"{DOC} is current")
        return
    DOC.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
