#!/usr/bin/env bash
# `make demo`: the bug nodup exists for, and nodup fixing it, on an
# embedded SQLite file. Everything goes through the nodup command.
set -euo pipefail
nodup=${1:-build/nodup}
dir=$(mktemp -d /tmp/nodup-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
db="$dir/demo.db"
# Bold headings on a terminal only: piped or logged, the text stays plain.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# A word as the shell would read it back: as it is when no character means
# anything to the shell, else in single quotes (a quote inside as '\'').
shell_word() {
  case $1 in
  '' | *[!A-Za-z0-9_@%+=:,./-]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
  *) printf '%s' "$1" ;;
  esac
}
# Echo the command so that it can be pasted, then run it.
run() {
  local word line='$'
  for word in "$@"; do line+=" $(shell_word "$word")"; done
  printf '%s\n' "$line"
  "$@"
}

"$nodup" exec --db "file:$db?mode=rwc" \
  "CREATE TABLE conference_naive (id INTEGER PRIMARY KEY, conference_id TEXT NOT NULL, app_id INTEGER NOT NULL)" \
  "CREATE TABLE session (id INTEGER PRIMARY KEY, conference INTEGER NOT NULL REFERENCES conference_naive (id))" \
  "CREATE TABLE conference (id INTEGER PRIMARY KEY, conference_id TEXT NOT NULL, app_id INTEGER NOT NULL)" \
  "CREATE TABLE team (id INTEGER PRIMARY KEY, name TEXT NOT NULL, slug TEXT NOT NULL UNIQUE)" \
  "CREATE TABLE chapter (id INTEGER PRIMARY KEY, episode INTEGER NOT NULL, idx INTEGER NOT NULL, title TEXT NOT NULL, UNIQUE (episode, idx))" \
  "CREATE TABLE member (id INTEGER PRIMARY KEY, email TEXT NOT NULL, org INTEGER NOT NULL)"

say "1. Check-then-insert (SELECT, nothing found, INSERT) from 16 threads, no unique index"
run "$nodup" race --db "$db" --table conference_naive --key conference_id,app_id --naive --workers 16 --keys 500

say "2. nodup refuses a key that no unique index backs, and says how to fix it"
run "$nodup" check --db "$db" --table conference --key conference_id,app_id || true

say "3. Back the key with the index it printed, then race again with nodup"
run "$nodup" exec --db "$db" 'CREATE UNIQUE INDEX conference_key ON conference (conference_id, app_id)'
run "$nodup" race --db "$db" --table conference --key conference_id,app_id --workers 16 --keys 500
run "$nodup" race --db "$db" --table conference --key conference_id,app_id --workers 4 --keys 500 --processes

say "4. One get-or-create from the shell: created, then existing, same id"
run "$nodup" get-or-create --db "$db" --table conference --key conference_id,app_id --set conference_id=conf-42 --set app_id=7
run "$nodup" get-or-create --db "$db" --table conference --key conference_id,app_id --set conference_id=conf-42 --set app_id=7 --format json

say "5. Clean up what the naive race left, in three steps: scan, merge, enforce"
"$nodup" exec --db "$db" "INSERT INTO session (conference) SELECT id FROM conference_naive"
run "$nodup" scan --db "$db" --table conference_naive --key conference_id,app_id --limit 3 || true
run "$nodup" merge --db "$db" --table conference_naive --key conference_id,app_id
echo "# the naive writers are still running and make new duplicates; enforce merges those"
echo "# and creates the index in one transaction, so none can slip in between:"
"$nodup" race --db "$db" --table conference_naive --key conference_id,app_id --naive --workers 8 \
  --keys 200 >"$dir/writers" 2>&1 &
writers=$!
sleep 0.3
run "$nodup" enforce --db "$db" --table conference_naive --key conference_id,app_id --merge
wait "$writers" || true
echo "writers: $(grep -E '^(duplicates|errors):' "$dir/writers" | paste -sd' ')"
run "$nodup" check --db "$db" --table conference_naive --key conference_id,app_id
run "$nodup" scan --db "$db" --table conference_naive --key conference_id,app_id --limit 1

say "6. A slug collision storm: 20 concurrent 'My Team!' creations, 20 distinct slugs"
for i in $(seq 20); do
  "$nodup" slug --db "$db" --table team --column slug --from "My Team!" --set "name=My Team!" >>"$dir/slugs" &
done
wait
echo "slugs: $(sort -V "$dir/slugs" | awk '{print $1}' | paste -sd' ')"
run "$nodup" slug --db "$db" --table team --column slug --from "Crème Brûlée" --set "name=Crème Brûlée"

say "7. An all-or-nothing import, then the same import again: refused as already done"
printf 'episode,idx,title\n39,1,"Intro, part one"\n39,2,"The ""big"" question"\n39,3,Outro\n' > "$dir/chapters.csv"
run "$nodup" import --db "$db" --table chapter --key episode,idx --csv "$dir/chapters.csv"
run "$nodup" import --db "$db" --table chapter --key episode,idx --csv "$dir/chapters.csv" || true

say "8. A key that ignores case and spaces, and many keys in one call"
run "$nodup" enforce --db "$db" --table member --key 'lower(trim(email)),org'
printf 'email,org\nAnn@Example.org,1\n  ann@example.org ,1\nbob@example.org,1\nANN@EXAMPLE.ORG,2\n' > "$dir/members.csv"
echo "# four lines, three rows: Ann twice in org 1 (one row, created once), Bob, and Ann in org 2"
run "$nodup" get-or-create --db "$db" --table member --key 'lower(trim(email)),org' --csv "$dir/members.csv"
