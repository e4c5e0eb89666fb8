#!/usr/bin/env bash
# tests/scripts/pgcluster_test.sh -- scripts/pgcluster.sh deletes only what
# it made. Every case runs inside a directory this test made with mktemp, so
# even a broken script can only reach that directory. Needs no PostgreSQL:
# each refusal happens before a server binary is looked up.
set -u
script=${1:?usage: pgcluster_test.sh PATH/TO/pgcluster.sh}
top=$(mktemp -d /tmp/nodup-pgcluster-test.XXXXXX)
trap 'rm -rf "$top"' EXIT
failures=0
check() { # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; failures=$((failures + 1)); fi
}

# A directory somebody else made, with their files in it.
foreign="$top/foreign"
mkdir -p "$foreign/sub"
echo keep >"$foreign/file"
echo keep >"$foreign/sub/file"

"$script" stop "$foreign/sock" >"$top/out" 2>&1
check "stop on a foreign directory fails" test $? -ne 0
check "stop on a foreign directory names it" grep -q "was not made by pgcluster.sh" "$top/out"
check "stop on a foreign directory deletes nothing" \
  test -f "$foreign/file" -a -f "$foreign/sub/file"

"$script" start "$foreign/sock" >"$top/out" 2>&1
check "start on a foreign directory fails" test $? -ne 0
check "start on a foreign directory deletes nothing" \
  test -f "$foreign/file" -a -f "$foreign/sub/file" -a ! -e "$foreign/sock"

# The parent of a well-known directory (stop /tmp/pgsock would have meant
# rm -rf /tmp): refused by name before anything else. Run only when the
# marker check above held, so a broken script cannot reach /tmp itself.
if [ "$failures" -eq 0 ]; then
  "$script" stop /tmp/nodup-no-such-sock >"$top/out" 2>&1
  check "stop with /tmp as the cluster directory fails" test $? -ne 0
  check "stop with /tmp as the cluster directory is refused" grep -q "refusing" "$top/out"
fi

# kill and resume (a server restart, for tests) touch only a cluster it made.
for cmd in kill resume; do
  "$script" $cmd "$foreign/sock" >"$top/out" 2>&1
  check "$cmd on a foreign directory fails" test $? -ne 0
  check "$cmd on a foreign directory names it" grep -q "was not made by pgcluster.sh" "$top/out"
  check "$cmd on a foreign directory deletes nothing" \
    test -f "$foreign/file" -a -f "$foreign/sub/file"
done

# A symlink to a directory that carries the marker is still not ours.
mkdir "$top/real"
echo x >"$top/real/.nodup-pgcluster"
echo keep >"$top/real/file"
ln -s "$top/real" "$top/link"
"$script" stop "$top/link/sock" >"$top/out" 2>&1
check "stop through a symlink fails" test $? -ne 0
check "stop through a symlink deletes nothing" test -f "$top/real/file" -a -L "$top/link"

# A directory it made (marker present, no server running): stop removes it.
mkdir "$top/ours"
echo x >"$top/ours/.nodup-pgcluster"
"$script" stop "$top/ours/sock" >"$top/out" 2>&1
check "stop on its own directory succeeds" test $? -eq 0
check "stop on its own directory removes it" test ! -e "$top/ours"

# Nothing there: stop is a no-op that succeeds.
"$script" stop "$top/none/sock" >"$top/out" 2>&1
check "stop with nothing there succeeds" test $? -eq 0

[ "$failures" -eq 0 ] && echo "pgcluster_test: all passed" || echo "pgcluster_test: $failures failed"
[ "$failures" -eq 0 ]
