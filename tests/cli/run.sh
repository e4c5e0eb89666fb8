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
for cmd in get-or-create check race exec slug import; do
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

# --- upsert -----------------------------------------------------------------
ups() { "$bin" upsert --db "$url" --table people --key email "$@"; }
uid=""
if run "upsert creates" 0 ups --set email=una@example.org --set name=Una; then
  stdout_has '^[^ ]+ created$'
  uid=$(cut -d' ' -f1 "$out")
fi
run "upsert, same values: unchanged" 0 ups --set email=una@example.org --set name=Una \
  --create handle=u1 && stdout_has "^$uid unchanged\$"
run "upsert updates" 0 ups --set email=una@example.org --set name=Una2 --format json &&
  { json_has "\"id\":\"$uid\""; json_has '"created":false'; json_has '"outcome":"updated"'; }
run "upsert --null updates" 0 ups --set email=una@example.org --null name &&
  stdout_has "^$uid updated\$"
run "upsert other unique index" 2 ups --set email=una@example.org --set handle=h1 &&
  { stderr_has "handle"; stdout_lacks "unchanged"; }
run "upsert unknown column" 2 ups --set email=una@example.org --set no_such_col=1 &&
  stderr_has "no_such_col"
run "upsert --create needs a value" 2 ups --set email=una@example.org --create handle &&
  stderr_has "--create"
run "upsert unbacked key" 1 "$bin" upsert --db "$url" --table loose --key email \
  --set email=una@example.org && stderr_has "CREATE UNIQUE INDEX"
run "nodup upsert --help" 0 "$bin" upsert --help && stdout_has "usage: nodup upsert"

# --- get-or-create --csv: many keys ------------------------------------------
gcsv() { "$bin" get-or-create --db "$url" --table people --key email "$@"; }
printf 'email,name\nuna@example.org,ignored\nmany1@example.org,M1\n"q,uoted@example.org",Q\nmany1@example.org,again\n' \
  >"$work/keys.csv"
if run "get-or-create --csv" 0 gcsv --csv "$work/keys.csv"; then
  stdout_has '^id,created$'
  [ "$(wc -l <"$out")" = 5 ] || fail "expected a header and 4 lines"
  [ "$(sed -n 2p "$out")" = "$uid,false" ] || fail "line 1 is not the existing row"
  sed -n 3p "$out" | grep -Eq '^[^,]+,true$' || fail "line 2 not created"
  [ "$(sed -n 3p "$out" | cut -d, -f1),false" = "$(sed -n 5p "$out")" ] ||
    fail "a repeated key did not get its first line's id, not created"
fi
gcsv_stdin() { gcsv --csv - --format json <"$work/keys.csv"; }
run "get-or-create --csv - (stdin), json" 0 gcsv_stdin &&
  { json_has '"created":false'; stdout_lacks '"created": true'; }
printf 'name\nx\n' >"$work/nokey.csv"
run "get-or-create --csv without the key column" 2 gcsv --csv "$work/nokey.csv" &&
  stderr_has 'no column "email"'
printf 'email,name\nshort@example.org\n' >"$work/short.csv"
run "get-or-create --csv short record" 2 gcsv --csv "$work/short.csv" &&
  stderr_has "record 2"
run "get-or-create --csv missing file" 2 gcsv --csv "$work/none.csv" && stderr_has "none.csv"
printf 'email,name\nnew-ok@example.org,x\n,y\n' >"$work/null.csv"
run "get-or-create --csv NULL key: refused, nothing created" 2 gcsv --csv "$work/null.csv" &&
  { stderr_has "row 2"; stdout_lacks "true"; }
run "get-or-create --csv NULL key: first row not created" 0 "$bin" get-or-create --db "$url" \
  --table people --key email --set email=new-ok@example.org && stdout_has ' created$'

# --- expression keys: a comma inside a term does not split --key ------------
run "exec expression index" 0 "$bin" exec --db "$url" "
  CREATE TABLE \"members\" ($id_col, \"email\" TEXT, \"org_id\" INTEGER);
  CREATE UNIQUE INDEX \"members_key\" ON \"members\" (lower(trim(\"email\")), \"org_id\")"
ek=(--table members --key 'lower(trim(email)),org_id')
run "check an expression key" 0 "$bin" check --db "$url" "${ek[@]}" &&
  stdout_has "members_key"
run "check, --key repeated" 0 "$bin" check --db "$url" --table members \
  --key 'lower( trim("email") )' --key org_id && stdout_has "members_key"
run "check, another expression: refused with its DDL" 1 "$bin" check --db "$url" \
  --table members --key 'lower(email),org_id' &&
  stdout_has 'CREATE UNIQUE INDEX "members_lower_email_org_id_key" .*\(lower\("email"\), "org_id"\);'
run "check, a function outside the set" 2 "$bin" check --db "$url" --table members \
  --key 'md5(email),org_id' && stderr_has "only lower, upper, trim, ltrim and rtrim"
mid=""
if run "get-or-create, expression key" 0 goc "${ek[@]}" --set email=' Ann@X.org' \
  --set org_id=1; then
  stdout_has '^[^ ]+ created$'
  mid=$(cut -d' ' -f1 "$out")
fi
run "get-or-create, another case and spaces: existing" 0 goc "${ek[@]}" \
  --set email='ann@x.ORG ' --set org_id=1 && stdout_has "^$mid existing\$"
run "upsert, expression key" 0 "$bin" upsert --db "$url" "${ek[@]}" \
  --set email=ANN@X.ORG --set org_id=1 && stdout_has "^$mid unchanged\$"
printf 'email,org_id\nANN@x.org,1\nzed@x.org,1\n" ZED@X.org",1\n' >"$work/members.csv"
if run "get-or-create --csv, expression key" 0 goc "${ek[@]}" --csv "$work/members.csv"; then
  [ "$(sed -n 2p "$out")" = "$mid,false" ] || fail "line 1 is not the existing row"
  sed -n 3p "$out" | grep -Eq '^[^,]+,true$' || fail "line 2 not created"
  [ "$(sed -n 3p "$out" | cut -d, -f1),false" = "$(sed -n 4p "$out")" ] ||
    fail "another spelling of line 2's key did not get its id"
fi
run "scan, expression key" 0 "$bin" scan --db "$url" "${ek[@]}" &&
  stdout_has "0 duplicate groups"
