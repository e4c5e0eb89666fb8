#!/usr/bin/env bash
# Run the get-or-create benchmark on a throwaway PostgreSQL cluster, a
# PgBouncer in transaction mode in front of it and a temporary SQLite file,
# and print its Markdown tables.
#
#   bench/run.sh [-o FILE] BENCH_GOC [bench_goc options...]
#
# Starts a cluster with scripts/pgcluster.sh on a short socket directory
# under /tmp (Unix sockets have a ~100-byte path limit) and a pooler with
# scripts/pgbouncer.sh (pool size NODUP_BENCH_POOL, default 16: one server
# connection per client at the largest client count, so no client queues for
# one), runs BENCH_GOC against the cluster directly, through the pooler and
# against SQLite in a temporary directory, and stops both and removes
# everything on any exit, failure or Ctrl-C. The tables go to stdout and,
# with -o, to FILE as well; progress goes to stderr. Options for bench_goc
# come after BENCH_GOC or from NODUP_BENCH_ARGS (NODUP_BENCH_ARGS="--seconds
# 1 --rounds 1"); with --pg CONNINFO no cluster or pooler is started, with
# --only sqlite none is needed, and the pooler only when --only names
# pooled (or is not given).
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

own_pg=0
only=""
prev=""
for a in "${args[@]}"; do
  [ "$a" = --pg ] && own_pg=1
  [ "$prev" = --only ] && only=$a
  prev=$a
done
need_cluster=1
need_pooler=1
if [ "$own_pg" = 1 ]; then
  need_cluster=0
  need_pooler=0
elif [ -n "$only" ]; then
  case ",$only," in *,pg,* | *,pooled,*) ;; *) need_cluster=0 ;; esac
  case ",$only," in *,pooled,*) ;; *) need_pooler=0 ;; esac
fi

base=$(mktemp -d /tmp/nodup-bench.XXXXXX)
chmod 755 "$base"            # as root the server runs as pgtest: it must get in
sock=$base/pg/sock           # pgcluster.sh owns $base/pg
bouncer=$base/bouncer        # and pgbouncer.sh $base/bouncer
started=0
pooler=0
child=""
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  if [ "$pooler" = 1 ]; then
    "$here/../scripts/pgbouncer.sh" stop "$bouncer" || echo "run.sh: could not stop the pooler in $bouncer" >&2
  fi
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
if [ "$need_cluster" = 1 ] && [ "$need_pooler" = 1 ]; then
  pool=${NODUP_BENCH_POOL:-16}
  pooler=1
  NODUP_PGBOUNCER_POOL=$pool "$here/../scripts/pgbouncer.sh" start "$bouncer" "$sock"
  for _ in $(seq 50); do [ -s "$bouncer/pgbouncer.pid" ] && break; sleep 0.1; done
  pgargs+=(--pooled "host=$bouncer port=6432 user=postgres dbname=postgres"
    --pooler-pid "$(cat "$bouncer/pgbouncer.pid")"
    --pooler-label "$(pgbouncer --version | head -1), pool_mode=transaction, default_pool_size=$pool")
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
