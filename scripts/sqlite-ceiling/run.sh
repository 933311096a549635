#!/usr/bin/env bash
# SQLite's own insert rate for the audit rows, without tradeflow: copies the rows of an audit
# store (e.g. a `tradeflow up` or bench run's file) REPLICAS times under new ids (times shifted
# so that each series keeps growing) into a fresh file with the same schema, 32 KiB pages, WAL,
# synchronous=NORMAL, prepared single-row INSERTs bound without copies, ~TX rows per transaction.
# Built against the SQLite that sqlx and rusqlite bundle (libsqlite3-sys 0.30, from cargo's
# registry). Usage: scripts/sqlite-ceiling/run.sh SOURCE.db [REPLICAS=40] [TX=8192]
# Prints two lines: with the secondary indexes, and without.
# CEILING_OPT (default -O2) is the compiler's optimisation flag; the smoke test builds with -O0
# (24 s less of gcc; its figures mean nothing). Each flag has a binary of its own.
set -euo pipefail
[ $# -ge 1 ] && [ -f "$1" ] || { echo "usage: $0 SOURCE.db [REPLICAS=40] [TX=8192]" >&2; exit 2; }
source_db=$(realpath "$1")
cd "$(dirname "$0")"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libsqlite3-sys-0.30.*/sqlite3 2>/dev/null | tail -1)
[ -n "$src" ] || { echo "sqlite-ceiling: libsqlite3-sys 0.30 is not in cargo's registry; run cargo build first" >&2; exit 1; }
opt=${CEILING_OPT:--O2}
out=${TMPDIR:-/tmp}/tradeflow-sqlite-ceiling
bin=$out/ceiling$opt
mkdir -p "$out"
# Rebuilt when ceiling.c is newer than the binary (a stale one would measure old code).
[ -x "$bin" ] && [ "$bin" -nt ceiling.c ] || gcc "$opt" -DSQLITE_THREADSAFE=1 -DSQLITE_DEFAULT_FOREIGN_KEYS=1 \
  -DSQLITE_ENABLE_STAT4 -I "$src" ceiling.c "$src/sqlite3.c" -lpthread -ldl -lm -o "$bin"
"$bin" "$source_db" "$out/copy.db" "${2:-40}" "${3:-8192}" 1
"$bin" "$source_db" "$out/copy.db" "${2:-40}" "${3:-8192}" 0
rm -f "$out"/copy.db*
