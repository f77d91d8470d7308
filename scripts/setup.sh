#!/usr/bin/env bash
# ferry setup: brings a fresh Debian 12 (x86_64, root) machine up to what ferry needs.
# Idempotent: a second run checks everything, changes nothing, and takes seconds.
#   Debian packages -> CRIU >= 4.2 (system, or built from Debian's source into .deps/) ->
#   kernel knobs -> npm ci -> native addon -> TypeScript build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS="$ROOT/.deps"
CRIU_MIN="4.2"
CRIU_SUITES=(unstable testing)      # Debian suites that carry CRIU >= 4.2 (4.2.1 at the time of writing)

say()  { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die()  { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "ferry's setup must run as root (it installs Debian packages and CRIU needs root). Run: sudo make test"
[ "$(uname -m)" = x86_64 ] || die "ferry supports Linux x86_64 only (this is $(uname -m))"
command -v apt-get >/dev/null || die "this setup needs a Debian-based system with apt-get"

# ---------------------------------------------------------------- Debian packages
PKGS=(
  # runtimes and the things CRIU calls out to
  runc crun iptables iproute2 kmod procps util-linux libcap2-bin
  # service addresses: gratuitous ARP when an address moves (iptables above holds its traffic)
  iputils-arping
  # build tools for the native addon and for CRIU
  build-essential pkgconf python3 dpkg-dev xz-utils
  libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev
  libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler uuid-dev
  # XXH3 for the native addon's page and file hashing
  libxxhash-dev
  # headless browser for the benchmark report's test
  chromium
  # test workloads
  busybox-static redis-server redis-tools
  # Podman: the container tests check that its checkpoint archives and ferry's are interchangeable
  podman
  # the JVM workload of `ferry bench warmstart` (java, and javac for test/workloads/SlowBoot.java)
  openjdk-17-jdk-headless
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts redis-server as a service on install; ferry's tests start their own.
  if command -v systemctl >/dev/null && systemctl is-active -q redis-server 2>/dev/null; then
    systemctl stop redis-server || true
  fi
else
  say "Debian packages: all present"
fi

# ---------------------------------------------------------------- CRIU >= 4.2
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
criu_version() { "$1" --version 2>/dev/null | sed -n 's/^Version: *\([0-9.]*\).*/\1/p' | head -n1; }
criu_usable() {   # $1 = path; usable = version >= min and `criu check` passes
  local v; v=$(criu_version "$1"); [ -n "$v" ] && version_ge "$v" "$CRIU_MIN" && "$1" check >/dev/null 2>&1
}

CRIU_BIN=""
if [ -x "$DEPS/criu/sbin/criu" ] && criu_usable "$DEPS/criu/sbin/criu"; then
  CRIU_BIN="$DEPS/criu/sbin/criu"
elif command -v criu >/dev/null && criu_usable "$(command -v criu)"; then
  CRIU_BIN="$(command -v criu)"
else
  say "no usable CRIU >= $CRIU_MIN here; building it from Debian's source package"
  # A private apt configuration: deb-src lines for newer suites, derived from the Debian
  # mirror this machine already uses. The system's own apt sources are not touched.
  mirror=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/{print $2; exit}' "$f" | grep -v security || true)
    [ -n "$mirror" ] && break
  done
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$mirror" ] || die "could not find a Debian mirror in /etc/apt/sources.list{,.d}; install CRIU >= $CRIU_MIN yourself and put it on PATH"
  APTDIR="$DEPS/apt"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/parts" "$APTDIR/archives/partial" "$DEPS/src"
  : > "$APTDIR/sources.list"
  for s in "${CRIU_SUITES[@]}"; do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $s main" >> "$APTDIR/sources.list"
  done
  APTOPTS=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=$APTDIR/parts"
           -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache::Archives=$APTDIR/archives"
           -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
  apt-get "${APTOPTS[@]}" -qq update
  rm -rf "$DEPS/src/criu"*
  ( cd "$DEPS/src" && apt-get "${APTOPTS[@]}" source --download-only --tar-only criu ) \
    || die "could not download CRIU's source from $mirror"
  tarball=$(ls "$DEPS"/src/criu_*.orig.tar.* 2>/dev/null | sort -V | tail -n1)
  [ -n "$tarball" ] || die "apt-get source left no criu_*.orig.tar.* in $DEPS/src"
  mkdir -p "$DEPS/src/criu" && tar -xf "$tarball" -C "$DEPS/src/criu" --strip-components=1
  say "building $(basename "$tarball")"
  make -C "$DEPS/src/criu" -j"$(nproc)" criu >"$DEPS/src/criu-build.log" 2>&1 \
    || { tail -n 30 "$DEPS/src/criu-build.log" >&2; die "CRIU build failed (log: $DEPS/src/criu-build.log)"; }
  install -D -m 0755 "$DEPS/src/criu/criu/criu" "$DEPS/criu/sbin/criu"
  CRIU_BIN="$DEPS/criu/sbin/criu"
  criu_usable "$CRIU_BIN" || die "the CRIU built from $(basename "$tarball") does not pass 'criu check'; run '$CRIU_BIN check' to see why"
fi
mkdir -p "$DEPS"
echo "$CRIU_BIN" > "$DEPS/criu-path"
say "CRIU: $CRIU_BIN ($(criu_version "$CRIU_BIN"))"

# ---------------------------------------------------------------- kernel knobs
# Without CAP_SYS_RESOURCE CRIU cannot grow pipes past fs.pipe-max-size; its lazy-pages
# (post-copy) server then fails on the first page request. Raise the knob when needed.
PIPE_MAX_WANT=16777216
capeff=$(awk '/^CapEff:/{print $2}' /proc/self/status)
if (( (16#$capeff >> 24 & 1) == 0 )); then   # bit 24 = CAP_SYS_RESOURCE
  cur=$(cat /proc/sys/fs/pipe-max-size)
  if [ "$cur" -lt "$PIPE_MAX_WANT" ]; then
    say "raising fs.pipe-max-size $cur -> $PIPE_MAX_WANT (no CAP_SYS_RESOURCE: CRIU's lazy pages need big pipes)"
    sysctl -q -w fs.pipe-max-size=$PIPE_MAX_WANT || say "warning: could not raise fs.pipe-max-size; post-copy migration will fail"
  fi
fi

# crun (1.8) refuses to start any container on a hybrid cgroup layout whose cgroup2 mount still
# has controllers ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
# Here only hugetlb is left there, unused: give it its own v1 hierarchy, as the others have.
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers)" ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    if [ ! -d "/sys/fs/cgroup/$c" ] || ! mountpoint -q "/sys/fs/cgroup/$c"; then
      say "moving the idle cgroup controller '$c' from cgroup2 to a v1 hierarchy (crun needs an empty cgroup2 on hybrid layouts)"
      mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" \
        || say "warning: could not mount the $c v1 hierarchy; crun containers will not start here"
    fi
  done
fi

# ---------------------------------------------------------------- npm, native addon, TypeScript
cd "$ROOT"
stamp="$DEPS/npm-ci.stamp"
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$want" > "$stamp"
else
  say "npm packages: up to date"
fi

# The native addon is built against this Node's own headers (never downloaded).
addon="$ROOT/native/build/Release/ferry_native.node"
if [ ! -f "$addon" ] || [ ! -x "$ROOT/native/build/Release/ferry_uffd" ] || [ -n "$(find "$ROOT/native" -maxdepth 1 \( -name '*.c' -o -name '*.h' -o -name '*.gyp' \) -newer "$addon")" ]; then
  say "building the native addon"
  nodedir=$(dirname "$(dirname "$(command -v node)")")
  [ -f "$nodedir/include/node/node_api.h" ] || die "Node's headers are missing ($nodedir/include/node/node_api.h); install the nodejs headers package"
  ( cd native && "$ROOT/node_modules/.bin/node-gyp" rebuild --nodedir="$nodedir" --loglevel=error >/dev/null ) \
    || die "building the native addon failed; run: cd native && npx node-gyp rebuild --nodedir=$nodedir"
fi

# zstd-napi ships zstd's sources and is compiled here (npm ci ran with --ignore-scripts, so its
# prebuild download never runs).
zstd_addon="$ROOT/node_modules/zstd-napi/build/Release/binding.node"
if [ ! -f "$zstd_addon" ]; then
  say "building zstd-napi"
  nodedir=$(dirname "$(dirname "$(command -v node)")")
  ( cd "$ROOT/node_modules/zstd-napi" && "$ROOT/node_modules/.bin/node-gyp" rebuild --nodedir="$nodedir" -j 2 --loglevel=error >/dev/null ) \
    || die "building zstd-napi failed; run: cd node_modules/zstd-napi && npx node-gyp rebuild --nodedir=$nodedir"
fi

say "test workloads"
make -s -C "$ROOT/test/workloads" >/dev/null
bash "$ROOT/scripts/build-bundles.sh"   # OCI bundles (busybox, redis) for the container tests

say "TypeScript build"
"$ROOT/node_modules/.bin/tsc" -p "$ROOT/tsconfig.json"
# The CLI bundled into a few files (starts faster; bin/ferry uses it while it is newer than tsc's build).
say "CLI bundle"
node "$ROOT/scripts/build-cli.mjs" >/dev/null
# The agent's dashboard (GET /): preact views and vega-lite charts bundled for the browser.
say "dashboard bundle"
node "$ROOT/scripts/build-dashboard.mjs" >/dev/null
say "ready"
