#!/usr/bin/env bash
# Start or stop a throwaway PgBouncer in transaction pooling mode in front of
# a throwaway PostgreSQL cluster (scripts/pgcluster.sh), for tests and
# benchmarks.
#
#   scripts/pgbouncer.sh start DIR PGSOCKDIR   # listens on DIR/.s.PGSQL.6432
#   scripts/pgbouncer.sh stop  DIR
#
# Connect with "host=DIR port=6432 user=postgres dbname=ANY": every database
# of the cluster is reachable (a `*` entry). The pool is small on purpose
# (NODUP_PGBOUNCER_POOL, default 4 server connections per database and
# user), so clients really share server sessions and anything that relies on
# a session breaks in the tests the way it would in production.
#
# DIR is created by this script and marked with DIR/.nodup-pgbouncer; it is
# deleted only when that marker is there (the same rule as pgcluster.sh).
# As root PgBouncer runs as NODUP_PG_USER (default: postgres), since it
# refuses to run as root.
set -euo pipefail
usage="usage: pgbouncer.sh start DIR PGSOCKDIR | stop DIR"
cmd=${1:?$usage}
dir=${2:?$usage}
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
marker="$dir/.nodup-pgbouncer"
port=6432

die() { echo "pgbouncer.sh: $*" >&2; exit 1; }
ours() { [ -d "$dir" ] && [ ! -L "$dir" ] && [ -f "$marker" ] && [ ! -L "$marker" ]; }

case "$dir" in
/ | /tmp | /var/tmp | /root | /home | "${HOME:-/root}") die "refusing $dir: not a directory this script made" ;;
esac

as=()
user=""
if [ "$(id -u)" = 0 ]; then
  user=${NODUP_PG_USER:-postgres}
  id "$user" >/dev/null 2>&1 || die "user $user does not exist (set NODUP_PG_USER)"
  as=(runuser -u "$user" --)
fi

bouncer_stop() {
  if [ -f "$dir/pgbouncer.pid" ]; then
    local pid
    pid=$(cat "$dir/pgbouncer.pid")
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

case "$cmd" in
start)
  pgsock=${3:?$usage}
  command -v pgbouncer >/dev/null || die "pgbouncer not found; install the Debian package pgbouncer"
  if [ -e "$dir" ] || [ -L "$dir" ]; then
    ours || die "$dir exists and was not made by pgbouncer.sh (no $marker): not touching it"
    bouncer_stop
    rm -rf -- "$dir"
  fi
  mkdir -m 755 -- "$dir"
  echo "made by nodup scripts/pgbouncer.sh; 'stop' deletes this directory" >"$marker"
  echo '"postgres" ""' >"$dir/users.txt"
  cat >"$dir/pgbouncer.ini" <<CONF
[databases]
* = host=$pgsock
[pgbouncer]
listen_addr =
listen_port = $port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = ${NODUP_PGBOUNCER_POOL:-4}
max_client_conn = 1000
max_db_connections = 0
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
CONF
  [ -n "$user" ] && chown -R "$user" "$dir"
  "${as[@]}" pgbouncer -d "$dir/pgbouncer.ini"
  for _ in $(seq 100); do
    [ -S "$dir/.s.PGSQL.$port" ] && exit 0
    sleep 0.1
  done
  die "pgbouncer did not start; its log: $(tail -5 "$dir/pgbouncer.log" 2>/dev/null)"
  ;;
stop)
  [ -e "$dir" ] || exit 0
  ours || die "$dir was not made by pgbouncer.sh (no $marker): deleting nothing"
  bouncer_stop
  rm -rf -- "$dir"
  ;;
*)
  die "$usage" ;;
esac
