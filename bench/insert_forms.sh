#!/usr/bin/env bash
# What nodup's insert form costs the server against a plain insert, with
# nothing else in the way: pgbench runs the two statements alone, prepared,
# on one throwaway cluster, in alternating pairs, and reports per client
# count the medians of throughput and of whole-machine CPU per statement
# (/proc/stat busy time over the run, server and pgbench together: the
# machine runs nothing else).
#
#   bench/insert_forms.sh [--pairs N] [--seconds S] [--clients 1,4,16]
#
# plain: INSERT ... VALUES ... ON CONFLICT DO NOTHING RETURNING id, the
#        cheapest statement that creates a row and returns its id; on a hit
#        it still evaluates the column defaults (a sequence value is used).
# nodup: nodup's insert-if-absent (key.c, insert_sql): INSERT ... SELECT
#        FROM (SELECT $1 ...) WHERE NOT EXISTS (the key's row) ON CONFLICT
#        DO NOTHING RETURNING id, whose NOT EXISTS keeps a hit from
#        evaluating any default.
# Every call is a miss (a random key out of 10^12), as in bench_goc's misses
# mix. Ratios are taken pair by pair (the two ran one after the other), then
# the median and range over the pairs; a CPU ratio is plain's CPU over
# nodup's, so below 1 means nodup's form costs more.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pairs=10 seconds=4 clients="1,4,16"
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=${2:?insert_forms.sh: --pairs needs a number}; shift 2 ;;
    --seconds) seconds=${2:?insert_forms.sh: --seconds needs a number}; shift 2 ;;
    --clients) clients=${2:?insert_forms.sh: --clients needs a list}; shift 2 ;;
    *) echo "usage: insert_forms.sh [--pairs N] [--seconds S] [--clients 1,4,16]" >&2; exit 2 ;;
  esac
done
for tool in pgbench psql python3; do
  command -v "$tool" >/dev/null || { echo "insert_forms.sh: $tool not found (Debian: postgresql-client, python3)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/nodup-forms.XXXXXX)
chmod 755 "$work"            # as root the server runs as another account: it must get in
sock="$work/pg/sock"
cleanup() {
  "$here/../scripts/pgcluster.sh" stop "$sock" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM     # stop here; the EXIT trap removes the cluster
"$here/../scripts/pgcluster.sh" start "$sock"
conn="host=$sock user=postgres dbname=postgres"
psql -X -q "$conn" -c "CREATE TABLE t (id serial PRIMARY KEY, k text NOT NULL UNIQUE, v text)"

cat >"$work/plain.sql" <<'EOF'
\set r random(1, 1000000000000)
INSERT INTO t (k, v) VALUES ('k' || :r, 'v') ON CONFLICT (k) DO NOTHING RETURNING id;
EOF
cat >"$work/nodup.sql" <<'EOF'
\set r random(1, 1000000000000)
INSERT INTO t (k, v) SELECT k, v FROM (SELECT 'k' || :r AS k, 'v' AS v) AS nodup_new WHERE NOT EXISTS (SELECT 1 FROM t AS nodup_old WHERE nodup_old.k = nodup_new.k) ON CONFLICT (k) DO NOTHING RETURNING id;
EOF

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
hz=$(getconf CLK_TCK)
# one FORM CLIENTS: "tps cpu_us_per_statement"
one() {
  local b e out n tps
  b=$(busy)
  out=$(pgbench -n -M prepared -c "$2" -j "$2" -T "$seconds" -f "$work/$1.sql" "$conn" 2>&1)
  e=$(busy)
  n=$(awk '/number of transactions actually processed/{print $6}' <<<"$out")
  # pgbench before 14 prints two tps lines (with and without connecting).
  tps=$(awk '/^tps/{print $3; exit}' <<<"$out")
  if [ -z "$n" ] || [ "$n" = 0 ]; then
    echo "insert_forms.sh: pgbench ($1, $2 clients) failed:" >&2
    echo "$out" >&2
    exit 1
  fi
  awk -v b="$b" -v e="$e" -v n="$n" -v hz="$hz" -v tps="$tps" \
    'BEGIN{printf "%s %.2f\n", tps, (e-b)/hz*1e6/n}'
}

echo "| clients | plain statements/s | nodup statements/s | nodup/plain (throughput) | plain CPU µs | nodup CPU µs | plain/nodup by CPU |"
echo "|--:|--:|--:|--:|--:|--:|--:|"
IFS=, read -r -a clist <<<"$clients"
for c in "${clist[@]}"; do
  : >"$work/rows"
  for ((i = 1; i <= pairs; i++)); do
    # Alternate which form goes first, so neither always follows the other.
    if ((i % 2)); then a=plain b=nodup; else a=nodup b=plain; fi
    ra=$(one $a "$c"); rb=$(one $b "$c")
    echo "$a $ra $b $rb" >>"$work/rows"
    echo "insert_forms.sh: $c clients, pair $i/$pairs: $a $ra, $b $rb" >&2
  done
  python3 - "$c" "$work/rows" <<'EOF'
import statistics as st, sys
c, path = sys.argv[1], sys.argv[2]
pairs = []
for line in open(path):
    f = line.split()
    d = {f[0]: (float(f[1]), float(f[2])), f[3]: (float(f[4]), float(f[5]))}
    pairs.append(d)
def med(xs): return st.median(xs)
t = [p["nodup"][0] / p["plain"][0] for p in pairs]
u = [p["plain"][1] / p["nodup"][1] for p in pairs]
print("| %s | %s | %s | %.2f× (%.2f–%.2f) | %.1f | %.1f | %.2f× (%.2f–%.2f) |" % (
    c, format(round(med(p["plain"][0] for p in pairs)), ","),
    format(round(med(p["nodup"][0] for p in pairs)), ","),
    med(t), min(t), max(t), med(p["plain"][1] for p in pairs),
    med(p["nodup"][1] for p in pairs), med(u), min(u), max(u)))
EOF
done
