#!/usr/bin/env bash
# Installs what ibcbench's embedded server needs on Debian/Ubuntu: PostgreSQL (server with contrib,
# pgbench and server headers), pg_cron, hypopg, and TimescaleDB; plus python3-venv. Safe to re-run:
# what is present is left alone.
#
# TimescaleDB: the binary package postgresql-<major>-timescaledb where an apt source has it; otherwise
# Debian's source package `timescaledb` from a newer suite of the mirror this machine already uses,
# built against the installed server headers with Debian's own flags (Apache-only, no telemetry).
#
#   PG_MAJOR=15 scripts/install-system.sh      # pick the PostgreSQL major (default: the distribution's)
#   TIMESCALEDB_SOURCE_SUITES="trixie sid"     # suites tried for the source package
set -euo pipefail

log() { printf 'install-system: %s\n' "$*"; }
die() { printf 'install-system: error: %s\n' "$*" >&2; exit 1; }

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
if [ -f "$EXT_DIR/timescaledb.control" ] && ls "$($PG_CONFIG --pkglibdir)"/timescaledb*.so >/dev/null 2>&1; then
    log "TimescaleDB present: $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$EXT_DIR/timescaledb.control")"
    exit 0
fi

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

apt_install cmake make gcc xz-utils patch
work=$(mktemp -d /tmp/ibcbench-timescaledb.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
mkdir -p "$work/src" "$work/deb"
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
$SUDO make -C "$work/build" install > "$work/install.log" 2>&1 \
    || { tail -n 20 "$work/install.log" >&2; die "installing TimescaleDB failed"; }
log "TimescaleDB installed (Apache edition, built from source)"
