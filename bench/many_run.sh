#!/usr/bin/env bash
# Run bench_many (issue 15: many keys in one call, update-or-create) on a
# throwaway PostgreSQL cluster and a temporary SQLite file, and print its
# Markdown tables: once over the cluster's Unix socket (with SQLite), once
# over TCP on 127.0.0.1, where a round trip costs what a loopback packet
# does (what single calls pay per key).
#
#   bench/many_run.sh [-o FILE] BENCH_MANY
#
# Extra options come from NODUP_MANY_BENCH_ARGS (e.g. "--rounds 3"). As
# bench/run.sh does, the cluster is started with scripts/pgcluster.sh and
# stopped, and everything removed, on any exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=""
if [ "${1:-}" = -o ]; then
  out=${2:?many_run.sh: -o needs a file}
  shift 2
fi
bin=${1:?usage: many_run.sh [-o FILE] BENCH_MANY}
read -r -a args <<<"${NODUP_MANY_BENCH_ARGS:-}"

base=$(mktemp -d /tmp/nodup-bench.XXXXXX)
chmod 755 "$base"
sock=$base/pg/sock
started=0
cleanup() {
  if [ "$started" = 1 ]; then "$here/../scripts/pgcluster.sh" stop "$sock" || true; fi
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$base/sqlite"
started=1
"$here/../scripts/pgcluster.sh" start "$sock"
# A free port on the loopback interface, for the TCP run.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf "listen_addresses = '127.0.0.1'\nport = %s\n" "$port" >>"$base/pg/data/postgresql.conf"
"$here/../scripts/pgcluster.sh" kill "$sock"
"$here/../scripts/pgcluster.sh" resume "$sock"

{
  "$bin" --pg "host=$sock port=$port user=postgres dbname=postgres" --label "PostgreSQL (Unix socket)" \
    --sqlite-dir "$base/sqlite" "${args[@]}"
  echo
  "$bin" --pg "host=127.0.0.1 port=$port user=postgres dbname=postgres" \
    --label "PostgreSQL (TCP, 127.0.0.1)" "${args[@]}"
} | tee "$base/results.md"
if [ -n "$out" ]; then cp "$base/results.md" "$out"; fi
