#!/usr/bin/env bash
# tests/cli/run.sh NODUP_BIN [sqlite|pg] -- the nodup tool, seen from a shell.
#
# Runs the documented commands against a fresh database and checks exit
# statuses and the output lines a script would rely on (zstd's cli-tests,
# with the expectations inline: ids are not known in advance). Exit status:
# 0 when every case passed, 1 otherwise.
#
# sqlite: a file in a temporary directory. pg: a fresh database on the
# server named by $NODUP_TEST_PG (a conninfo string), dropped at the end;
# without a reachable server the run fails, it never skips.
set -u

bin=${1:?usage: run.sh NODUP_BIN [sqlite|pg]}
backend=${2:-sqlite}
work=$(mktemp -d /tmp/nodup-cli.XXXXXX)
out=$work/stdout
err=$work/stderr
failures=0
passes=0
status=0
admin=""
dbname=""

cleanup() {
  if [ -n "$dbname" ]; then
    "$bin" exec --db "$admin" "DROP DATABASE IF EXISTS \"$dbname\" WITH (FORCE)" \
      >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  failures=$((failures + 1))
  echo "FAIL: $current: $*"
  echo "  command: ${command_line}"
  echo "  exit status: $status"
  sed 's/^/  stdout: /' "$out"
  sed 's/^/  stderr: /' "$err"
}

# run NAME STATUS CMD...: run CMD, keep its stdout and stderr, check STATUS.
run() {
  current=$1
  local want=$2
  shift 2
  command_line="$*"
  "$@" >"$out" 2>"$err"
  status=$?
  if [ "$status" != "$want" ]; then
    fail "expected exit status $want"
    return 1
  fi
  passes=$((passes + 1))
  return 0
}

# stdout_has ERE / stderr_has FIXED / stdout_lacks FIXED: checks on the last run.
stdout_has() { grep -Eq -- "$1" "$out" || fail "stdout does not match /$1/"; }
stdout_lacks() { ! grep -Fq -- "$1" "$out" || fail "stdout contains '$1'"; }
stderr_has() { grep -Fq -- "$1" "$err" || fail "stderr does not contain '$1'"; }
stderr_nonempty() { [ -s "$err" ] || fail "stderr is empty"; }
# JSON with the whitespace removed, so that layout does not matter.
json() { tr -d ' \n\t' <"$out"; }
json_has() { json | grep -Fq -- "$1" || fail "json $(json) lacks $1"; }

# --- the database -----------------------------------------------------------
case "$backend" in
sqlite)
  url="file:$work/x.db?mode=rwc"
  id_col='"id" INTEGER PRIMARY KEY'
  ;;
pg)
  admin=${NODUP_TEST_PG:?NODUP_TEST_PG must name the test server (conninfo)}
  dbname="nodup_cli_$$"
  if ! "$bin" exec --db "$admin" "CREATE DATABASE \"$dbname\""; then
    echo "FAIL: cannot create a database on $admin"
    dbname=""
    exit 1
  fi
  url="$(printf '%s' "$admin" | sed 's/dbname=[^ ]*//') dbname=$dbname"
  id_col='"id" BIGSERIAL PRIMARY KEY'
  ;;
*)
  echo "usage: run.sh NODUP_BIN [sqlite|pg]" >&2
  exit 2
  ;;
esac
export NODUP_DB=""  # each case says which database it means

# --- help and usage errors ------------------------------------------------------
run "nodup --help" 0 "$bin" --help && stdout_has "get-or-create"
for cmd in get-or-create check race exec; do
  run "nodup $cmd --help" 0 "$bin" "$cmd" --help && stdout_has "usage: nodup $cmd"
done
run "unknown command" 2 "$bin" frobnicate && stderr_has "frobnicate"
run "unknown flag" 2 "$bin" check --db "$url" --table t --key k --no-such-flag &&
  stderr_has "no-such-flag"
run "no database" 2 env -u NODUP_DB "$bin" check --table t --key k && stderr_nonempty
run "missing key value" 2 "$bin" get-or-create --db "$url" --table people --key email &&
  stderr_has "email"

