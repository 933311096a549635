#!/usr/bin/env bash
# SQLite's own insert rate for the audit rows, without tradeflow: copies the rows of an audit
# store (e.g. a `tradeflow up` or bench run's file) REPLICAS times under new ids (times shifted
# so that each series keeps growing) into a fresh file with the same schema, 32 KiB pages, WAL,
# synchronous=NORMAL, prepared single-row INSERTs bound without copies, ~TX rows per transaction.
# Built against the SQLite that sqlx and rusqlite bundle (libsqlite3-sys 0.30, from cargo's
# registry). Usage: scripts/sqlite-ceiling/run.sh SOURCE.db [REPLICAS=40] [TX=8192]
# Prints two lines: with the secondary indexes, and without.
set -euo pipefail
cd "$(dirname "$0")"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libsqlite3-sys-0.30.*/sqlite3 | tail -1)
out=${TMPDIR:-/tmp}/tradeflow-sqlite-ceiling
mkdir -p "$out"
[ -x "$out/ceiling" ] || gcc -O2 -DSQLITE_THREADSAFE=1 -DSQLITE_DEFAULT_FOREIGN_KEYS=1 -DSQLITE_ENABLE_STAT4 \
  -I "$src" ceiling.c "$src/sqlite3.c" -lpthread -ldl -lm -o "$out/ceiling"
"$out/ceiling" "$1" "$out/copy.db" "${2:-40}" "${3:-8192}" 1
"$out/ceiling" "$1" "$out/copy.db" "${2:-40}" "${3:-8192}" 0
rm -f "$out"/copy.db*
