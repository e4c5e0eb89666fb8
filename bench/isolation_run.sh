#!/usr/bin/env bash
# Run the isolation-level benchmark (16 clients on 20 hot keys at READ
# COMMITTED, REPEATABLE READ and SERIALIZABLE as the database default) on a
# throwaway PostgreSQL cluster, and print its Markdown tables.
#
#   bench/isolation_run.sh [-o FILE] BENCH_ISOLATION [bench_isolation options...]
#
# As bench/run.sh does, it starts the cluster with scripts/pgcluster.sh on a
# short socket directory under /tmp and stops it and removes everything on
# any exit, failure or Ctrl-C. Options come after BENCH_ISOLATION or from
# NODUP_BENCH_ISOLATION_ARGS (e.g. "--seconds 1 --rounds 3"); with --pg
# CONNINFO no cluster is started (the benchmark changes that database's
# default_transaction_isolation while it runs, and puts it back). The tables
# go to stdout and, with -o, to FILE as well; progress goes to stderr. The
# exit status is bench_isolation's: 1 when a correctness check failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

out=""
if [ "${1:-}" = -o ]; then
  out=${2:?isolation_run.sh: -o needs a file}
  shift 2
fi
bin=${1:?usage: isolation_run.sh [-o FILE] BENCH_ISOLATION [options...]}
shift
read -r -a extra <<<"${NODUP_BENCH_ISOLATION_ARGS:-}"
args=("$@" "${extra[@]}")

need_cluster=1
for a in "${args[@]}"; do
  [ "$a" = --pg ] && need_cluster=0
done

base=$(mktemp -d /tmp/nodup-bench.XXXXXX)
chmod 755 "$base"            # as root the server runs as pgtest: it must get in
sock=$base/pg/sock
started=0
child=""
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  if [ "$started" = 1 ]; then
    "$here/../scripts/pgcluster.sh" stop "$sock" || echo "isolation_run.sh: could not stop the cluster in $base/pg" >&2
  fi
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pgargs=()
if [ "$need_cluster" = 1 ]; then
  started=1
  "$here/../scripts/pgcluster.sh" start "$sock"
  pgargs=(--pg "host=$sock user=postgres dbname=postgres")
fi

# In the background so that a signal reaches the trap at once.
status=0
"$bin" "${pgargs[@]}" "${args[@]}" >"$base/results.md" &
child=$!
wait "$child" || status=$?
child=""
cat "$base/results.md"
if [ -n "$out" ]; then
  cp "$base/results.md" "$out"
  echo "isolation_run.sh: tables written to $out" >&2
fi
exit "$status"
