#!/usr/bin/env bash
# The lock-time benchmark of issue 12: locked `nodup enforce --merge` (no
# --online) on a table with duplicates and a child whose foreign key column
# has no index, while 8 naive writers (bench_writers: check-then-insert on
# random keys) run against it, on PostgreSQL and SQLite, with nodup's
# temporary index (the default) and with --no-temp-index, side by side.
#
#   bench/enforce_lock_run.sh [-o FILE] NODUP BENCH_WRITERS
#
# Options come from NODUP_BENCH_LOCK_ARGS:
#   --scenarios LIST  big,point2 (default both)
#       big     bench/merge/gen_*.sql at --rows (default 1,000,000: 0.15 N
#               losers; child 3 N, link N, profile N/2, all indexed) plus
#               note (N/3 rows, FK column without an index,
#               bench/merge/gen_note_*.sql)
#       point2  the scenario of issue 12's point 2: bench/lock/gen_*.sql,
#               200,000 rows over 50,000 keys, plus note (66,666 rows, no
#               index on its FK column)
#   --rows N          parent rows of big (default 1000000)
#   --variants LIST   temp,notemp (default both; notemp = --no-temp-index)
#   --rounds R        rounds (default 1); variants rotate their order
#   --only pg|sqlite
#   --writers N       live writers (default 8)
#   --rate R          each writer's operations a second (default 200;
#                     0 = as fast as it can, which on 2 cores takes the CPU
#                     from enforce)
#   --warmup S        seconds the writers run before enforce starts (5);
#                     their throughput then is the baseline
#   --timeout S       a run not done in S seconds is stopped (default 300)
#                     and reported as "did not finish in S s"
#
# Each run starts from a fresh copy of the generated database (PostgreSQL:
# CREATE DATABASE ... TEMPLATE; SQLite: a file copy), starts the writers,
# waits --warmup, runs `nodup enforce --table parent --key k --merge
# --format json` under GNU time, lets the writers run 2 s more and stops
# them. It reports the enforce wall time, lock_ms (nodup's JSON: how long the
# table lock / SQLite write lock was held), the writers' throughput before
# and during the run (ratio of the two, measured side by side), their
# longest single operation during the run, and checks the end state: a
# unique index on parent(k), zero duplicate keys, no nodup_fk_* index left.
# The cluster (fsync off) is started with scripts/pgcluster.sh; everything
# is in one mktemp directory, removed on any exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

out=""
if [ "${1:-}" = -o ]; then
  out=${2:?enforce_lock_run.sh: -o needs a file}
  shift 2
fi
usage="usage: enforce_lock_run.sh [-o FILE] NODUP BENCH_WRITERS"
nodup=${1:?$usage}
writers_bin=${2:?$usage}
scenarios=big,point2 rows=1000000 variants=temp,notemp rounds=1 only="" nwriters=8 warmup=5
rate=200
cap=300
read -r -a args <<<"${NODUP_BENCH_LOCK_ARGS:-}"
set -- "${args[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --scenarios) scenarios=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --writers) nwriters=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --timeout) cap=$2; shift 2 ;;
    *) echo "enforce_lock_run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in psql sqlite3 /usr/bin/time timeout; do
  command -v "$tool" >/dev/null || { echo "enforce_lock_run.sh: needs $tool (scripts/deps.sh bench)" >&2; exit 2; }
done
IFS=, read -r -a slist <<<"$scenarios"
IFS=, read -r -a vlist <<<"$variants"

base=$(mktemp -d /tmp/nodup-bl.XXXXXX)
chmod 755 "$base"
sock=$base/pg/sock
started=0
wpid=""
cleanup() {
  if [ -n "$wpid" ]; then kill -TERM "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true; fi
  if [ "$started" = 1 ]; then
    "$here/../scripts/pgcluster.sh" stop "$sock" || echo "enforce_lock_run.sh: could not stop the cluster in $base/pg" >&2
  fi
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "enforce_lock_run.sh: $*" >&2; }
pg() { psql -X -q -At -h "$sock" -U postgres "$@"; }

# sizes SCENARIO: "rows keys" (keys: the generated key indexes are 0..keys-1)
sizes() {
  if [ "$1" = big ]; then echo "$rows $((rows * 85 / 100))"; else echo "200000 50000"; fi
}

generate() {  # ENGINE SCENARIO
  local engine=$1 sc=$2 n k t0 gen
  read -r n k <<<"$(sizes "$sc")"
  t0=$(date +%s)
  if [ "$sc" = big ]; then gen=$here/merge/gen_$engine.sql; else gen=$here/lock/gen_$engine.sql; fi
  if [ "$engine" = pg ]; then
    pg -d postgres -c "CREATE DATABASE bl_$sc"
    { echo "CREATE TEMP TABLE gen_param AS SELECT CAST($n AS bigint) AS n, CAST($k AS bigint) AS keys;"
      cat "$gen" "$here/merge/gen_note_pg.sql"
      echo "CREATE SEQUENCE parent_id_seq START WITH $((n + 1));"; } | pg -d "bl_$sc" >/dev/null
  else
    { echo "CREATE TEMP TABLE gen_param AS SELECT $n AS n, $k AS keys;"
      cat "$gen" "$here/merge/gen_note_sqlite.sql"; } | sqlite3 "$base/$sc.db" >/dev/null
    sqlite3 "$base/$sc.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  fi
  log "$engine $sc: generated $n parent rows ($k keys, $((n / 3)) note rows) in $(($(date +%s) - t0)) s"
}

