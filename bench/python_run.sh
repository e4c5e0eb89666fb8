#!/usr/bin/env bash
# The Python binding's benchmark (bench/python_goc.py) on a throwaway
# PostgreSQL cluster, started and always stopped here.
#   bench/python_run.sh PYTHON PYTHONPATH_DIR C_LOOP [python_goc.py options]
# `cmake --build build --target bench_python` runs it with the build's own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${1:?usage: python_run.sh PYTHON PYTHONPATH_DIR C_LOOP [options]}
pypath=${2:?}
cloop=${3:?}
shift 3
base=$(mktemp -d /tmp/nodup-pybench.XXXXXX)
chmod 755 "$base"            # as root the server runs as another user: it must get in
sock=$base/pg/sock
started=0
cleanup() {
  if [ "$started" = 1 ]; then
    "$here/../scripts/pgcluster.sh" stop "$sock" || echo "python_run.sh: could not stop the cluster in $base/pg" >&2
  fi
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
started=1
"$here/../scripts/pgcluster.sh" start "$sock"
PYTHONPATH=$pypath "$python" "$here/python_goc.py" \
  --pg "host=$sock user=postgres dbname=postgres" --c-loop "$cloop" "$@"
