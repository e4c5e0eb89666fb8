#!/usr/bin/env bash
# The merge benchmark (issue 3): `nodup merge` against the limit (a
# hand-written set-based SQL merge in one transaction, bench/merge/hand_*.sql)
# and a per-group loop (bench_merge_loop), on the generated database of
# bench/merge/gen_*.sql, PostgreSQL and SQLite, in one run.
#
#   bench/merge_run.sh [-o FILE] NODUP BENCH_MERGE_LOOP
#
# Options come from NODUP_BENCH_MERGE_ARGS:
#   --rows N        parent rows (default 1000000; 0.15 N losers, 3 N child,
#                   N link and N/2 profile rows)
#   --rounds R      rounds (default 3); methods rotate their order per round
#   --only pg|sqlite
#   --methods LIST  default nodup,noarchive,one,one-noarchive,hand,loop
#                   (one: nodup merge --batch N, every group in one
#                   transaction, as the hand-written SQL; batchG: nodup
#                   merge --batch G, batches of G groups); with --unindexed
#                   nodup,notemp,hand (notemp: nodup merge --no-temp-index)
#                   before-METHOD: METHOD run by the nodup binary in
#                   $NODUP_BENCH_BEFORE (an older build), side by side
#   --unindexed     add the unindexed child of issue 12: note, N/3 rows, a
#                   foreign key to parent with no index on its column
#                   (bench/merge/gen_note_*.sql); hand re-points it too
#                   (bench/merge/hand_note.sql), with no index either; the
#                   loop does not know it and is refused. Each loser's
#                   foreign key check then reads note whole unless something
#                   indexes it (quadratic): use --rows 100000 or so.
#
# Every method starts from a fresh copy of one generated database
# (PostgreSQL: CREATE DATABASE ... TEMPLATE; SQLite: a file copy) and ends
# with a fingerprint of the four tables (counts and sums of ids and
# references), which must equal every other method's in the round: the same
# merge, not just a fast one. Time and peak RSS come from GNU time, per
# process. Ratios are computed round by round from methods run side by
# side, then the median (and range) is reported. The cluster (fsync off) is
# started with scripts/pgcluster.sh and removed on any exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

out=""
if [ "${1:-}" = -o ]; then
  out=${2:?merge_run.sh: -o needs a file}
  shift 2
fi
usage="usage: merge_run.sh [-o FILE] NODUP BENCH_MERGE_LOOP"
nodup=${1:?$usage}
loop=${2:?$usage}
rows=1000000 rounds=3 only="" methods="" unindexed=0
read -r -a args <<<"${NODUP_BENCH_MERGE_ARGS:-}"
set -- "${args[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --unindexed) unindexed=1; shift ;;
    *) echo "merge_run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for bin in "$nodup" "$loop" ${NODUP_BENCH_BEFORE:+"$NODUP_BENCH_BEFORE"}; do
  [ -x "$bin" ] || { echo "merge_run.sh: $bin is not an executable" >&2; exit 2; }
done
for tool in psql sqlite3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "merge_run.sh: needs $tool (scripts/deps.sh bench)" >&2; exit 2; }
done
if [ -z "$methods" ]; then
  methods="nodup,noarchive,one,one-noarchive,hand,loop"
  if [ "$unindexed" = 1 ]; then methods="nodup,notemp,hand"; fi
fi
IFS=, read -r -a mlist <<<"$methods"
if [ "$unindexed" = 1 ]; then
  for m in "${mlist[@]}"; do
    [ "$m" = loop ] && { echo "merge_run.sh: the loop does not re-point note: not with --unindexed" >&2; exit 2; }
  done
fi

base=$(mktemp -d /tmp/nodup-bm.XXXXXX)
chmod 755 "$base"
sock=$base/pg/sock
started=0
cleanup() {
  if [ "$started" = 1 ]; then
    "$here/../scripts/pgcluster.sh" stop "$sock" || echo "merge_run.sh: could not stop the cluster in $base/pg" >&2
  fi
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "merge_run.sh: $*" >&2; }

# fingerprint ENGINE TARGET: one line that two identical merges share.
fp_sql="SELECT (SELECT count(*) || '/' || sum(id) FROM parent) || ' ' ||
  (SELECT count(*) || '/' || sum(id) || '/' || sum(parent_id) FROM child) || ' ' ||
  (SELECT count(*) || '/' || sum(id) || '/' || sum(parent_id) || '/' || sum(owner) FROM link) || ' ' ||
  (SELECT count(*) || '/' || sum(id) || '/' || sum(parent_id) FROM profile)"
if [ "$unindexed" = 1 ]; then
  fp_sql="$fp_sql || ' ' || (SELECT count(*) || '/' || sum(id) || '/' || sum(parent_id) FROM note)"
