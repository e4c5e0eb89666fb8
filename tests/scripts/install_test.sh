#!/usr/bin/env bash
# What a user who links libnodup does, from an install in a temporary
# prefix: build examples/get_or_create.c once with pkg-config and once with
# CMake's find_package(nodup), run both on a fresh SQLite file; and the man
# pages nodup(1) and libnodup(3) are installed and render.
#
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=${1:?usage: install_test.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: install_test.sh BUILD_DIR SOURCE_DIR}
tmp=$(mktemp -d /tmp/nodup-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/include/nodup.h" || { echo "install_test: no include/nodup.h" >&2; exit 1; }
libdir=$(dirname "$(find "$prefix" -name 'libnodup.so' | head -1)")
test -n "$libdir" || { echo "install_test: no libnodup.so installed" >&2; exit 1; }
pcdir=$libdir/pkgconfig
test -f "$pcdir/nodup.pc" || { echo "install_test: no nodup.pc in $pcdir" >&2; exit 1; }
test -f "$libdir/cmake/nodup/nodupConfig.cmake" || { echo "install_test: no nodupConfig.cmake" >&2; exit 1; }

# 0. The man pages: under share/man (GNUInstallDirs' MANDIR), with the
# project's version in the footer, rendering without a warning where groff
# is present (-ww: every warning; -z: no output), else through man -l.
for page in man1/nodup.1 man3/libnodup.3; do
  file=$prefix/share/man/$page
  test -f "$file" || { echo "install_test: no $page under $prefix/share/man" >&2; exit 1; }
  grep -q '^\.TH [A-Z]* [13] .*"nodup [0-9][0-9.]*"' "$file" ||
    { echo "install_test: $page has no .TH line with the version" >&2; exit 1; }
  if command -v groff >/dev/null; then
    warnings=$(groff -man -Tutf8 -ww -z "$file" 2>&1)
    test -z "$warnings" || { echo "install_test: $page: $warnings" >&2; exit 1; }
  fi
  if command -v man >/dev/null; then
    # Into a variable first: grep -q quitting early would SIGPIPE man.
    rendered=$(man -l "$file" 2>/dev/null)
    grep -q '^SEE ALSO' <<<"$rendered" ||
      { echo "install_test: man -l $page renders no SEE ALSO section" >&2; exit 1; }
  fi
done

# 1. pkg-config (the .pc names the configured prefix: point it here).
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$prefix" --cflags --libs nodup)
cc -Wall -Wextra -Werror -o "$tmp/goc_pc" "$src/examples/get_or_create.c" $flags
LD_LIBRARY_PATH=$libdir "$tmp/goc_pc" "file:$tmp/pc.db?mode=rwc" >"$tmp/pc.out"
grep -q "pycon-2026/web -> id 1 (found)" "$tmp/pc.out"

# 2. find_package(nodup) and nodup::nodup.
mkdir "$tmp/app"
cat >"$tmp/app/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(app LANGUAGES C)
find_package(nodup 0.1 REQUIRED)
add_executable(goc "$src/examples/get_or_create.c")
target_link_libraries(goc PRIVATE nodup::nodup)
CMAKE
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/app/build" >/dev/null
LD_LIBRARY_PATH=$libdir "$tmp/app/build/goc" "file:$tmp/cm.db?mode=rwc" >"$tmp/cm.out"
grep -q "pycon-2026/web -> id 1 (found)" "$tmp/cm.out"
echo "install_test: man pages installed; pkg-config and find_package(nodup) both build and run the example"