run "exec a column named like an expression" 0 "$bin" exec --db "$url" "
  CREATE TABLE \"oddcols\" ($id_col, \"lower(x)\" TEXT);
  CREATE UNIQUE INDEX \"oddcols_key\" ON \"oddcols\" (\"lower(x)\")"
run "a column named lower(x) is that column" 0 goc --table oddcols --key 'lower(x)' \
  --set 'lower(x)=A' && stdout_has '^[^ ]+ created$'
run "nodup check --help shows expression keys" 0 "$bin" check --help &&
  stdout_has "lower\(trim\(email\)\),org_id"

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

# --- slug -------------------------------------------------------------------
# Counting rows through the CLI alone: an INSERT of NULL into a NOT NULL
# column that happens only when the count is wrong, so exit 2 means "wrong".
expect_count() { # NAME TABLE N [WHERE]
  run "$1" 0 "$bin" exec --db "$url" "INSERT INTO \"assertions\" (\"v\")
    SELECT NULL WHERE (SELECT count(*) FROM \"$2\" ${4:+WHERE $4}) <> $3" ||
    echo "  (table $2 ${4:+where $4} does not hold $3 rows)"
}
run "exec setup (slug, import)" 0 "$bin" exec --db "$url" "
  CREATE TABLE \"assertions\" (\"v\" INTEGER NOT NULL);
  CREATE TABLE \"teams\" ($id_col, \"slug\" TEXT NOT NULL, \"name\" TEXT);
  CREATE UNIQUE INDEX \"teams_slug_key\" ON \"teams\" (\"slug\");
  CREATE TABLE \"storm\" ($id_col, \"slug\" TEXT NOT NULL);
  CREATE UNIQUE INDEX \"storm_slug_key\" ON \"storm\" (\"slug\");
  CREATE TABLE \"projects\" ($id_col, \"tenant\" INTEGER NOT NULL, \"slug\" TEXT NOT NULL);
  CREATE UNIQUE INDEX \"projects_tenant_slug_key\" ON \"projects\" (\"tenant\", \"slug\");
  CREATE TABLE \"loose_slugs\" ($id_col, \"slug\" TEXT NOT NULL);
  CREATE TABLE \"chapters\" ($id_col, \"ep\" INTEGER NOT NULL, \"ord\" INTEGER NOT NULL,
    \"title\" TEXT NOT NULL, \"note\" TEXT);
  CREATE UNIQUE INDEX \"chapters_ep_ord_key\" ON \"chapters\" (\"ep\", \"ord\")"

slug() { "$bin" slug --db "$url" "$@"; }
sid=""
if run "slug creates" 0 slug --table teams --column slug --from "My Team" --set name=Ops; then
  stdout_has '^my-team [^ ]+$'
  sid=$(cut -d' ' -f2 "$out")
fi
# The row is the one printed, with the --set value: get-or-create on the
# slug finds it.
run "slug row is there" 0 goc --table teams --key slug --set slug=my-team &&
  stdout_has "^$sid existing\$"
run "slug again: next suffix" 0 slug --table teams --column slug --from "my team!" &&
  stdout_has '^my-team-2 [^ ]+$'
if run "slug json" 0 slug --table teams --column slug --from "MY TEAM" --format json; then
  json_has '"slug":"my-team-3"'
  json | grep -Eq '"id":"[^"]+"' || fail "no id in $(json)"
  json_has '"statements":'
fi
run "slug transliterates" 0 slug --table teams --column slug --from "Crème Brûlée" &&
  stdout_has '^creme-brulee [^ ]+$'
run "slug reserved word" 0 slug --table teams --column slug --from "Admin" &&
  stdout_has '^admin-2 [^ ]+$'
run "slug --reserve replaces the list" 0 slug --table teams --column slug --from "Teams" \
  --reserve teams && stdout_has '^teams-2 [^ ]+$'
run "slug --fallback" 0 slug --table teams --column slug --from "!!!" --fallback untitled &&
  stdout_has '^untitled [^ ]+$'
if run "slug --max-length" 0 slug --table teams --column slug --max-length 12 \
  --from "The quick brown fox jumps"; then
  s=$(cut -d' ' -f1 "$out")
  [ "${#s}" -le 12 ] || fail "slug '$s' is longer than 12"
fi
run "slug scoped, tenant 1" 0 slug --table projects --column slug --scope tenant \
  --set tenant=1 --from "My Team" && stdout_has '^my-team [^ ]+$'
run "slug scoped, tenant 2 gets the same slug" 0 slug --table projects --column slug \
  --scope tenant --set tenant=2 --from "My Team" && stdout_has '^my-team [^ ]+$'
run "slug scoped, tenant 1 again" 0 slug --table projects --column slug --scope tenant \
  --set tenant=1 --from "My Team" && stdout_has '^my-team-2 [^ ]+$'
run "slug scope without its value" 2 slug --table projects --column slug --scope tenant \
  --from "My Team" && stderr_has "tenant"
run "slug unscoped on a scoped index is refused" 1 slug --table projects --column slug \
  --from "My Team" && stderr_has "CREATE UNIQUE INDEX"
run "slug without a unique index is refused" 1 slug --table loose_slugs --column slug \
  --from "My Team" && stderr_has "CREATE UNIQUE INDEX"
expect_count "slug refusals inserted nothing" loose_slugs 0
run "slug other constraint" 2 slug --table teams --column slug --from "x" --null slug &&
  stderr_nonempty
run "slug unknown flag" 2 slug --table teams --column slug --from x --colour red &&
  { stderr_has "colour"; stderr_has "nodup slug --help"; }
run "slug without --from" 2 slug --table teams --column slug &&
  { stderr_has "--from"; stderr_has "nodup slug --help"; }
run "slug without --column" 2 slug --table teams --from x && stderr_has "--column"
run "slug --max-length too small" 2 slug --table teams --column slug --from x \
  --max-length 5 && stderr_has "--max-length"
run "slug --format yaml" 2 slug --table teams --column slug --from x --format yaml &&
  stderr_has "format"
run "slug missing table" 2 slug --table no_such_table --column slug --from x &&
  stderr_has "no_such_table"

# A storm: 20 processes allocate "My Team" at once (they wait for one gate
# file): 20 rows, 20 distinct slugs, my-team to my-team-20, no error.
storm=$work/storm
mkdir -p "$storm"
current="slug storm"
command_line="20 x nodup slug --table storm --column slug --from 'My Team'"
pids=()
for i in $(seq 1 20); do
  (while [ ! -e "$storm/go" ]; do sleep 0.01; done
   exec "$bin" slug --db "$url" --table storm --column slug --from "My Team" \
     >"$storm/$i.out" 2>"$storm/$i.err") &
  pids+=($!)
done
sleep 0.3
touch "$storm/go"
storm_failed=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || storm_failed=$((storm_failed + 1)); done
cat "$storm"/*.out >"$out"
cat "$storm"/*.err >"$err"
status=$storm_failed
if [ "$storm_failed" -ne 0 ]; then
  fail "$storm_failed of 20 processes failed"
elif [ "$(cut -d' ' -f1 "$out" | sort -u | wc -l)" -ne 20 ]; then
  fail "20 processes did not get 20 distinct slugs"
else
  { echo my-team; for i in $(seq 2 20); do echo "my-team-$i"; done; } | sort >"$storm/want"
  if cut -d' ' -f1 "$out" | sort | cmp -s - "$storm/want"; then
    passes=$((passes + 1))
  else
    fail "the slugs are not exactly my-team, my-team-2 ... my-team-20"
  fi
fi
expect_count "slug storm: 20 rows" storm 20

# --- import -----------------------------------------------------------------
imp() { "$bin" import --db "$url" --table chapters --key ep,ord "$@"; }
printf 'ep,ord,title\n39,1,Intro\n39,2,"Middle, with a comma"\n39,3,End\n' >"$work/batch.csv"
run "import" 0 imp --csv "$work/batch.csv" &&
  stdout_has '^imported 3 rows into chapters$'
expect_count "import: 3 rows" chapters 3
if run "import again: already imported" 1 imp --csv "$work/batch.csv"; then
  stderr_has "('39', '1') line 2 already imported"
  stderr_has "('39', '3') line 4 already imported"
  stderr_has "nothing imported"
fi
if run "import again, json" 1 imp --csv "$work/batch.csv" --format json; then
  json_has '"rows":3'
  json_has '"inserted":0'
  json_has '"conflicts":3'
  json_has '{"line":3,"existing":true,"key":{"ep":"39","ord":"2"}}'
fi
expect_count "import refused: still 3 rows" chapters 3
printf 'ep,ord,title\n40,1,a\n40,2,b\n' >"$work/batch2.csv"
if run "import json" 0 imp --csv "$work/batch2.csv" --format json; then
  json_has '"rows":2'
  json_has '"inserted":2'
  json_has '"conflicts":0'
fi
run "import from standard input" 0 imp --csv - <<<$'ep,ord,title\n41,1,stdin' &&
  stdout_has '^imported 1 rows into chapters$'
# A batch that repeats a key fails before writing anything: its other rows
# can be imported afterwards.
printf 'ep,ord,title\n42,1,a\n42,2,b\n42,1,c\n' >"$work/repeat.csv"
run "import with a repeated key" 1 imp --csv "$work/repeat.csv" &&
  stderr_has "('42', '1') line 4 repeats in the file"
expect_count "repeated key: nothing written" chapters 0 "\"ep\" = 42"
printf 'ep,ord,title\n43,1,a\n43,2,"never closed\n43,3,c\n' >"$work/malformed.csv"
run "import malformed CSV" 2 imp --csv "$work/malformed.csv" &&
  stderr_has "CSV line 3: unterminated quoted field"
printf 'ep,ord,title\n44,1,a\n44,2,b,extra\n' >"$work/fields.csv"
run "import, a row with too many fields" 2 imp --csv "$work/fields.csv" &&
  stderr_has "CSV line 3: "
printf 'ep,ord,title\n45,1,a\n45,2,\n' >"$work/notnull.csv"
run "import NOT NULL names line and column" 2 imp --csv "$work/notnull.csv" &&
  { stderr_has "CSV line 3: "; stderr_has "title"; }
expect_count "failed imports wrote nothing" chapters 0 "\"ep\" >= 43"
run "import unknown column" 2 imp --csv - <<<$'ep,ord,titel\n46,1,a' &&
  stderr_has "titel"
run "import unbacked key" 1 "$bin" import --db "$url" --table chapters --key ep \
  --csv "$work/batch2.csv" && stderr_has "CREATE UNIQUE INDEX"
run "import missing file" 2 imp --csv "$work/no-such.csv" && stderr_has "no-such.csv"
run "import without --csv" 2 imp && stderr_has "--csv"
run "import unknown flag" 2 imp --csv "$work/batch.csv" --dry-run &&
  { stderr_has "dry-run"; stderr_has "nodup import --help"; }
run "import --format yaml" 2 imp --csv "$work/batch.csv" --format yaml &&
  stderr_has "format"

# Concurrent imports of one batch: exactly one wins, the others say
# "already imported", and the table holds one copy.
awk 'BEGIN { print "ep,ord,title"; for (i = 1; i <= 500; i++) print 50 "," i ",chapter " i }' \
  >"$work/concurrent.csv"
current="concurrent imports"
command_line="8 x nodup import --csv concurrent.csv"
pids=()
for i in $(seq 1 8); do
  (while [ ! -e "$storm/import-go" ]; do sleep 0.01; done
   exec "$bin" import --db "$url" --table chapters --key ep,ord --csv "$work/concurrent.csv" \
     >"$storm/imp$i.out" 2>"$storm/imp$i.err") &
  pids+=($!)
done
sleep 0.3
touch "$storm/import-go"
wins=0 refused=0 others=0
for i in "${!pids[@]}"; do
  s=0
  wait "${pids[$i]}" || s=$?
  case $s in 0) wins=$((wins + 1)) ;; 1) refused=$((refused + 1)) ;; *) others=$((others + 1)) ;; esac
done
cat "$storm"/imp*.out >"$out"
cat "$storm"/imp*.err >"$err"
status="$wins won, $refused refused, $others failed"
if [ "$wins" -ne 1 ] || [ "$refused" -ne 7 ]; then
  fail "expected 1 import to win and 7 to be refused"
elif [ "$(grep -c 'already imported' "$err")" -ne 7 ]; then
  fail "every refused import should say 'already imported'"
else
  passes=$((passes + 1))
fi
expect_count "concurrent imports: one copy" chapters 500 "\"ep\" = 50"

# --- seed 004: "send message" twice at once, and again after a timeout ------
# Both requests run get-or-create on the partial key; one conversation, one
# "created", the other "existing" with the same id; the retry after the
# timeout finds it too.
current="seed 004: send message twice at once"
command_line="2 x nodup get-or-create conversations (agency-7, user-7)"
send=(--table conversations --key context_type,context_id,created_by
  --where "\"context_type\" = 'agency_inquiry'"
  --set context_type=agency_inquiry --set context_id=agency-7 --set created_by=user-7)
pids=()
for i in 1 2; do
  (while [ ! -e "$storm/send-go" ]; do sleep 0.01; done
   exec "$bin" get-or-create --db "$url" "${send[@]}" >"$storm/send$i.out" 2>"$storm/send$i.err") &
  pids+=($!)
done
sleep 0.2
touch "$storm/send-go"
send_failed=0
for p in "${pids[@]}"; do wait "$p" || send_failed=$((send_failed + 1)); done
cat "$storm"/send1.out "$storm"/send2.out >"$out"
cat "$storm"/send1.err "$storm"/send2.err >"$err"
status=$send_failed
conv=""
if [ "$send_failed" -ne 0 ]; then
  fail "a request failed"
elif [ "$(grep -c ' created$' "$out")" -ne 1 ] || [ "$(grep -c ' existing$' "$out")" -ne 1 ]; then
  fail "expected one 'created' and one 'existing'"
elif [ "$(cut -d' ' -f1 "$out" | sort -u | wc -l)" -ne 1 ]; then
  fail "the two requests got different conversations"
else
  passes=$((passes + 1))
  conv=$(head -1 "$out" | cut -d' ' -f1)
fi
run "seed 004: again after a timeout" 0 timeout 30 "$bin" get-or-create --db "$url" \
  "${send[@]}" && stdout_has "^$conv existing\$"
expect_count "seed 004: one conversation" conversations 1 \
  "\"context_id\" = 'agency-7' AND \"created_by\" = 'user-7'"
run "seed 004: scan finds no duplicate" 0 "$bin" scan --db "$url" --table conversations \
  --key context_type,context_id,created_by --where "\"context_type\" = 'agency_inquiry'"

# --- issue 10: key specs and repeated --set ----------------------------------
# A comma list (--key, --scope, the columns of --ref) is trimmed of spaces
# around each name; an empty element is refused, naming the option and the
# value: never silently another key. people has unique indexes on (email)
# and on (handle), none on (email, handle).
for spec in 'email,' ',email' 'email,,handle' ','; do
  run "--key '$spec' is refused" 2 "$bin" check --db "$url" --table people --key "$spec" &&
    stderr_has "nodup check: --key '$spec' has an empty column name"
done
run "--key ' email ' is trimmed" 0 "$bin" check --db "$url" --table people --key ' email ' &&
  stdout_has "people_email_key"
run "--key 'a, b ,c' is trimmed" 0 "$bin" check --db "$url" --table conversations \
  --key 'context_type, context_id ,created_by' \
  --where "\"context_type\" = 'agency_inquiry'" &&
  stdout_has "unique_agency_user_conversation"
run "get-or-create, trimmed key" 0 goc --table people --key 'email ' \
  --set email=ada@example.org && stdout_has "^$id existing\$"
run "get-or-create, --key 'email,' is refused" 2 goc --table people --key 'email,' \
  --set email=trailing@example.org && stderr_has "--key 'email,' has an empty column name"
run "import, --key 'ep,,ord' is refused" 2 imp --key 'ep,,ord' --csv "$work/batch2.csv" &&
  stderr_has "--key 'ep,,ord' has an empty column name"
run "slug, --scope 'tenant,' is refused" 2 slug --table projects --column slug \
  --scope 'tenant,' --set tenant=7 --from "Empty Scope" &&
  stderr_has "nodup slug: --scope 'tenant,' has an empty column name"
run "slug, --scope ' tenant ' is trimmed" 0 slug --table projects --column slug \
  --scope ' tenant ' --set tenant=7 --from "Trimmed Scope" && stdout_has '^trimmed-scope [^ ]+$'
run "scan, --ref 'chapters(,ep)' is refused" 2 "$bin" scan --db "$url" --table people \
  --key email --ref 'chapters(,ep)' && stderr_has "empty column name"
run "scan, --ref 'chapters( ep )' is trimmed" 0 "$bin" scan --db "$url" --table people \
  --key email --ref 'chapters( ep )' && stdout_has '"chapters" \(ep\)'

# The same column twice in --set/--null would silently keep one value.
run "--set twice" 2 goc --table people --key email --set email=twice@example.org \
  --set name=A --set name=B && stderr_has "column 'name' is given twice"
run "--set of a key column twice" 2 goc --table people --key email \
  --set email=twice@example.org --set email=again@example.org &&
  stderr_has "column 'email' is given twice"
run "--set and --null of one column" 2 goc --table people --key email \
  --set email=twice@example.org --set name=A --null name &&
  stderr_has "column 'name' is given twice"
run "--null twice" 2 goc --table people --key email --set email=twice@example.org \
  --null handle --null handle && stderr_has "column 'handle' is given twice"
run "race, --set twice" 2 "$bin" race --db "$url" --table indexed --key k \
  --set k=1 --set k=2 && stderr_has "column 'k' is given twice"
run "slug, --set twice" 2 slug --table teams --column slug --from "Set Twice" \
  --set name=A --set name=B && stderr_has "column 'name' is given twice"
expect_count "refused key specs and --set wrote nothing" people 0 \
  "\"email\" IN ('trailing@example.org', 'twice@example.org', 'again@example.org')"
expect_count "refused slugs wrote nothing" teams 0 "\"slug\" = 'set-twice'"
expect_count "refused --scope wrote nothing" projects 0 "\"slug\" = 'empty-scope'"

# --- issue 10: redaction and output ------------------------------------------
# No password reaches stdout or stderr, from a URI or a keyword/value string,
# whether it is malformed, points at a server that is down, or works; the
# undo line names the real --db (without its password) and can be pasted; a
# dry run shows no run id (its run was rolled back); JSON names tables
# plainly; nothing carries an ANSI escape when the output is not a terminal.
secret=S3cretPW
no_secret() { ! grep -Fq -- "$secret" "$out" "$err" || fail "the password is in the output"; }
no_escape() { ! grep -q $'\033' "$out" "$err" || fail "an ANSI escape in the output"; }
for bad in "postgresql://alice:$secret@/db?host=/tmp&bogus=1" \
  "postgresql://alice:$secret%zz@127.0.0.1:1/db" \
  "host=127.0.0.1 port=1 password='$secret' bogus=1" \
  "host=127.0.0.1 port=1 password=$secret words dbname=db"; do
  run "malformed URL: $bad" 2 "$bin" check --db "$bad" --table t --key k &&
    { no_secret; stderr_has "malformed PostgreSQL URL"; }
done
stderr_has 'missing "=" after "***"'
# An unencoded '/' in a URI password: libpq reads the password as the port
# and quotes it in its refusal.
for down in "postgresql://alice:$secret@127.0.0.1:1/db" \
  "postgresql://alice:$secret/x@127.0.0.1:1/db" \
  "host=127.0.0.1 port=1 user=alice password=$secret dbname=db" \
  "host=127.0.0.1 port=1 password='$secret with spaces' dbname=db"; do
  run "server down: $down" 2 "$bin" scan --db "$down" --table t --key k &&
    { no_secret; stderr_has "cannot connect"; }
done

case $backend in
pg) fk_type=BIGINT schema='"schema":"public"' pwurl="$url password=$secret" ;;
*) fk_type=INTEGER schema='"schema":null' pwurl=$url ;;
esac
run "exec setup (issue 10)" 0 "$bin" exec --db "$url" "
  CREATE TABLE \"i10_conf\" ($id_col, \"k\" TEXT NOT NULL);
  CREATE TABLE \"i10_talk\" ($id_col,
    \"conf_id\" $fk_type NOT NULL REFERENCES \"i10_conf\" (\"id\"));
  INSERT INTO \"i10_conf\" (\"k\") VALUES ('a'), ('a'), ('b'), ('b'), ('c');
  INSERT INTO \"i10_talk\" (\"conf_id\") SELECT \"id\" FROM \"i10_conf\""
i10=(--table i10_conf --key k)
if run "scan json" 1 "$bin" scan --db "$pwurl" "${i10[@]}" --format json; then
  json_has "{$schema,\"table\":\"i10_talk\","
  json | grep -Fq '\"' && fail "json quotes SQL names: $(json)"
  no_secret
fi
if run "merge --dry-run" 0 "$bin" merge --db "$pwurl" "${i10[@]}" --dry-run; then
  stdout_has '^dry run \(rolled back\): 2 duplicate groups'
  ! grep -Eq '[0-9]+-[0-9]+-[0-9]+' "$out" || fail "a dry run shows a run id"
  stdout_lacks "undo with"
fi
run "merge --dry-run json" 0 "$bin" merge --db "$pwurl" "${i10[@]}" --dry-run --format json &&
  { json_has '"run":null'; json_has "{$schema,\"table\":\"i10_conf\","; }
run "enforce --merge --dry-run" 0 "$bin" enforce --db "$pwurl" "${i10[@]}" --merge --dry-run &&
  { stdout_has 'after merging 2 duplicate group'; stdout_lacks "(run "; }
run "enforce --merge --dry-run json" 0 "$bin" enforce --db "$pwurl" "${i10[@]}" --merge \
  --dry-run --format json && json_has '"run":null'
undo=()
if run "merge" 0 "$bin" merge --db "$pwurl" "${i10[@]}"; then
  stdout_has '^undo with: nodup undo --db .* --run [0-9]+-[0-9]+-[0-9]+$'
  no_secret
  no_escape
  # The line is one shell command: its words are the real --db and the run.
  eval "undo=($(sed -n 's/^undo with: nodup //p' "$out"))"
  [ "${#undo[@]}" -eq 5 ] && [ "${undo[2]}" = "$url" ] ||
    fail "the undo line does not give back --db '$url' as one word: ${undo[*]}"
fi
[ "${#undo[@]}" -eq 5 ] && run "the pasted undo line" 0 "$bin" "${undo[@]}" &&
  stdout_has '^undo run [^ ]+: 2 row\(s\) restored'
if run "merge json" 0 "$bin" merge --db "$pwurl" "${i10[@]}" --format json; then
  json_has "{$schema,\"table\":\"i10_talk\",\"repointed\":2"
  json_has "{$schema,\"table\":\"i10_conf\",\"repointed\":0,\"deleted\":2"
  json | grep -Eq '"run":"[0-9]+-[0-9]+-[0-9]+"' || fail "no run id in $(json)"
  no_secret
  no_escape
fi

# --- issue 12, point 3: references the catalog does not declare ------------
# Suspected references: scan lists them with the --ref / --ignore-ref to
# paste; merge refuses (exit 2, nothing written) until each is named; --ref
# takes a WHERE for a polymorphic one.
for cmd in scan merge enforce; do
  run "$cmd --help describes --ignore-ref" 0 "$bin" "$cmd" --help &&
    { stdout_has '--ignore-ref TABLE\(COL\)'; stdout_has "WHERE SQL"; }
done
run "exec setup (suspects)" 0 "$bin" exec --db "$url" "
  CREATE TABLE \"s3_user\" ($id_col, \"email\" TEXT NOT NULL);
  CREATE TABLE \"s3_order\" ($id_col,
    \"s3_user_id\" $fk_type REFERENCES \"s3_user\" (\"id\"));
  CREATE TABLE \"s3_note\" ($id_col, \"s3_user_id\" $fk_type);
  CREATE TABLE \"s3_comment\" ($id_col, \"subject_type\" TEXT, \"subject_id\" $fk_type);
  INSERT INTO \"s3_user\" (\"id\", \"email\") VALUES (1, 'a'), (2, 'a');
  INSERT INTO \"s3_note\" (\"s3_user_id\") VALUES (2);
  INSERT INTO \"s3_comment\" (\"subject_type\", \"subject_id\") VALUES ('S3User', 2),
    ('Other', 2)"
s3=(--table s3_user --key email)
if run "scan lists suspected references" 1 "$bin" scan --db "$url" "${s3[@]}"; then
  stdout_has '^suspected references \(no foreign key declares them\): 2$'
  stdout_has "^  (\"public\"\.)?\"s3_comment\" \(subject_id\) -> \(id\) WHERE subject_type = 'S3User': 1 point at rows a merge would remove \[rails\]$"
  stdout_has "^    re-point: --ref \"s3_comment\(subject_id\) WHERE subject_type = 'S3User'\"$"
  stdout_has "^    or leave: --ignore-ref 's3_note\(s3_user_id\)'$"
fi
run "scan json lists them" 1 "$bin" scan --db "$url" "${s3[@]}" --format json &&
  { json_has '"table":"s3_note","column":"s3_user_id","references":"id","kind":"same_name","condition":null,"rows":1'
    json_has '"kind":"rails","condition":"subject_type='"'"'S3User'"'"'","rows":1'; }
if run "merge refuses" 2 "$bin" merge --db "$url" "${s3[@]}"; then
  stderr_has "1 row(s) of "
  stderr_has "or leave them with --ignore-ref 's3_note(s3_user_id)'"
  stderr_has "nothing changed"
fi
run "merge --dry-run refuses alike" 2 "$bin" merge --db "$url" "${s3[@]}" --dry-run &&
  stderr_has "nothing changed"
run "enforce --merge refuses alike" 2 "$bin" enforce --db "$url" "${s3[@]}" --merge &&
  stderr_has "--ignore-ref 's3_note(s3_user_id)'"
expect_count "refusals changed nothing" s3_user 2
if run "merge with --ref WHERE and --ignore-ref" 0 "$bin" merge --db "$url" "${s3[@]}" \
  --ref "s3_comment(subject_id) WHERE subject_type = 'S3User'" --ignore-ref 's3_note(s3_user_id)'; then
  stdout_has '^  ("public"\.)?"s3_comment": 1 re-pointed, 0 deleted$'
fi
expect_count "the S3User comment followed" s3_comment 1 "\"subject_id\" = 1"
expect_count "the other comment stayed" s3_comment 1 "\"subject_id\" = 2"
expect_count "the ignored note stayed" s3_note 1 "\"s3_user_id\" = 2"
run "--resume with --ignore-ref is refused" 2 "$bin" merge --db "$url" --resume x \
  --ignore-ref 's3_note(s3_user_id)' && stderr_has "--resume takes the run's own"

# --- issue 12, point 5: what an interrupted enforce --online leaves ----------
# A guard trigger as a killed online run leaves it (any nodup_guard_<hex>
# trigger on the table is one): every command on the key says so and how to
# finish or remove it; --abort removes it, once; SQLite has nothing to abort.
run "enforce --help describes --abort" 0 "$bin" enforce --help &&
  { stdout_has '^       nodup enforce --abort --db URL --table T --key'
    stdout_has 'only remove what an interrupted --online run left'; }
if [ "$backend" = pg ]; then
  run "exec setup (leftovers)" 0 "$bin" exec --db "$url" "
    CREATE TABLE \"lo\" ($id_col, \"k\" TEXT NOT NULL);
    CREATE UNIQUE INDEX \"lo_k_key\" ON \"lo\" (\"k\");
    CREATE FUNCTION nodup_guard_0badc0de() RETURNS trigger LANGUAGE plpgsql
      AS \$f\$ BEGIN RETURN NEW; END \$f\$;
    CREATE TRIGGER nodup_guard_0badc0de BEFORE INSERT OR UPDATE OF \"k\" ON \"lo\"
      FOR EACH ROW EXECUTE FUNCTION nodup_guard_0badc0de()"
  left='an interrupted `nodup enforce --online` left on "public"."lo": guard trigger nodup_guard_0badc0de'
  run "check: backed, with a warning" 0 "$bin" check --db "$url" --table lo --key k &&
    { stdout_has '^backed by lo_k_key$'; stderr_has "nodup check: warning: $left"
      stderr_has 'Finish it with `nodup enforce --table public.lo --key k --online`'
      stderr_has 'remove it with `nodup enforce --abort --table public.lo --key k`'; }
  run "get-or-create works, with a warning" 0 goc --table lo --key k --set k=a &&
    { stdout_has '^[0-9]+ created$'; stderr_has "nodup get-or-create: warning: $left"; }
  run "scan reports it" 0 "$bin" scan --db "$url" --table lo --key k &&
    stdout_has "^leftovers: an interrupted .* guard trigger nodup_guard_0badc0de"
  run "scan json reports it" 0 "$bin" scan --db "$url" --table lo --key k --format json &&
    json_has '"leftovers":"aninterrupted`nodupenforce--online`lefton'
  run "enforce --abort --merge is refused" 2 "$bin" enforce --db "$url" --table lo --key k \
    --abort --merge && stderr_has "--abort only removes"
  run "enforce --abort removes it" 0 "$bin" enforce --db "$url" --table lo --key k --abort &&
    stdout_has '^removed what an interrupted `nodup enforce --online` left: guard trigger nodup_guard_0badc0de and its function "public"."nodup_guard_0badc0de"\(\)$'
  run "enforce --abort again: nothing to remove" 0 "$bin" enforce --db "$url" --table lo \
    --key k --abort --format json && { json_has '"abort":true'; json_has '"removed":null'; }
  run "check after --abort: no warning" 0 "$bin" check --db "$url" --table lo --key k &&
    { [ ! -s "$err" ] || fail "stderr is not empty"; }
  expect_count "--abort kept the rows" lo 1
else
  run "enforce --abort on SQLite is refused" 2 "$bin" enforce --db "$url" --table people \
    --key email --abort && stderr_has "SQLite has no online mode"
fi

# --- issue 12, point 6: the journal stays out of the way --------------------
# A refused merge creates nothing (SQLite: in a file of its own; PostgreSQL:
# in a journal schema of its own, --journal cli_journal); `nodup runs` lists
# runs with their state and the rows they changed, judged by their owner;
# --forget removes one; undo and resume find it with the same --journal.
run "nodup --help lists runs" 0 "$bin" --help && stdout_has '^  runs +list merge runs'
if run "nodup runs --help" 0 "$bin" runs --help; then
  stdout_has '^usage: nodup runs --db URL \[--journal SCHEMA\] \[--format text\|json\]$'
  stdout_has '^  --forget RUN '
  stdout_has '^  interrupted '
fi
for cmd in merge undo enforce; do
  run "$cmd --help names --journal" 0 "$bin" "$cmd" --help && stdout_has '\[--journal SCHEMA\]'
done
if [ "$backend" = sqlite ]; then
  u6="file:$work/runs.db?mode=rwc"
  j6=()
  runs6=nodup_runs
  journal6="SELECT count(*) FROM sqlite_schema WHERE name LIKE 'nodup%'"
else
  u6=$url
  j6=(--journal cli_journal)
  runs6=cli_journal.nodup_runs
  journal6="SELECT count(*) FROM pg_namespace WHERE nspname = 'cli_journal'"
fi
# count6 NAME SQL N: SQL's count is N (else an INSERT of NULL fails: exit 2).
count6() {
  run "$1" 0 "$bin" exec --db "$u6" "CREATE TABLE IF NOT EXISTS \"assert6\" (\"v\" INTEGER NOT NULL);
    INSERT INTO \"assert6\" (\"v\") SELECT NULL WHERE ($2) <> $3" || echo "  ($2 is not $3)"
}
run "exec setup (runs)" 0 "$bin" exec --db "$u6" "
  CREATE TABLE \"r6\" ($id_col, \"k\" TEXT);
  CREATE TABLE \"r6_profile\" ($id_col, \"r6\" INTEGER NOT NULL UNIQUE REFERENCES \"r6\" (\"id\"));
  CREATE TABLE \"r6_event\" ($id_col, \"r6\" INTEGER NOT NULL REFERENCES \"r6\" (\"id\"));
  INSERT INTO \"r6\" (\"id\", \"k\") VALUES (1, 'a'), (2, 'a'), (3, 'b'), (4, 'b');
  INSERT INTO \"r6_profile\" (\"r6\") VALUES (1), (2);
  INSERT INTO \"r6_event\" (\"r6\") VALUES (2), (4), (4)"
m6=("$bin" merge --db "$u6" "${j6[@]}" --table r6 --key k)
run "merge, a typo in --where" 2 "${m6[@]}" --where "nope = 1" && stderr_has "--where"
run "merge, a typo in --keep" 2 "${m6[@]}" --keep "nope DESC" && stderr_has "--keep"
run "merge, a typo in --key" 2 "$bin" merge --db "$u6" "${j6[@]}" --table r6 --key nope &&
  stderr_has "nope"
run "merge --one-to-one fail" 2 "${m6[@]}" --one-to-one fail &&
  { stderr_has '"r6_profile"'; stderr_has "nothing changed"; }
count6 "the refusals created no journal" "$journal6" 0
run "runs: none" 0 "$bin" runs --db "$u6" "${j6[@]}" && stdout_has '^no merge runs recorded$'
run "runs json: none" 0 "$bin" runs --db "$u6" "${j6[@]}" --format json && json_has '{"runs":[]}'
count6 "listing created no journal" "$journal6" 0
run6=none
if run "merge (runs)" 0 "${m6[@]}"; then
  run6=$(sed -n 's/^merge run \([^:]*\):.*/\1/p' "$out")
fi
if run "runs lists it" 0 "$bin" runs --db "$u6" "${j6[@]}"; then
  stdout_has '^run +table +key +state +started +finished +changed$'
  stdout_has "^$run6 +r6 +k +done +[0-9-]+ [0-9:]+ +[0-9-]+ [0-9:]+ +6$"
fi
if run "runs json" 0 "$bin" runs --db "$u6" "${j6[@]}" --format json; then
  json_has "{\"runs\":[{\"run\":\"$run6\",\"table\":\"r6\",\"key\":[\"k\"],\"state\":\"done\""
  json_has '"groups":2,"repointed":3,"deleted":3,"filled":0,"changed":6,"undoable":true'
fi
if [ "$backend" = pg ]; then
  count6 "the journal is in its own schema" \
    "SELECT count(*) FROM pg_tables WHERE schemaname = 'cli_journal'" 6
  run "runs without --journal: not there" 0 "$bin" runs --db "$u6" && stdout_lacks "$run6"
  run "undo without --journal: not found" 2 "$bin" undo --db "$u6" --run "$run6" &&
    stderr_has "no merge run"
else
  run "--journal on SQLite is refused" 2 "$bin" runs --db "$u6" --journal x &&
    stderr_has "SQLite has no schemas"
fi
# Its row says running, owned by this shell (alive), then by a process
# that is gone.
run "a running owner" 0 "$bin" exec --db "$u6" "UPDATE $runs6 SET status = 'running',
  finished = NULL, host = '$(uname -n)', pid = $$, pid_start = NULL, backend = NULL
  WHERE run = '$run6'"
run "runs: running" 0 "$bin" runs --db "$u6" "${j6[@]}" &&
  stdout_has "^$run6 .* running .*\(process $$ on $(uname -n)\)$"
run "forget a running run is refused" 2 "$bin" runs --db "$u6" "${j6[@]}" --forget "$run6" &&
  stderr_has "is running (process $$ on $(uname -n)): it cannot be forgotten"
run "resume a running run is refused" 2 "$bin" merge --db "$u6" "${j6[@]}" --resume "$run6" &&
  stderr_has "is running"
(exit 0) &
gone=$!
wait "$gone"
run "its process is gone" 0 "$bin" exec --db "$u6" "UPDATE $runs6 SET pid = $gone WHERE run = '$run6'"
if run "runs: interrupted" 0 "$bin" runs --db "$u6" "${j6[@]}"; then
  stdout_has "^$run6 .* interrupted "
  stdout_has "^interrupted or failed runs: finish with 'nodup merge --resume RUN'"
fi
run "runs json: interrupted" 0 "$bin" runs --db "$u6" "${j6[@]}" --format json &&
  json_has '"state":"interrupted"'
run "resume the interrupted run" 0 "$bin" merge --db "$u6" "${j6[@]}" --resume "$run6" &&
  stdout_has "^merge run $run6: 0 duplicate groups"
run "runs: done again" 0 "$bin" runs --db "$u6" "${j6[@]}" && stdout_has "^$run6 .* done "
run "undo with --journal" 0 "$bin" undo --db "$u6" "${j6[@]}" --run "$run6" &&
  stdout_has "^undo run $run6: 3 row\(s\) restored, 3 row\(s\) set back$"
run "runs: undone" 0 "$bin" runs --db "$u6" "${j6[@]}" --format json &&
  { json_has '"state":"undone"'; json_has '"undoable":false'; }
run "forget an unknown run" 2 "$bin" runs --db "$u6" "${j6[@]}" --forget no-such-run &&
  stderr_has 'no merge run "no-such-run"'
run "forget" 0 "$bin" runs --db "$u6" "${j6[@]}" --forget "$run6" &&
  stdout_has "^forgot merge run $run6: its journal is deleted; it can no longer be resumed or undone$"
run "runs: forgotten" 0 "$bin" runs --db "$u6" "${j6[@]}" && stdout_has '^no merge runs recorded$'
run "undo a forgotten run" 2 "$bin" undo --db "$u6" "${j6[@]}" --run "$run6" &&
  stderr_has "no merge run"
expect_count6_rows() { count6 "$1" "SELECT count(*) FROM \"r6\"" "$2"; }
expect_count6_rows "the undo stands" 4

# --- issue 12, point 7: nothing disappears silently ------------------------
# Colliding link rows that held other values are named in the report (text
# and JSON); --column chooses the surviving values; a wrong spec is refused
# before anything is written.
run "exec setup (columns)" 0 "$bin" exec --db "$url" "
  CREATE TABLE \"c7\" ($id_col, \"k\" TEXT, \"score\" INTEGER, \"seen\" INTEGER, \"city\" TEXT);
  CREATE TABLE \"c7_grp\" ($id_col);
  CREATE TABLE \"c7_role\" ($id_col, \"c7\" INTEGER NOT NULL REFERENCES \"c7\" (\"id\"),
    \"grp\" INTEGER NOT NULL REFERENCES \"c7_grp\" (\"id\"), \"role\" TEXT, \"note\" TEXT,
    UNIQUE (\"c7\", \"grp\"));
  INSERT INTO \"c7\" (\"id\", \"k\", \"score\", \"seen\", \"city\") VALUES
    (1, 'a', 1, 1, 'Paris'), (2, 'a', 5, 3, 'Lyon'), (3, 'a', 2, 2, 'Nice'),
    (4, 'b', 1, 1, 'Oslo'), (5, 'b', 2, 2, 'Bern');
  INSERT INTO \"c7_grp\" (\"id\") VALUES (1);
  INSERT INTO \"c7_role\" (\"c7\", \"grp\", \"role\", \"note\") VALUES
    (1, 1, 'dev', NULL), (2, 1, 'admin', NULL), (3, 1, 'owner', 'x'), (4, 1, 'member', NULL),
    (5, 1, 'member', NULL)"
c7=(--table c7 --key k)
run "merge --help describes --column" 0 "$bin" merge --help &&
  { stdout_has '\[--column \[TABLE\.\]COL=POLICY \.\.\.\]'; stdout_has '^  --column COL=POLICY'; \
    stdout_has 'newest\(ORDERCOL\)'; }
run "enforce --help names --column" 0 "$bin" enforce --help && stdout_has '--column'
run "merge --column, a wrong spec" 2 "$bin" merge --db "$url" "${c7[@]}" --column score=avg &&
  stderr_has 'column policy "score=avg"'
run "merge --column, an unknown column" 2 "$bin" merge --db "$url" "${c7[@]}" \
  --column c7_role.nope=max && stderr_has '"nope"'
run "merge --column on the key" 2 "$bin" merge --db "$url" "${c7[@]}" --column k=max &&
  stderr_has "merge key"
run "enforce --column needs --merge" 2 "$bin" enforce --db "$url" "${c7[@]}" --column score=max &&
  stderr_has "merge options need --merge"
run "enforce --merge --column, a wrong spec" 2 "$bin" enforce --db "$url" "${c7[@]}" --merge \
  --column score=avg && stderr_has 'column policy "score=avg"'
if run "enforce --merge --column --dry-run" 0 "$bin" enforce --db "$url" "${c7[@]}" --merge \
  --column score=max --dry-run --format json; then
  json_has '"merged_groups":2'
fi
expect_count "the refusals merged nothing" c7 5
if run "merge --column --dry-run json" 0 "$bin" merge --db "$url" "${c7[@]}" --dry-run \
  --column score=max --format json; then
  json_has '"table":"c7_role","repointed":0,"deleted":3,"filled":0,"inferred":false,"differed":{"role":2,"note":1}}'
  json_has '"table":"c7","repointed":0,"deleted":3,"filled":2,"inferred":false,"differed":{}}'
fi
if run "merge --column" 0 "$bin" merge --db "$url" "${c7[@]}" --column score=max \
  --column 'city=newest(seen)' --column c7_role.role=longest; then
  stdout_has '^  ("public"\.)?"c7_role": 0 re-pointed, 3 deleted, 1 filled; collided rows held other values in role \(2 rows\), note \(1 row\): the surviving row kept its own unless --column set a policy \(the rows are archived\)$'
  stdout_has '^  ("public"\.)?"c7": 0 re-pointed, 3 deleted, 2 filled$'
fi
run "merge --column: the values" 0 "$bin" exec --db "$url" "INSERT INTO \"assertions\" (\"v\")
  SELECT NULL WHERE (SELECT count(*) FROM \"c7\" WHERE (\"id\" = 1 AND \"score\" = 5 AND \"city\" = 'Lyon')
    OR (\"id\" = 4 AND \"score\" = 2 AND \"city\" = 'Bern')) <> 2
  OR (SELECT \"role\" FROM \"c7_role\" WHERE \"c7\" = 1) <> 'admin'
  OR (SELECT \"role\" FROM \"c7_role\" WHERE \"c7\" = 4) <> 'member'"
run "merge --no-temp-index is accepted" 0 "$bin" merge --db "$url" "${c7[@]}" --no-temp-index \
  --dry-run && stdout_has '^dry run \(rolled back\): 0 duplicate groups'
run "--resume with --column is refused" 2 "$bin" merge --db "$url" --resume x --column score=max &&
  stderr_has "--resume takes the run's own"

# make demo: plain text when piped, and the commands it echoes paste back
# as the same words (the SQL and "Crème Brûlée" as one word each). Its exit
# status is not the point here: its races can hit SQLite's busy timeout on a
# loaded machine (sanitizers); the slug line is checked when it got there.
if [ "$backend" = sqlite ]; then
  current="make demo, piped"
  command_line="bash scripts/demo.sh $bin"
  bash "$(dirname "$0")/../../scripts/demo.sh" "$bin" >"$out" 2>"$err"
  status=$?
  before=$failures
  no_escape
  words=()
  eval "words=($(sed -n 's/^\$ \(.* exec .*CREATE UNIQUE INDEX.*\)$/\1/p' "$out"))"
  [ "${#words[@]}" -eq 5 ] && [ "${words[4]}" = \
    'CREATE UNIQUE INDEX conference_key ON conference (conference_id, app_id)' ] ||
    fail "the echoed exec is not 5 words: ${words[*]}"
  if [ "$status" -eq 0 ] || grep -q 'Brûlée' "$out"; then
    words=()
    eval "words=($(sed -n 's/^\$ \(.* slug .*Brûlée.*\)$/\1/p' "$out"))"
    [ "${words[9]:-}" = "Crème Brûlée" ] || fail "the echoed slug splits 'Crème Brûlée': ${words[*]}"
  else
    echo "note: make demo stopped early (exit status $status), slug line not checked"
  fi
  [ "$failures" -eq "$before" ] && passes=$((passes + 1))
fi

echo "cli ($backend): $passes passed, $failures failed"
[ "$failures" -eq 0 ]