fi
fingerprint() {
  if [ "$1" = pg ]; then psql -X -At -h "$sock" -U postgres -d bm -c "$fp_sql"
  else sqlite3 "$2" "$fp_sql"; fi
}

# hand_sql ENGINE: the hand-written merge's file; with --unindexed a copy
# with hand_note.sql in place of its "-- @note" line.
hand_sql() {
  local f=$here/merge/hand_$1.sql
  if [ "$unindexed" = 1 ]; then
    awk -v note="$here/merge/hand_note.sql" '/^-- @note/ { while ((getline l < note) > 0) print l; next } { print }' \
      "$f" >"$base/hand_$1.sql"
    f=$base/hand_$1.sql
  fi
  echo "$f"
}

# timed ENGINE METHOD TARGET: run one method, print "seconds maxrss_kib".
timed() {
  local engine=$1 method=$2 target=$3 conn nodup=$nodup
  if [ "${method#before-}" != "$method" ]; then
    nodup=${NODUP_BENCH_BEFORE:?merge_run.sh: a before- method needs NODUP_BENCH_BEFORE}
    method=${method#before-}
  fi
  local tf=$base/time.out lf=$base/method.log
  conn="host=$sock user=postgres dbname=bm"
  [ "$engine" = sqlite ] && conn=$target
  local cmd=()
  case "$method" in
    nodup) cmd=("$nodup" merge --db "$conn" --table parent --key k) ;;
    noarchive) cmd=("$nodup" merge --db "$conn" --table parent --key k --no-archive) ;;
    notemp) cmd=("$nodup" merge --db "$conn" --table parent --key k --no-temp-index) ;;
    one) cmd=("$nodup" merge --db "$conn" --table parent --key k --batch "$rows") ;;
    one-noarchive) cmd=("$nodup" merge --db "$conn" --table parent --key k --batch "$rows" --no-archive) ;;
    batch[0-9]*) cmd=("$nodup" merge --db "$conn" --table parent --key k --batch "${method#batch}") ;;
    hand)
      if [ "$engine" = pg ]; then cmd=(psql -X -q -h "$sock" -U postgres -d bm -f "$(hand_sql pg)")
      else cmd=(sh -c 'exec sqlite3 "$1" < "$2"' sh "$target" "$(hand_sql sqlite)"); fi ;;
    loop)
      if [ "$engine" = pg ]; then cmd=("$loop" --pg "$conn"); else cmd=("$loop" --sqlite "$target"); fi ;;
    *) echo "merge_run.sh: unknown method $method" >&2; exit 2 ;;
  esac
  if ! /usr/bin/time -f "%e %M" -o "$tf" "${cmd[@]}" >"$lf" 2>&1; then
    log "$engine $method failed:"; cat "$lf" >&2; exit 1
  fi
  cat "$tf"
}

# fresh ENGINE: a new copy of the generated database; prints the SQLite path.
fresh() {
  if [ "$1" = pg ]; then
    psql -X -q -h "$sock" -U postgres -d postgres -c "DROP DATABASE IF EXISTS bm" \
      -c "CREATE DATABASE bm TEMPLATE bm_template" -c "CHECKPOINT"
  else
    rm -f "$base/bm.db" "$base/bm.db-wal" "$base/bm.db-shm"
    cp "$base/template.db" "$base/bm.db"
    echo "$base/bm.db"
  fi
}

generate() {
  local t0 t1
  t0=$(date +%s)
  if [ "$1" = pg ]; then
    psql -X -q -h "$sock" -U postgres -d postgres -c "CREATE DATABASE bm_template"
    { echo "CREATE TEMP TABLE gen_param AS SELECT CAST($rows AS bigint) AS n;"; cat "$here/merge/gen_pg.sql"
      if [ "$unindexed" = 1 ]; then cat "$here/merge/gen_note_pg.sql"; fi; } |
      psql -X -q -h "$sock" -U postgres -d bm_template >/dev/null
  else
    { echo "CREATE TEMP TABLE gen_param AS SELECT $rows AS n;"; cat "$here/merge/gen_sqlite.sql"
      if [ "$unindexed" = 1 ]; then cat "$here/merge/gen_note_sqlite.sql"; fi; } |
      sqlite3 "$base/template.db" >/dev/null
    sqlite3 "$base/template.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  fi
  t1=$(date +%s)
  log "$1: generated $rows parent rows in $((t1 - t0)) s"
}

# stats LIST: "median (min–max)" of numbers.
stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf "%.2f (%.2f–%.2f)", m, v[1], v[NR] }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