fresh() {  # ENGINE SCENARIO: a new copy; prints the --db argument
  if [ "$1" = pg ]; then
    pg -d postgres -c "DROP DATABASE IF EXISTS bl WITH (FORCE)" -c "CREATE DATABASE bl TEMPLATE bl_$2" -c "CHECKPOINT"
    echo "host=$sock user=postgres dbname=bl"
  else
    rm -f "$base/bl.db" "$base/bl.db-wal" "$base/bl.db-shm"
    cp "$base/$2.db" "$base/bl.db"
    echo "$base/bl.db"
  fi
}

q() {  # ENGINE SQL: one value from the run's database
  if [ "$1" = pg ]; then pg -d bl -c "$2"; else sqlite3 "$base/bl.db" "$2"; fi
}

# endstate ENGINE: "unique-index-name|duplicate-keys|leftover-temp-indexes"
endstate() {
  local uidx dups left
  if [ "$1" = pg ]; then
    uidx=$(q pg "SELECT string_agg(i.relname, ',') FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                 WHERE x.indrelid = 'parent'::regclass AND x.indisunique AND x.indisvalid
                   AND x.indkey::text = (SELECT attnum::text FROM pg_attribute
                                         WHERE attrelid = 'parent'::regclass AND attname = 'k')")
    left=$(q pg "SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relname LIKE 'nodup\_fk\_%'")
  else
    uidx=$(q sqlite "SELECT group_concat(l.name) FROM pragma_index_list('parent') AS l
                     WHERE l.\"unique\" AND (SELECT group_concat(name) FROM pragma_index_info(l.name)) = 'k'")
    left=$(q sqlite "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'nodup\_fk\_%' ESCAPE '\\'")
  fi
  dups=$(q "$1" "SELECT count(*) FROM (SELECT k FROM parent GROUP BY k HAVING count(*) > 1) AS d")
  echo "${uidx:-none}|$dups|$left"
}

# json_num FILE KEY
json_num() { sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" "$1" | head -1; }
json_str() { sed -n "s/.*\"$2\": \(\"[^\"]*\"\|null\).*/\1/p" "$1" | head -1; }

# one ENGINE SCENARIO VARIANT: prints a table row, appends details to $base/runs
one() {
  local engine=$1 sc=$2 v=$3 db n k ts te rc secs lock tmpidx st wargs=() extra=()
  read -r n k <<<"$(sizes "$sc")"
  db=$(fresh "$engine" "$sc")
  if [ "$engine" = pg ]; then wargs=(--pg "$db"); else wargs=(--sqlite "$db"); fi
  [ "$v" = notemp ] && extra=(--no-temp-index)
  "$writers_bin" "${wargs[@]}" --keys "$k" --threads "$nwriters" --rate "$rate" >"$base/writers.out" 2>"$base/writers.err" &
  wpid=$!
  sleep "$warmup"
  ts=$(date +%s.%N)
  rc=0
  /usr/bin/time -f "%e" -o "$base/time.out" timeout -s TERM "$cap" \
    "$nodup" enforce --db "$db" --table parent --key k --merge --format json "${extra[@]}" \
    >"$base/enforce.json" 2>"$base/enforce.err" || rc=$?
  te=$(date +%s.%N)
  sleep 2
  kill -TERM "$wpid"; wait "$wpid" || true; wpid=""
  if [ "$rc" = 124 ]; then
    # the client is gone; end its backend too, so that it stops using the CPU
    [ "$engine" = pg ] && pg -d postgres -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'bl' AND pid <> pg_backend_pid()" >/dev/null
    secs="did not finish in $cap s"; lock="—"; tmpidx="—"
  elif [ "$rc" != 0 ]; then
    log "$engine $sc $v: nodup enforce failed ($rc):"; cat "$base/enforce.err" >&2; cat "$base/enforce.json" >&2
    secs="failed (exit $rc)"; lock="—"; tmpidx="—"; failures=$((failures + 1))
  else
    secs="$(awk -v a="$ts" -v b="$te" 'BEGIN { printf "%.1f s", b - a }')"
    lock="$(awk -v l="$(json_num "$base/enforce.json" lock_ms)" 'BEGIN { printf "%.0f ms", l }')"
    tmpidx=$(json_str "$base/enforce.json" temp_indexes)
    [ "$tmpidx" = null ] && tmpidx="none" || tmpidx="1 (note)"
  fi
  st=$(endstate "$engine")
  IFS='|' read -r uidx dups left <<<"$st"
  if [ "$rc" = 0 ] && { [ "$uidx" = none ] || [ "$dups" != 0 ] || [ "$left" != 0 ]; }; then
    log "$engine $sc $v: end state wrong: unique index $uidx, $dups duplicate keys, $left temp indexes left"
    failures=$((failures + 1))
  fi
  # writers: per-second lines "t ops inserts refused errors maxlat_ms"
  local w
  w=$(awk -v ts="$ts" -v te="$te" '
    NR == 1 { first = $1 }
    $1 >= first + 1 && $1 + 1 <= ts { bo += $2; bn++ }   # warm-up seconds, the first left out
    $1 >= ts && $1 + 1 <= te { dop += $2; dn++ }          # seconds wholly inside the run
    $1 + 1 > ts && $1 < te { oop += $2; on++; ins += $3; ref += $4; err += $5; if ($6 > ml) ml = $6 }
    END {
      if (!dn) { dop = oop; dn = on }                     # a run shorter than a whole second
      b = bn ? bo / bn : 0; d = dn ? dop / dn : 0
      printf "%.0f|%.0f|%s|%.0f|%d|%d|%d", b, d, (b > 0 && dn) ? sprintf("%.2f", d / b) : "—", ml, ins, ref, err
    }' "$base/writers.out")
  IFS='|' read -r wb wd wr wml wins wref werr <<<"$w"
  [ "$werr" != 0 ] && { log "$engine $sc $v: writers had $werr errors:"; sort "$base/writers.err" | uniq -c | head -5 >&2; }
  log "$engine $sc $v: $secs, lock $lock, writers $wb -> $wd ops/s, longest op $wml ms, end: $uidx, $dups dups, $left temp left"
  cp "$base/enforce.json" "$base/last-$engine-$sc-$v.json" 2>/dev/null || true
  echo "| $(label "$v") | $secs | $lock | $wb | $wd | $wr× | $wml ms | $wins | $werr | $uidx, $dups duplicate keys | $tmpidx, $left left |"
}

label() {
  case "$1" in
    temp) echo "enforce --merge (temporary index on note)" ;;
    notemp) echo "enforce --merge --no-temp-index" ;;
  esac
}

report=$base/report.md
: >"$report"
engines=(pg sqlite)
[ -n "$only" ] && engines=("$only")
failures=0
for engine in "${engines[@]}"; do
  if [ "$engine" = pg ] && [ "$started" = 0 ]; then
    started=1
    "$here/../scripts/pgcluster.sh" start "$sock"
  fi
  if [ "$engine" = pg ]; then
    title="PostgreSQL $(pg -d postgres -c "SHOW server_version")"
  else
    title="SQLite $(sqlite3 :memory: 'SELECT sqlite_version()')"
  fi
  for sc in "${slist[@]}"; do
    generate "$engine" "$sc"
    read -r n k <<<"$(sizes "$sc")"
    {
      if [ "$sc" = big ]; then
        echo "#### $title: locked enforce --merge, $n parent rows ($((n / 10)) duplicated keys, $((n * 15 / 100)) losers), $nwriters live writers"
        echo
        echo "Children: $((3 * n)) child, $n link, $((n / 2)) profile rows (indexed FK columns) and $((n / 3)) note rows whose FK column has no index."
      else
        echo "#### $title: locked enforce --merge, point-2 scenario: $n parent rows over $k keys ($((n - k)) losers), $nwriters live writers"
        echo
        echo "Child: $((n / 3)) note rows whose FK column has no index."
      fi
      echo "Writers: check-then-insert on random keys (half existing, half new), each paced to $rate ops/s (0: unpaced); ops/s over the ${warmup} s before enforce and over the whole seconds during it; longest op = the slowest single writer operation that ended during the run. A run is stopped after $cap s."
      echo
      echo "| method | enforce time | lock held (lock_ms) | writers before (ops/s) | writers during (ops/s) | during/before | longest writer op | rows inserted during | writer errors | end: unique index, duplicates | temp indexes |"
      echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
    } >>"$report"
    for ((r = 0; r < rounds; r++)); do
      nv=${#vlist[@]}
      for ((i = 0; i < nv; i++)); do
        v=${vlist[$(((i + r) % nv))]}
        one "$engine" "$sc" "$v" >>"$report"
      done
    done
    echo >>"$report"
    [ "$engine" = pg ] && pg -d postgres -c "DROP DATABASE IF EXISTS bl WITH (FORCE)" -c "DROP DATABASE bl_$sc" >/dev/null
    [ "$engine" = sqlite ] && rm -f "$base/$sc.db" "$base/bl.db" "$base/bl.db-wal" "$base/bl.db-shm"
  done
done
[ "$failures" = 0 ] || echo "**$failures runs failed or ended in a wrong state (see stderr).**" >>"$report"
cat "$report"
if [ -n "$out" ]; then
  cp "$report" "$out"
  log "tables written to $out"
fi
[ "$failures" = 0 ]
