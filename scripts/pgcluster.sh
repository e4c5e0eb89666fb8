#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/pgcluster.sh start SOCKDIR   # prints nothing; server listens on SOCKDIR
#   scripts/pgcluster.sh stop  SOCKDIR
#
# The cluster lives in SOCKDIR/.. (a directory the script owns). PostgreSQL
# refuses to run as root, so as root the server runs as a system user
# `pgtest` through runuser (no PAM, no TTY: works in CI). Connect with
# "host=SOCKDIR user=postgres dbname=postgres". fsync is off: tests only.
set -euo pipefail
cmd=${1:?usage: pgcluster.sh start|stop SOCKDIR}
sock=${2:?usage: pgcluster.sh start|stop SOCKDIR}
base=$(dirname "$sock")

pgbin=""
for v in 17 16 15 14; do
  if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then pgbin=/usr/lib/postgresql/$v/bin; break; fi
done
if [ -z "$pgbin" ]; then
  pgbin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
if [ ! -x "$pgbin/initdb" ]; then
  echo "pgcluster.sh: PostgreSQL server binaries (initdb) not found; install postgresql" >&2
  exit 1
fi

as=()
if [ "$(id -u)" = 0 ]; then
  id pgtest >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin pgtest
  as=(runuser -u pgtest --)
fi

case "$cmd" in
start)
  if [ -f "$base/data/postmaster.pid" ]; then
    "${as[@]}" "$pgbin/pg_ctl" -D "$base/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$base"
  mkdir -p "$sock"
  chmod 755 "$base"
  [ ${#as[@]} -gt 0 ] && chown pgtest "$base" "$sock"
  "${as[@]}" "$pgbin/initdb" -D "$base/data" -U postgres -A trust -E UTF8 --locale=C -N >/dev/null
  cat >>"$base/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
  "${as[@]}" "$pgbin/pg_ctl" -D "$base/data" -l "$base/pg.log" -w -t 60 start >/dev/null
  ;;
stop)
  if [ -f "$base/data/postmaster.pid" ]; then
    "${as[@]}" "$pgbin/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null
  fi
  rm -rf "$base"
  ;;
*)
  echo "usage: pgcluster.sh start|stop SOCKDIR" >&2; exit 2 ;;
esac
