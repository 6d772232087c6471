#!/usr/bin/env bash
# Installs what ibcbench's embedded server needs on Debian/Ubuntu: PostgreSQL (server with contrib,
# pgbench and server headers), pg_cron, hypopg, and TimescaleDB; PgBouncer; Redis; Go and pgx v4 (the pgx
# runner, built here); plus python3-venv. Safe to re-run:
# what is present is left alone.
#
# TimescaleDB, Community edition by default (the Apache-2.0 core plus tsl/, under the Timescale License:
# continuous aggregates, compression, jobs), built from source against the installed server headers,
# from the first of:
#   1. TIMESCALEDB_SOURCE: a source tarball, an unpacked source tree, or an http(s) URL of a tarball;
#   2. the vendored tarball ../shared/vendor/timescaledb-<version>.tar.gz beside this repository
#      (its sha256 is checked against ../shared/vendor/README.md when that lists it);
#   3. the upstream tag tarball (short timeouts: a machine without internet falls through at once);
#   4. Apache edition only: the binary package postgresql-<major>-timescaledb where an apt source has
#      it, else Debian's source package `timescaledb` from a newer suite of this machine's mirror.
# A TimescaleDB that is present but older, or without the Community edition, gets the new version
# installed beside it (its shared library stays; databases keep it until `ibcbench db up` updates them).
# The project's patches (patches/timescaledb/series: which versions get which) are applied to the source
# before the build; what a build got is recorded in $(pg_config --sharedir)/extension/
# timescaledb.ibcbench-patches (`ibcbench db status` shows it), and a build whose record differs from what
# this script would apply is built again. Files are installed by rename, never written over in place: the
# running servers' backends keep the library they mapped, new ones load the new file.
#
#   TIMESCALEDB_EDITION=apache scripts/install-system.sh  # the Apache edition only: keeps any TimescaleDB
#                                                          # present, builds with -DAPACHE_ONLY=1 otherwise
#   TIMESCALEDB_VERSION=2.28.3                             # the version wanted (default: the newest vendored
#                                                          # tarball's, else 2.28.3)
#   TIMESCALEDB_SOURCE=/path/or/url                        # build from this source
#   TIMESCALEDB_PATCHES=none                               # build without the project's patches (to see
#                                                          # what they fix; a plain re-run builds them back in)
#   PG_MAJOR=15 scripts/install-system.sh                  # pick the PostgreSQL major (default: the distribution's)
#   TIMESCALEDB_SOURCE_SUITES="trixie sid"                 # suites tried for Debian's source package
set -euo pipefail

log() { printf 'install-system: %s\n' "$*"; }
die() { printf 'install-system: error: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENDOR_DIR="$REPO/../shared/vendor"
# the newest vendored tarball sets the default version, so that dropping a newer one there is enough
newest_vendored=$(ls "$VENDOR_DIR"/timescaledb-*.tar.gz 2>/dev/null | sort -V | tail -n 1 || true)
vendored_version=$(basename "${newest_vendored:-x}" | sed -n 's/^timescaledb-\([0-9][0-9.]*[0-9]\)\.tar\.gz$/\1/p')
TIMESCALEDB_VERSION=${TIMESCALEDB_VERSION:-${vendored_version:-2.28.3}}
case "${TIMESCALEDB_PATCHES:-series}" in
    series|none) ;;
    *) die "TIMESCALEDB_PATCHES=${TIMESCALEDB_PATCHES} is not a choice: leave it unset (patches/timescaledb/series) or use none" ;;
esac
case "${TIMESCALEDB_EDITION:-community}" in
    community|timescale) EDITION=community ;;
    apache) EDITION=apache ;;
    *) die "TIMESCALEDB_EDITION=${TIMESCALEDB_EDITION} is not an edition: use community (default) or apache" ;;
