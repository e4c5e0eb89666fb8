#!/usr/bin/env bash
# Run the get-or-create benchmark on a throwaway PostgreSQL cluster and a
# temporary SQLite file, and print its Markdown tables.
#
#   bench/run.sh [-o FILE] BENCH_GOC [bench_goc options...]
#
# Starts a cluster with scripts/pgcluster.sh on a short socket directory
# under /tmp (Unix sockets have a ~100-byte path limit), runs BENCH_GOC
# against it and against SQLite in a temporary directory, and stops the
# cluster and removes everything on any exit, failure or Ctrl-C. The tables
# go to stdout and, with -o, to FILE as well; progress goes to stderr.
# Options for bench_goc come after BENCH_GOC or from NODUP_BENCH_ARGS
# (NODUP_BENCH_ARGS="--seconds 1 --rounds 1"); with --pg CONNINFO no cluster
# is started, with --only sqlite none is needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

out=""
if [ "${1:-}" = -o ]; then
  out=${2:?run.sh: -o needs a file}
  shift 2
fi
bin=${1:?usage: run.sh [-o FILE] BENCH_GOC [bench_goc options...]}
shift
read -r -a extra <<<"${NODUP_BENCH_ARGS:-}"
args=("$@" "${extra[@]}")

need_cluster=1
prev=""
for a in "${args[@]}"; do
  if [ "$a" = --pg ] || { [ "$prev" = --only ] && [ "$a" = sqlite ]; }; then
    need_cluster=0
  fi
  prev=$a
done

base=$(mktemp -d /tmp/nodup-bench.XXXXXX)
chmod 755 "$base"            # as root the server runs as pgtest: it must get in
sock=$base/pg/sock           # pgcluster.sh owns $base/pg
started=0
child=""
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  if [ "$started" = 1 ]; then
    "$here/../scripts/pgcluster.sh" stop "$sock" || echo "run.sh: could not stop the cluster in $base/pg" >&2
  fi
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$base/sqlite"
pgargs=()
if [ "$need_cluster" = 1 ]; then
  started=1
  "$here/../scripts/pgcluster.sh" start "$sock"
  pgargs=(--pg "host=$sock user=postgres dbname=postgres")
fi

# Ours first, so that the caller's options win. The benchmark runs in the
# background so that a signal reaches the trap at once (bash defers traps
# while a foreground command runs); it prints its tables only at the end.
"$bin" "${pgargs[@]}" --sqlite-dir "$base/sqlite" "${args[@]}" >"$base/results.md" &
child=$!
status=0
wait "$child" || status=$?
child=""
cat "$base/results.md"
if [ -n "$out" ]; then
  cp "$base/results.md" "$out"
  echo "run.sh: tables written to $out" >&2
fi
exit "$status"