label() {
  if [ "${1#before-}" != "$1" ]; then echo "before: $(label "${1#before-}")"; return; fi
  case "$1" in
    nodup) echo "nodup merge (batches of about 0.5 s; archive + undo log)" ;;
    noarchive) echo "nodup merge --no-archive (batches of about 0.5 s)" ;;
    notemp) echo "nodup merge --no-temp-index (batches of about 0.5 s; archive + undo log)" ;;
    one) echo "nodup merge --batch $rows (one transaction; archive + undo log)" ;;
    one-noarchive) echo "nodup merge --batch $rows --no-archive (one transaction)" ;;
    batch[0-9]*) echo "nodup merge --batch ${1#batch} (batches of ${1#batch} groups; archive + undo log)" ;;
    hand) echo "hand-written set-based SQL, one transaction (the limit)" ;;
    loop) echo "per-group loop (6 statements + 1 transaction per group)" ;;
  esac
}

report=$base/report.md
: >"$report"
engines=(pg sqlite)
[ -n "$only" ] && engines=("$only")
status=0
for engine in "${engines[@]}"; do
  if [ "$engine" = pg ] && [ "$started" = 0 ]; then
    started=1
    "$here/../scripts/pgcluster.sh" start "$sock"
  fi
  generate "$engine"
  declare -A secs=() rss=()
  fails=0
  for ((r = 0; r < rounds; r++)); do
    n=${#mlist[@]}
    ref=""
    for ((i = 0; i < n; i++)); do
      m=${mlist[$(((i + r) % n))]}
      target=$(fresh "$engine")
      timed "$engine" "$m" "$target" >"$base/timed"
      read -r s k <"$base/timed"
      f=$(fingerprint "$engine" "$target")
      if [ -z "$ref" ]; then ref=$f
      elif [ "$f" != "$ref" ]; then
        log "$engine round $((r + 1)): $m ended with $f, another method with $ref"; fails=$((fails + 1))
      fi
      secs[$m]="${secs[$m]:-} $s"
      rss[$m]="${rss[$m]:-} $k"
      log "$engine round $((r + 1)): $m ${s} s, peak RSS $((k / 1024)) MiB"
    done
  done
  if [ "$engine" = pg ]; then
    ver=$(psql -X -At -h "$sock" -U postgres -d postgres -c "SHOW server_version")
    title="PostgreSQL $ver"
  else
    title="SQLite $(sqlite3 :memory: 'SELECT sqlite_version()')"
  fi
  losers=$((rows * 15 / 100))
  {
    echo "#### $title: merge of $rows parent rows ($((rows / 10)) duplicated keys, $losers losers)"
    echo
    notes=""
    if [ "$unindexed" = 1 ]; then notes=", $((rows / 3)) rows of note, whose foreign key column has no index"; fi
    echo "Children: $((3 * rows)) plain FK rows, $rows link rows (UNIQUE (owner, parent_id)), $((rows / 2)) one-to-one rows$notes. Median of $rounds rounds, methods rotating; a ratio is computed per round from runs side by side (median, range)."
    echo
    echo "| method | time | vs hand-written SQL (time ratio) | speed-up over the loop | peak RSS |"
    echo "|---|--:|--:|--:|--:|"
    for m in "${mlist[@]}"; do
      read -r -a sv <<<"${secs[$m]}"
      read -r -a kv <<<"${rss[$m]}"
      vs_hand="" vs_loop=""
      if [ -n "${secs[hand]:-}" ]; then
        read -r -a hv <<<"${secs[hand]}"
        ratios=(); for ((j = 0; j < rounds; j++)); do ratios+=("$(awk -v a="${sv[$j]}" -v b="${hv[$j]}" 'BEGIN { printf "%.4f", a / b }')"); done
        vs_hand="$(stats "${ratios[@]}")×"
      fi
      if [ -n "${secs[loop]:-}" ]; then
        read -r -a lv <<<"${secs[loop]}"
        ratios=(); for ((j = 0; j < rounds; j++)); do ratios+=("$(awk -v a="${lv[$j]}" -v b="${sv[$j]}" 'BEGIN { printf "%.4f", a / b }')"); done
        vs_loop="$(stats "${ratios[@]}")×"
      fi
      peak=$(printf '%s\n' "${kv[@]}" | sort -g | tail -1)
      echo "| $(label "$m") | $(median "${sv[@]}") s | $vs_hand | $vs_loop | $(awk -v k="$peak" 'BEGIN { printf "%.1f MiB", k / 1024 }') |"
    done
    echo
    if [ "$fails" = 0 ]; then
      echo "Checks: in every round every method ended with the same rows (counts and sums of ids and references of parent, child, link and profile$([ "$unindexed" = 1 ] && echo ", note"))."
    else
      echo "Checks: **$fails method runs ended with different rows** (see stderr)."
    fi
    echo
  } >>"$report"
  [ "$fails" = 0 ] || status=1
  unset secs rss
done
cat "$report"
if [ -n "$out" ]; then
  cp "$report" "$out"
  log "tables written to $out"
fi
exit "$status"