esac
if [ -n "${TIMESCALEDB_SOURCE:-}" ] && [ "${TIMESCALEDB_SOURCE#http://}" = "$TIMESCALEDB_SOURCE" ] \
   && [ "${TIMESCALEDB_SOURCE#https://}" = "$TIMESCALEDB_SOURCE" ] && [ ! -e "$TIMESCALEDB_SOURCE" ]; then
    die "TIMESCALEDB_SOURCE=$TIMESCALEDB_SOURCE does not exist: give a tarball, a source folder or an http(s) URL"
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (or install sudo)"
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian and Ubuntu"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

APT_UPDATED=0
apt_update() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
}

apt_install() {
    local missing=()
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_update
        log "apt-get install ${missing[*]}"
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# ---- PostgreSQL major ----------------------------------------------------------------------
if [ -z "${PG_MAJOR:-}" ]; then
    PG_MAJOR=$(ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -n 1 || true)
fi
if [ -z "${PG_MAJOR:-}" ]; then
    apt_update
    PG_MAJOR=$(apt-cache depends postgresql 2>/dev/null | sed -n 's/.*Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n 1)
    [ -n "$PG_MAJOR" ] || die "cannot tell which PostgreSQL major this distribution ships: set PG_MAJOR"
fi
log "PostgreSQL $PG_MAJOR"

# Debian's postgresql-common creates and starts a 'main' cluster on install; the kit runs its own.
if ! installed "postgresql-$PG_MAJOR"; then
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/ibcbench.conf >/dev/null
fi

# apt installs the newest candidate; install the server and its headers together so they match.
apt_install "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-cron" \
    "postgresql-$PG_MAJOR-hypopg" python3-venv ca-certificates
# PgBouncer for `ibcbench db up --pgbouncer` (the kit runs its own; Debian's service is not needed)
apt_install pgbouncer
# Redis for `ibcbench db up --redis` (the kit runs its own, on a free port with a password; Debian's
# service is not needed), and Go with pgx v4's sources for the pgx runner (runners/pgx), built
# offline in GOPATH mode against Debian's golang-*-dev packages
apt_install redis-server golang-go golang-github-jackc-pgx-v4-dev
pgx_dir="$(cd "$(dirname "$0")/.." && pwd)/runners/pgx"
if [ -f "$pgx_dir/main.go" ] && { [ ! -x "$pgx_dir/pgx-runner" ] || [ "$pgx_dir/main.go" -nt "$pgx_dir/pgx-runner" ]; }; then
    log "building the pgx runner (runners/pgx/pgx-runner)"
    gocache=$(mktemp -d /tmp/ibcbench-gocache.XXXXXX)
    (cd "$pgx_dir" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$gocache" GOFLAGS= \
        go build -o pgx-runner.new . && mv pgx-runner.new pgx-runner) \
        || { rm -rf "$gocache"; die "building the pgx runner failed (runners/pgx)"; }
    rm -rf "$gocache"
fi
server_ver=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR")
headers_ver=$(dpkg-query -W -f='${Version}' "postgresql-server-dev-$PG_MAJOR")
if [ "$server_ver" != "$headers_ver" ]; then
    apt_update
    log "aligning postgresql-$PG_MAJOR ($server_ver) with its headers ($headers_ver)"
    $SUDO apt-get install -y -qq --no-install-recommends "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" >/dev/null
fi

# ---- TimescaleDB ---------------------------------------------------------------------------
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
EXT_DIR="$($PG_CONFIG --sharedir)/extension"
LIB_DIR="$($PG_CONFIG --pkglibdir)"

default_version() {
    [ -f "$EXT_DIR/timescaledb.control" ] || return 0
    sed -n "s/^default_version = '\(.*\)'/\1/p" "$EXT_DIR/timescaledb.control"
}
# version_ge A B: A >= B in version order
version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]; }
has_apache() { local v; v=$(default_version); [ -n "$v" ] && [ -f "$LIB_DIR/timescaledb-$v.so" ] && [ -f "$LIB_DIR/timescaledb.so" ]; }
has_community() { local v; v=$(default_version); has_apache && [ -f "$LIB_DIR/timescaledb-tsl-$v.so" ]; }

# ---- the project's patches and the record of what a build got --------------------------------
PATCH_DIR="$REPO/patches/timescaledb"
RECORD="$EXT_DIR/timescaledb.ibcbench-patches"

# patches_for V: the names of the project's patches that TimescaleDB V gets, in order
patches_for() {
    [ "${TIMESCALEDB_PATCHES:-series}" = series ] && [ -f "$PATCH_DIR/series" ] || return 0
    local name ranges upstream r
    while read -r name ranges upstream; do
        case "$name" in ''|\#*) continue ;; esac
        for r in ${ranges//,/ }; do
            if version_ge "$1" "${r%-*}" && version_ge "${r#*-}" "$1"; then echo "$name"; break; fi
        done
    done < "$PATCH_DIR/series"
}
upstream_of() { awk -v n="$1" '$1 == n { print $3; exit }' "$PATCH_DIR/series"; }
# record_line V: the record's line for a build of V with the patches this script applies
record_line() {
    local out="" n
    for n in $(patches_for "$1"); do out+="${out:+, }$n (stands in for upstream $(upstream_of "$n"))"; done
    echo "$1 patched: ${out:-none}"
}
# recorded_line V: the record's line for the installed build of V (empty when it has none)
recorded_line() { [ ! -f "$RECORD" ] || awk -v v="$1" '$1 == v' "$RECORD" | tail -n 1; }
# patches_current V: the installed build of V got the patches this script would apply (no record: none)
patches_current() {
    local want got; want=$(record_line "$1"); got=$(recorded_line "$1")
    [ "$got" = "$want" ] || { [ -z "$got" ] && [ "$want" = "$1 patched: none" ]; }
}
# write_record V: replaces V's line in the record (written beside it, then renamed into place)
write_record() {
    local tmp="$EXT_DIR/.timescaledb.ibcbench-patches.new.$$"
    {
        echo "# TimescaleDB builds by ibcbench's scripts/install-system.sh: the project's patches each got"
        [ ! -f "$RECORD" ] || awk -v v="$1" '$1 != v && $1 !~ /^#/' "$RECORD"
        record_line "$1"
    } | $SUDO tee "$tmp" >/dev/null
    $SUDO chmod 644 "$tmp" && $SUDO mv -f "$tmp" "$RECORD"
}

present=$(default_version)
if [ "$EDITION" = "community" ] && has_community && version_ge "$present" "$TIMESCALEDB_VERSION" \
   && ! patches_current "$present"; then
    got=$(recorded_line "$present"); got=${got#* patched: }
    log "TimescaleDB present: $present, built with patches: ${got:-none recorded}; this script gives it: $(record_line "$present" | sed 's/^[^ ]* patched: //'): building $present again"
    TIMESCALEDB_VERSION=$present
fi
if [ "$EDITION" = "apache" ] && has_apache && [ -z "${TIMESCALEDB_SOURCE:-}" ]; then
    log "TimescaleDB present: $present (kept: TIMESCALEDB_EDITION=apache; the server runs with timescaledb.license=apache)"
    exit 0
fi
if [ "$EDITION" = "community" ] && has_community && version_ge "$present" "$TIMESCALEDB_VERSION" \
   && patches_current "$present" && [ -z "${TIMESCALEDB_SOURCE:-}" ]; then
    log "TimescaleDB present: $present (Community edition; $(record_line "$present" | sed 's/^[^ ]* //'))"
    exit 0
fi
if [ -n "$present" ] && [ "$present" != "$TIMESCALEDB_VERSION" ]; then
    log "TimescaleDB present: $present$(has_community && echo ' (Community edition)' || echo ' (Apache edition only)'); wanted: $TIMESCALEDB_VERSION ($EDITION edition): installing it beside"
fi

apt_install cmake make gcc xz-utils patch
work=$(mktemp -d /tmp/ibcbench-timescaledb.XXXXXX)
trap 'rm -rf "$work"' EXIT

# apply_patches V FOUND: the project's patches for V onto $work/src (all checked first, so none is half-applied)
apply_patches() {
    local p
    for p in $(patches_for "$1"); do
        [ -f "$PATCH_DIR/$p.patch" ] || die "patches/timescaledb/series names $p, but $PATCH_DIR/$p.patch is missing"
        patch -d "$work/src" -p1 --forward --dry-run < "$PATCH_DIR/$p.patch" > "$work/patch.log" 2>&1 \
            || { cat "$work/patch.log" >&2; die "patch $p does not apply to TimescaleDB $1 from $2: fix patches/timescaledb/series or build without the project's patches (TIMESCALEDB_PATCHES=none)"; }
    done
    for p in $(patches_for "$1"); do
        patch -d "$work/src" -p1 --forward -s < "$PATCH_DIR/$p.patch" || die "patch $p failed on TimescaleDB $1"
        log "applied patches/timescaledb/$p.patch (stands in for upstream $(upstream_of "$p"))"
    done
}

# install_staged V: `make install` into $work/stage, then each file into place by rename (a copy beside
# it first, so the rename stays on one file system): a library that a running backend has mapped is
# never written over, it keeps its old inode. Libraries first, the control file (the default version) last.
install_staged() {
    local stage="$work/stage" rel dest tmp
    DESTDIR="$stage" make -C "$work/build" install > "$work/install.log" 2>&1 \
        || { tail -n 20 "$work/install.log" >&2; die "installing TimescaleDB $1 into $stage failed"; }
    (cd "$stage" && find . \( -type f -o -type l \) -name '*.so' && find . \( -type f -o -type l \) ! -name '*.so' ! -name '*.control' \
        && find . \( -type f -o -type l \) -name '*.control') > "$work/staged"
    while read -r rel; do
        rel=${rel#.}; dest="$rel"; tmp="$(dirname "$dest")/.$(basename "$dest").ibcbench-new.$$"
        if [ -f "$dest" ] && [ ! -L "$stage$rel" ] && cmp -s "$stage$rel" "$dest"; then continue; fi
        $SUDO mkdir -p "$(dirname "$dest")"
        $SUDO cp -P --preserve=mode,timestamps "$stage$rel" "$tmp" && $SUDO mv -fT "$tmp" "$dest" \
            || { $SUDO rm -f "$tmp"; die "installing $dest failed (TimescaleDB $1)"; }
    done < "$work/staged"
}

# sha256 of a vendored file as listed in the README beside it (empty when not listed)
listed_sha256() {
    local readme; readme="$(dirname "$1")/README.md"
    [ -f "$readme" ] || return 0
    grep -F "\`$(basename "$1")\`" "$readme" | grep -oE '\b[0-9a-f]{64}\b' | head -n 1 || true
}

# unpack_source SRC: a tarball or folder into $work/src; returns 1 when SRC is not usable
unpack_source() {
    rm -rf "$work/src" && mkdir -p "$work/src"
    if [ -d "$1" ]; then
        cp -a "$1"/. "$work/src"/
    else
        tar -xzf "$1" -C "$work/src" --strip-components=1 || return 1
    fi
    [ -f "$work/src/version.config" ] && [ -f "$work/src/CMakeLists.txt" ]
}

source_version() { sed -n 's/^version = \([0-9][0-9.]*\).*/\1/p' "$work/src/version.config" | head -n 1; }

# download URL FILE with short timeouts; returns 1 when unreachable
download() {
    if command -v curl >/dev/null; then
        curl -fsSL --connect-timeout 5 --max-time 300 -o "$2" "$1"
    elif command -v wget >/dev/null; then
        wget -q --connect-timeout=5 --tries=1 --timeout=60 -O "$2" "$1"
    else
        return 1
    fi
}

found=""
if [ -n "${TIMESCALEDB_SOURCE:-}" ]; then
    src="$TIMESCALEDB_SOURCE"
    if [ "${src#http}" != "$src" ]; then
        log "downloading TimescaleDB source from $src"
        download "$src" "$work/source.tar.gz" || die "cannot download TIMESCALEDB_SOURCE=$src"
        src="$work/source.tar.gz"
    fi
    unpack_source "$src" || die "TIMESCALEDB_SOURCE=$TIMESCALEDB_SOURCE is not a TimescaleDB source tree or tarball"
    found="TIMESCALEDB_SOURCE"
else
    vendored=""
    if [ -f "$VENDOR_DIR/timescaledb-$TIMESCALEDB_VERSION.tar.gz" ]; then
        vendored="$VENDOR_DIR/timescaledb-$TIMESCALEDB_VERSION.tar.gz"
    fi
    if [ -n "$vendored" ]; then
        want_sha=$(listed_sha256 "$vendored")
        if [ -n "$want_sha" ]; then
            got_sha=$(sha256sum "$vendored" | cut -d' ' -f1)
            [ "$got_sha" = "$want_sha" ] \
                || die "$vendored has sha256 $got_sha, its README lists $want_sha: replace the file"
        fi
        unpack_source "$vendored" || die "$vendored is not a TimescaleDB source tarball"
        found="$(cd "$(dirname "$vendored")" && pwd)/$(basename "$vendored")${want_sha:+ (sha256 checked)}"
    else
        url="https://github.com/timescale/timescaledb/archive/refs/tags/$TIMESCALEDB_VERSION.tar.gz"
        log "no vendored source; trying the upstream tag tarball"
        if download "$url" "$work/upstream.tar.gz" && unpack_source "$work/upstream.tar.gz"; then
            found="the upstream tag $TIMESCALEDB_VERSION"
        else
            log "the upstream tag tarball is not reachable from here"
        fi
    fi
fi

if [ -n "$found" ]; then
    version=$(source_version)
    [ -n "$version" ] || die "cannot read the version from version.config of $found"
    if [ "$EDITION" = "community" ] && has_community && version_ge "$present" "$version" \
       && { [ "$present" != "$version" ] || patches_current "$present"; }; then
        log "TimescaleDB present: $present (Community edition); $found holds $version: nothing to do"
        patches_current "$present" || log "warning: the installed $present was built without $(record_line "$present" | sed 's/^[^ ]* patched: //'); give its source (TIMESCALEDB_SOURCE) to build it again"
        exit 0
    fi
    apply_patches "$version" "$found"
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_CONFIG="$PG_CONFIG" -DSEND_TELEMETRY_DEFAULT=OFF
           -DUSE_TELEMETRY=OFF -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF
           -DGENERATE_DOWNGRADE_SCRIPT=OFF)
    label="Community edition"
    if [ "$EDITION" = "apache" ]; then flags+=(-DAPACHE_ONLY=1); label="Apache edition"; fi
    log "building TimescaleDB $version ($label, $(record_line "$version" | sed 's/^[^ ]* //')) from $found against PostgreSQL $PG_MAJOR"
    started=$SECONDS
    cmake -S "$work/src" -B "$work/build" "${flags[@]}" > "$work/cmake.log" 2>&1 \
        || { tail -n 20 "$work/cmake.log" >&2; die "cmake failed for TimescaleDB $version"; }
    make -C "$work/build" -j"$(nproc)" > "$work/make.log" 2>&1 \
        || { tail -n 20 "$work/make.log" >&2; die "building TimescaleDB $version failed"; }
    install_staged "$version"
    write_record "$version"
    log "TimescaleDB $version installed ($label, built from source in $((SECONDS - started)) s; $(record_line "$version" | sed 's/^[^ ]* //'))"
    if [ "$EDITION" = "community" ]; then
        log "the Community edition's tsl/ code is under the Timescale License (tsl/LICENSE-TIMESCALE); TIMESCALEDB_EDITION=apache builds the Apache-2.0 edition instead"
    fi
    exit 0
fi

# ---- fallback: the Apache edition from the distribution -------------------------------------
if has_community && [ "$EDITION" = "community" ]; then
    log "warning: no TimescaleDB $TIMESCALEDB_VERSION source reachable (set TIMESCALEDB_SOURCE); keeping TimescaleDB $present (Community edition$(patches_current "$present" || echo ", without $(record_line "$present" | sed 's/^[^ ]* patched: //')"))"
    exit 0
fi
if has_apache; then
    log "warning: no TimescaleDB $TIMESCALEDB_VERSION source reachable (set TIMESCALEDB_SOURCE); keeping TimescaleDB $present (Apache edition): the kit runs with timescaledb.license=apache"
    exit 0
fi
[ "$EDITION" = "apache" ] || log "warning: no TimescaleDB $TIMESCALEDB_VERSION source reachable (set TIMESCALEDB_SOURCE); installing the Apache edition from the distribution"

apt_update
if apt-cache policy "postgresql-$PG_MAJOR-timescaledb" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt_install "postgresql-$PG_MAJOR-timescaledb"
    log "TimescaleDB installed from postgresql-$PG_MAJOR-timescaledb"
    exit 0
fi

# The mirror this machine already uses (deb822 .sources files first, then one-line sources.list).
mirror=""
distro=$(. /etc/os-release && echo "${ID:-debian}")
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk -v d="$distro" 'tolower($1)=="uris:" { for (i=2;i<=NF;i++) if ($i ~ "/" d "/?$") { print $i; exit } }' "$f")
    if [ -n "$uri" ]; then mirror="$uri"; break; fi
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk -v d="$distro" '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ "^[a-z]+://" && $i ~ "/" d "/?$") { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "no $distro mirror found in /etc/apt/sources.list(.d): cannot fetch the timescaledb source package"

if [ "$distro" = "ubuntu" ]; then
    suites="${TIMESCALEDB_SOURCE_SUITES:-noble oracular plucky}"; components="main universe"
else
    suites="${TIMESCALEDB_SOURCE_SUITES:-trixie sid}"; components="main"
fi

apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
fetched=""
for s in $suites; do
    # one suite at a time: the first one whose source package downloads wins (a newer suite may list a
    # version its mirror no longer serves, or one that no longer supports this PostgreSQL major)
    rm -rf "$work/lists" && mkdir -p "$work/lists/partial"
    echo "deb-src $mirror $s $components" > "$work/sources.list"
    log "fetching the timescaledb source package from $s"
    $SUDO apt-get "${apt_opts[@]}" update -qq || continue
    if (cd "$work" && $SUDO apt-get "${apt_opts[@]}" source --download-only -qq timescaledb >/dev/null 2>&1); then
        fetched="$s"; break
    fi
    rm -f "$work"/timescaledb_*
done
[ -n "$fetched" ] || die "no usable timescaledb source package in: $suites (set TIMESCALEDB_SOURCE_SUITES)"

orig=$(ls "$work"/timescaledb_*.orig.tar.* | head -n 1)
debian=$(ls "$work"/timescaledb_*.debian.tar.* | head -n 1)
rm -rf "$work/src" && mkdir -p "$work/src" "$work/deb"
tar -xf "$orig" -C "$work/src" --strip-components=1
tar -xf "$debian" -C "$work/deb"
if [ -f "$work/deb/debian/patches/series" ]; then
    while read -r p; do
        [ -n "$p" ] && [ "${p#\#}" = "$p" ] && patch -d "$work/src" -p1 -s < "$work/deb/debian/patches/$p"
    done < "$work/deb/debian/patches/series"
fi
log "building TimescaleDB $(basename "$orig" | sed 's/timescaledb_\(.*\)\.orig.*/\1/') against PostgreSQL $PG_MAJOR"
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_CONFIG="$PG_CONFIG" \
    -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF -DAPACHE_ONLY=1 \
    -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF > "$work/cmake.log" 2>&1 \
    || { tail -n 20 "$work/cmake.log" >&2; die "cmake failed for TimescaleDB"; }
make -C "$work/build" -j"$(nproc)" > "$work/make.log" 2>&1 \
    || { tail -n 20 "$work/make.log" >&2; die "building TimescaleDB failed"; }
install_staged "$(basename "$orig" | sed 's/timescaledb_\(.*\)\.orig.*/\1/')"
log "TimescaleDB installed (Apache edition, built from source)"
