#!/usr/bin/env bash
# tests/scripts/pgversions_test.sh -- scripts/pgversions.sh deletes only what
# it made. Every case runs with NODUP_PG_CACHE inside a directory this test
# made with mktemp, so even a broken script can only reach that directory.
# Needs neither npm nor the network: each refusal happens before a fetch.
set -u
script=${1:?usage: pgversions_test.sh PATH/TO/pgversions.sh}
top=$(mktemp -d /tmp/nodup-pgversions-test.XXXXXX)
trap 'rm -rf "$top"' EXIT
export NODUP_PG_CACHE="$top/cache"
mkdir "$NODUP_PG_CACHE"
failures=0
check() { # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; failures=$((failures + 1)); fi
}

# Nothing was fetched or unpacked: the cache holds only what the test put there.
not_fetched() { [ "$(ls -A "$NODUP_PG_CACHE")" = 17 ]; }

# A directory somebody else made where a major would go.
foreign="$NODUP_PG_CACHE/17"
mkdir -p "$foreign/sub"
echo keep >"$foreign/file"
echo keep >"$foreign/sub/file"

"$script" remove 17 >"$top/out" 2>&1
check "remove on a foreign directory fails" test $? -ne 0
check "remove on a foreign directory names it" grep -q "was not made by pgversions.sh" "$top/out"
check "remove on a foreign directory deletes nothing" test -f "$foreign/file" -a -f "$foreign/sub/file"

"$script" install 17 >"$top/out" 2>&1
check "install over a foreign directory fails" test $? -ne 0
check "install over a foreign directory fetches nothing" not_fetched
check "install over a foreign directory deletes nothing" test -f "$foreign/file" -a -f "$foreign/sub/file"

"$script" bin 17 >"$top/out" 2>&1
check "bin over a foreign directory fails" test $? -ne 0
check "bin over a foreign directory deletes nothing" test -f "$foreign/file" -a -f "$foreign/sub/file"

# A symlink to a directory that carries the marker is still not ours.
mkdir "$top/real"
printf 'made by nodup scripts/pgversions.sh\nversion=16.0\n' >"$top/real/.nodup-pgversions"
echo keep >"$top/real/file"
ln -s "$top/real" "$NODUP_PG_CACHE/16"
"$script" remove 16 >"$top/out" 2>&1
check "remove through a symlink fails" test $? -ne 0
check "remove through a symlink deletes nothing" test -f "$top/real/file" -a -L "$NODUP_PG_CACHE/16"

# A directory it made (marker present): remove deletes it, and only it.
mkdir -p "$NODUP_PG_CACHE/18/package"
printf 'made by nodup scripts/pgversions.sh\nversion=18.0\n' >"$NODUP_PG_CACHE/18/.nodup-pgversions"
"$script" remove 18 >"$top/out" 2>&1
check "remove on its own directory succeeds" test $? -eq 0
check "remove on its own directory removes it" test ! -e "$NODUP_PG_CACHE/18"
check "remove leaves the cache directory" test -d "$NODUP_PG_CACHE" -a -f "$foreign/file"

# Nothing there: remove is a no-op that succeeds.
"$script" remove 14 >"$top/out" 2>&1
check "remove with nothing there succeeds" test $? -eq 0

# Majors it does not pin are refused, naming the ones it has.
"$script" bin 13 >"$top/out" 2>&1
check "an unknown major fails" test $? -ne 0
check "an unknown major is named as unpinned" grep -q "no pinned version for PostgreSQL 13" "$top/out"
check "list names every pinned version" test "$("$script" list | wc -l)" -eq 5

[ "$failures" -eq 0 ] && echo "pgversions_test: all passed" || echo "pgversions_test: $failures failed"
[ "$failures" -eq 0 ]
