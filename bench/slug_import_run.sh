#!/usr/bin/env bash
# Run the slug and import benchmarks on a throwaway PostgreSQL cluster (and,
# for slugs, a temporary SQLite file), and print their Markdown tables.
#
#   bench/slug_import_run.sh [-o FILE] BENCH_SLUG BENCH_IMPORT NODUP
#
# BENCH_SLUG and BENCH_IMPORT are the programs (build/bench/bench_slug,
# build/bench/bench_import), NODUP the command whose `nodup import` is
# measured (build/nodup). Extra options come from NODUP_SLUG_BENCH_ARGS
# (e.g. "--seconds 0.5 --rounds 1") and NODUP_IMPORT_BENCH_ARGS (e.g.
# "--rows 100000 --rounds 1"). As bench/run.sh does, it starts the cluster
# with scripts/pgcluster.sh on a short socket directory under /tmp and stops
# it and removes everything on any exit, failure or Ctrl-C. The tables go to
# stdout and, with -o, to FILE as well; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

out=""
if [ "${1:-}" = -o ]; then
  out=${2:?slug_import_run.sh: -o needs a file}
  shift 2
fi
usage="usage: slug_import_run.sh [-o FILE] BENCH_SLUG BENCH_IMPORT NODUP"
slug_bin=${1:?$usage}
import_bin=${2:?$usage}
nodup_bin=${3:?$usage}
read -r -a slug_args <<<"${NODUP_SLUG_BENCH_ARGS:-}"
read -r -a import_args <<<"${NODUP_IMPORT_BENCH_ARGS:-}"

base=$(mktemp -d /tmp/nodup-bench.XXXXXX)
chmod 755 "$base"            # as root the server runs as pgtest: it must get in
sock=$base/pg/sock
started=0
child=""
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  if [ "$started" = 1 ]; then
    "$here/../scripts/pgcluster.sh" stop "$sock" || echo "slug_import_run.sh: could not stop the cluster in $base/pg" >&2
  fi
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$base/sqlite" "$base/csv"
started=1
"$here/../scripts/pgcluster.sh" start "$sock"
pg="host=$sock user=postgres dbname=postgres"

# Each program runs in the background so that a signal reaches the trap at
# once (bash defers traps while a foreground command runs).
status=0
"$slug_bin" --pg "$pg" --sqlite-dir "$base/sqlite" "${slug_args[@]}" >"$base/slug.md" &
child=$!
wait "$child" || status=$?
"$import_bin" --pg "$pg" --nodup "$nodup_bin" --dir "$base/csv" "${import_args[@]}" \
  >"$base/import.md" &
child=$!
wait "$child" || status=$?
child=""
cat "$base/slug.md" "$base/import.md" | tee "$base/results.md"
if [ -n "$out" ]; then
  cp "$base/results.md" "$out"
  echo "slug_import_run.sh: tables written to $out" >&2
fi
exit "$status"
