#!/bin/bash
# symbols_test.sh ARCHIVE SHARED: the libraries export only the nodup_ names.
#
# libnodup.a cannot hide its internal functions, so src/namespace.h maps each
# to nodup__<name>; a new internal function missing from that list shows up
# here as a global symbol without the prefix. The shared library is built
# with -fvisibility=hidden, so it must export exactly the public API.
set -euo pipefail
archive=$1 shared=$2
bad=$(nm -g --defined-only "$archive" | awk 'NF == 3 { print $3 }' |
      grep -v '^nodup_' | sort -u || true)
if [ -n "$bad" ]; then
  echo "libnodup.a exports names without the nodup_ prefix; add them to src/namespace.h:" >&2
  echo "$bad" >&2
  exit 1
fi
bad=$(nm -D --defined-only "$shared" | awk 'NF == 3 { print $3 }' |
      grep '^nodup__' || true)
if [ -n "$bad" ]; then
  echo "libnodup.so exports internal names (nodup__*):" >&2
  echo "$bad" >&2
  exit 1
fi
echo "symbols: $(nm -g --defined-only "$archive" | awk 'NF == 3' | wc -l) in libnodup.a, all nodup_-prefixed"
