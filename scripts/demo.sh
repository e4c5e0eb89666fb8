#!/usr/bin/env bash
# `make demo`: the bug nodup exists for, and nodup fixing it, on an
# embedded SQLite file. Everything goes through the nodup command.
set -euo pipefail
nodup=${1:-build/nodup}
dir=$(mktemp -d /tmp/nodup-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
db="$dir/demo.db"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

"$nodup" exec --db "file:$db?mode=rwc" \
  "CREATE TABLE conference_naive (id INTEGER PRIMARY KEY, conference_id TEXT NOT NULL, app_id INTEGER NOT NULL)" \
  "CREATE TABLE conference (id INTEGER PRIMARY KEY, conference_id TEXT NOT NULL, app_id INTEGER NOT NULL)"

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