# --- setup ----------------------------------------------------------------
run "exec setup" 0 "$bin" exec --db "$url" "
  CREATE TABLE \"people\" ($id_col, \"email\" TEXT NOT NULL, \"name\" TEXT,
    \"handle\" TEXT);
  CREATE UNIQUE INDEX \"people_email_key\" ON \"people\" (\"email\");
  CREATE UNIQUE INDEX \"people_handle_key\" ON \"people\" (\"handle\");
  CREATE TABLE \"loose\" ($id_col, \"email\" TEXT NOT NULL);
  CREATE TABLE \"conversations\" ($id_col, \"context_type\" TEXT NOT NULL,
    \"context_id\" TEXT NOT NULL, \"created_by\" TEXT NOT NULL);
  CREATE UNIQUE INDEX \"unique_agency_user_conversation\" ON \"conversations\"
    (\"context_type\", \"context_id\", \"created_by\")
    WHERE \"context_type\" = 'agency_inquiry';
  CREATE TABLE \"naive\" ($id_col, \"k\" TEXT);
  CREATE TABLE \"indexed\" ($id_col, \"k\" TEXT);
  CREATE UNIQUE INDEX \"indexed_k_key\" ON \"indexed\" (\"k\")"
run "exec bad SQL" 2 "$bin" exec --db "$url" "THIS IS NOT SQL" && stderr_nonempty

if [ "$backend" = sqlite ]; then
  # A plain path must name an existing file; a typo creates nothing.
  run "plain path, missing file" 2 "$bin" check --db "$work/missing.db" \
    --table people --key email && stderr_nonempty
  [ ! -e "$work/missing.db" ] || fail "nodup created $work/missing.db"
  run "plain path, existing file" 0 "$bin" check --db "$work/x.db" \
    --table people --key email
fi

# --- check ------------------------------------------------------------------
run "check backed" 0 "$bin" check --db "$url" --table people --key email &&
  stdout_has "people_email_key"
run "check partial key" 0 "$bin" check --db "$url" --table conversations \
  --key context_type,context_id,created_by \
  --where "\"context_type\" = 'agency_inquiry'" &&
  stdout_has "unique_agency_user_conversation"
run "check partial key without its predicate" 1 "$bin" check --db "$url" \
  --table conversations --key context_type,context_id,created_by &&
  stdout_has "CREATE UNIQUE INDEX"
if run "check unbacked" 1 "$bin" check --db "$url" --table loose --key email; then
  stdout_has "CREATE UNIQUE INDEX"
  # The DDL it prints is the fix: run it, and the key is backed.
  ddl=$(grep "CREATE UNIQUE INDEX" "$out")
  run "run the suggested DDL" 0 "$bin" exec --db "$url" "$ddl"
  run "check after the DDL" 0 "$bin" check --db "$url" --table loose --key email
  run "drop it again" 0 "$bin" exec --db "$url" \
    "DROP TABLE \"loose\"; CREATE TABLE \"loose\" ($id_col, \"email\" TEXT NOT NULL)"
fi
run "check missing table" 2 "$bin" check --db "$url" --table no_such_table --key email &&
  stderr_has "no_such_table"
run "check missing column" 2 "$bin" check --db "$url" --table people \
  --key no_such_column && stderr_has "no_such_column"

# --- get-or-create ------------------------------------------------------------
goc() { "$bin" get-or-create --db "$url" "$@"; }
id=""
if run "get-or-create creates" 0 goc --table people --key email \
  --set email=ada@example.org --set name=Ada; then
  stdout_has '^[^ ]+ created$'
  id=$(cut -d' ' -f1 "$out")
fi
run "get-or-create finds" 0 goc --table people --key email \
  --set email=ada@example.org --set name=Bob && stdout_has "^$id existing\$"
run "get-or-create json, existing" 0 goc --table people --key email \
  --set email=ada@example.org --format json &&
  { json_has "\"id\":\"$id\""; json_has '"created":false'; }
if run "get-or-create json, created" 0 goc --table people --key email \
  --set email=bob@example.org --set handle=h1 --format json; then
  json_has '"created":true'
  json | grep -Eq '"id":"[^"]+"' || fail "no id in $(json)"
fi
run "NODUP_DB is the default --db" 0 env NODUP_DB="$url" "$bin" get-or-create \
  --table people --key email --set email=ada@example.org && stdout_has "^$id existing\$"
run "value with quotes and a semicolon" 0 goc --table people --key email \
  --set "email=x'); DROP TABLE \"people\"; --" && stdout_has '^[^ ]+ created$'
run "the table is still there" 0 goc --table people --key email \
  --set email=ada@example.org && stdout_has "^$id existing\$"

run "get-or-create unbacked key" 1 goc --table loose --key email \
  --set email=ada@example.org && stderr_has "CREATE UNIQUE INDEX"
run "get-or-create other unique index" 2 goc --table people --key email \
  --set email=carol@example.org --set handle=h1 &&
  { stderr_has "handle"; stdout_lacks "existing"; }
run "get-or-create missing table" 2 goc --table no_such_table --key email \
  --set email=ada@example.org && stderr_has "no_such_table"
run "get-or-create NULL key" 2 goc --table people --key email --null email &&
  stderr_nonempty

conv=(--table conversations --key context_type,context_id,created_by
  --where "\"context_type\" = 'agency_inquiry'"
  --set context_id=agency-1 --set created_by=user-1)
cid=""
if run "partial key creates" 0 goc "${conv[@]}" --set context_type=agency_inquiry; then
  stdout_has '^[^ ]+ created$'
  cid=$(cut -d' ' -f1 "$out")
fi
run "partial key finds" 0 goc "${conv[@]}" --set context_type=agency_inquiry &&
  stdout_has "^$cid existing\$"
run "partial key, row outside the predicate" 2 goc "${conv[@]}" \
  --set context_type=support && stderr_nonempty

# --- race -------------------------------------------------------------------
race() { "$bin" race --db "$url" --workers 8 --keys 20 --ops 60 "$@"; }
if run "race --naive without an index" 0 race --table naive --key k --naive; then
  stdout_has '^duplicates: [0-9]+'
  echo "note: naive race: $(grep '^duplicates:' "$out")"
fi
run "race on the indexed twin" 0 race --table indexed --key k &&
  { stdout_has '^duplicates: 0( |$)'; stdout_has 'errors: 0'; }
run "race --processes" 0 race --table indexed --key k --processes &&
  stdout_has '^duplicates: 0( |$)'
run "race json" 0 race --table indexed --key k --format json &&
  { json_has '"duplicate_groups":0'; json_has '"errors":0'; }
run "race partial key" 0 race --table conversations \
  --key context_type,context_id,created_by \
  --where "\"context_type\" = 'agency_inquiry'" \
  --set context_type=agency_inquiry --set created_by=user-9 &&
  stdout_has '^duplicates: 0( |$)'
run "race on an unbacked key is refused" 1 race --table loose --key email &&
  stderr_has "CREATE UNIQUE INDEX"

echo "cli ($backend): $passes passed, $failures failed"
[ "$failures" -eq 0 ]
