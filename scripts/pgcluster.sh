#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/pgcluster.sh start SOCKDIR   # prints nothing; server listens on SOCKDIR
#   scripts/pgcluster.sh stop  SOCKDIR
#   scripts/pgcluster.sh kill  SOCKDIR   # crash it (pg_ctl -m immediate), keep the cluster
#   scripts/pgcluster.sh resume SOCKDIR  # start the killed cluster again (crash recovery)
#
# kill and resume are for tests of what a server restart does to a client
# (test_enforce_leftovers: a restart in the middle of `enforce --online`).
#
# The cluster lives in SOCKDIR/.. (BASE), a directory this script creates
# itself and marks with a file, BASE/.nodup-pgcluster. It deletes BASE only
# when that marker is there: `start` refuses a BASE that exists without it,
# `stop` on a directory it did not make deletes nothing and fails. BASE's
# parent must exist already (it is never created or removed).
#
# Connect with "host=SOCKDIR user=postgres dbname=postgres". fsync is off:
# tests only. synchronous_commit stays on (with fsync off it costs one
# write(), no flush): what a client was told is committed survives `kill`,
# as on a real server; off, a commit younger than the WAL writer's delay is
# lost (test_server_restart_mid_build lost its guard trigger on 17).
#
# Environment:
#   NODUP_PGBIN    directory of initdb/pg_ctl (default: the newest of
#                  /usr/lib/postgresql/*/bin, then initdb on PATH)
#   NODUP_PG_USER  the account the server runs as when this script runs as
#                  root, since PostgreSQL refuses to run as root. Default:
#                  `postgres`, which Debian's postgresql package creates;
#                  without it a system account `pgtest` is created (once,
#                  with a note on stderr; `userdel pgtest` removes it).
set -euo pipefail
usage="usage: pgcluster.sh start|stop|kill|resume SOCKDIR"
cmd=${1:?$usage}
sock=${2:?$usage}
case "$sock" in /*) ;; *) sock="$PWD/$sock" ;; esac
base=$(dirname "$sock")
marker="$base/.nodup-pgcluster"

die() { echo "pgcluster.sh: $*" >&2; exit 1; }

case "$base" in
/ | /tmp | /var/tmp | /root | /home | "${HOME:-/root}") die "refusing $sock: its parent $base is not a directory this script made" ;;
esac

# ours: BASE is a real directory holding our marker (not a symlink to one).
ours() { [ -d "$base" ] && [ ! -L "$base" ] && [ -f "$marker" ] && [ ! -L "$marker" ]; }

# find_server: set pgbin and, as root, the account to run it as (as=...).
# Only what touches a server calls it, so refusals need no PostgreSQL.
pgbin=""
as=()
pguser=""
find_server() {
  pgbin=${NODUP_PGBIN:-}
  if [ -z "$pgbin" ]; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
      if [ -x "$d/initdb" ]; then pgbin=$d; break; fi
    done
  fi
  if [ -z "$pgbin" ]; then
    pgbin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  fi
  [ -x "$pgbin/initdb" ] || die "PostgreSQL server binaries (initdb) not found in ${pgbin}; install postgresql or set NODUP_PGBIN"

  if [ "$(id -u)" = 0 ]; then
    pguser=${NODUP_PG_USER:-}
    if [ -z "$pguser" ]; then
      if id postgres >/dev/null 2>&1; then pguser=postgres; else pguser=pgtest; fi
    fi
    if ! id "$pguser" >/dev/null 2>&1; then
      [ "$pguser" = pgtest ] || die "NODUP_PG_USER=$pguser: no such user"
      useradd --system --no-create-home --shell /usr/sbin/nologin pgtest
      echo "pgcluster.sh: created system user pgtest to run PostgreSQL as (it refuses root);" \
        "remove it with: userdel pgtest" >&2
    fi
    as=(runuser -u "$pguser" --)
  fi
}

server_stop() { # $1: pg_ctl shutdown mode
  if [ -f "$base/data/postmaster.pid" ]; then
    find_server
    "${as[@]}" "$pgbin/pg_ctl" -D "$base/data" -m "$1" -w stop >/dev/null 2>&1 || true
  fi
}

case "$cmd" in
start)
  if [ -e "$base" ] || [ -L "$base" ]; then
    ours || die "$base exists and was not made by pgcluster.sh (no $marker): not touching it"
    server_stop immediate
    rm -rf -- "$base"
  fi
  [ -d "$(dirname "$base")" ] || die "$(dirname "$base") does not exist"
  find_server
  mkdir -m 755 -- "$base"
  echo "made by nodup scripts/pgcluster.sh for a throwaway cluster; 'stop' deletes this directory" >"$marker"
  mkdir -- "$sock"
  [ -n "$pguser" ] && chown "$pguser" "$base" "$sock"
  "${as[@]}" "$pgbin/initdb" -D "$base/data" -U postgres -A trust -E UTF8 --locale=C -N >/dev/null
  cat >>"$base/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$sock'
fsync = off
full_page_writes = off
max_connections = 200
# The database in every line: suites that read the log (test_orm) count only
# their own database's errors while other suites run beside them.
log_line_prefix = '%m [%p] db=%d '
CONF
  "${as[@]}" "$pgbin/pg_ctl" -D "$base/data" -l "$base/pg.log" -w -t 60 start >/dev/null
  ;;
kill)
  ours || die "$base was not made by pgcluster.sh (no $marker): not touching it"
  server_stop immediate
  ;;
resume)
  ours || die "$base was not made by pgcluster.sh (no $marker): not touching it"
  find_server
  "${as[@]}" "$pgbin/pg_ctl" -D "$base/data" -l "$base/pg.log" -w -t 60 start >/dev/null
  ;;
stop)
  [ -e "$base" ] || exit 0
  ours || die "$base was not made by pgcluster.sh (no $marker): deleting nothing"
  server_stop fast
  rm -rf -- "$base"
  ;;
*)
  die "$usage" ;;
esac
