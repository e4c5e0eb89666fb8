#!/usr/bin/env bash
# Install the Debian packages nodup needs, only those missing.
#   scripts/deps.sh build   compiler, cmake, libsqlite3, libpq, libicu, libcsv
#   scripts/deps.sh test    + cmocka and a PostgreSQL server for the tests,
#                           node and node_api.h for the Node binding
#   scripts/deps.sh pgversions  test + npm when there is none, for
#                           scripts/pgversions.sh (PostgreSQL 14, 16-18)
#   scripts/deps.sh ci      + clang and valgrind, and npm as pgversions
#   scripts/deps.sh bench   test + the sqlite3 and psql shells and GNU time
#                           (bench/merge_run.sh)
set -euo pipefail
profile=${1:-build}
pkgs=(gcc make cmake pkg-config libsqlite3-dev libpq-dev libicu-dev libcsv-dev)
case "$profile" in
  build) ;;
  test | pgversions) pkgs+=(libcmocka-dev postgresql pgbouncer) ;;
  ci) pkgs+=(libcmocka-dev postgresql pgbouncer clang valgrind) ;;
  bench) pkgs+=(libcmocka-dev postgresql pgbouncer postgresql-client sqlite3 time) ;;
  *) echo "usage: deps.sh build|test|pgversions|ci|bench" >&2; exit 2 ;;
esac
# The Python binding (bindings/python): Debian's headers, and pytest, Django
# and psycopg2 for its tests.
case "$profile" in
  test | pgversions | ci) pkgs+=(python3-dev python3-pytest python3-django python3-psycopg2) ;;
esac
# Any npm will do (a Node.js from elsewhere may bring its own): Debian's
# package only when the command is missing.
case "$profile" in
  pgversions | ci) command -v npm >/dev/null 2>&1 || pkgs+=(npm) ;;
esac
# The Node.js binding's build and tests (bindings/node): Debian's nodejs
# only when there is no node (nodesource's brings its own headers), and
# libnode-dev only when node_api.h is missing; uv.h comes with either
# (nodesource's copy, or libuv1-dev, which libnode-dev depends on).
case "$profile" in
  test | ci)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    [ -e /usr/include/node/node_api.h ] || pkgs+=(libnode-dev)
    [ -e /usr/include/node/uv.h ] || [ -e /usr/include/uv.h ] || pkgs+=(libuv1-dev) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "nodup needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
