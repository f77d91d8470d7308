#!/usr/bin/env bash
# Builds the OCI bundles ferry's container tests use, from Debian packages already installed:
#   .deps/bundles/busybox/  rootfs = busybox-static and its applet links
#   .deps/bundles/redis/    rootfs = redis-server plus every shared library `ldd` lists
# Each gets a config.json from `runc spec`, adjusted: no terminal, a fresh network namespace
# (only loopback: tests reach redis over a unix socket in a bind-mounted directory, never over
# the host network), a writable rootfs, and a default process (tests copy config.json and set
# their own args). Idempotent: a bundle whose stamp matches its inputs is left alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/.deps/bundles"
mkdir -p "$OUT"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# config.json from `runc spec`, adjusted with node (JSON edited as JSON, not with sed).
make_config() {   # $1 = bundle dir, $2 = JSON array of args
  local dir=$1 args=$2 tmp
  tmp=$(mktemp -d)
  ( cd "$tmp" && runc spec )
  ARGS="$args" node -e '
    const fs = require("fs");
    const [src, dst] = process.argv.slice(1);
    const c = JSON.parse(fs.readFileSync(src, "utf8"));
    c.process.terminal = false;
    c.process.args = JSON.parse(process.env.ARGS);
    c.process.env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    c.root = { path: "rootfs", readonly: false };
    c.hostname = "ferry";
    // A fresh network namespace (runc spec already asks for one): loopback only.
    const ns = c.linux.namespaces.map((n) => n.type);
    if (!ns.includes("network")) c.linux.namespaces.push({ type: "network" });
    fs.writeFileSync(dst, JSON.stringify(c, null, "\t") + "\n");
  ' "$tmp/config.json" "$dir/config.json"
  rm -rf "$tmp"
}

# The skeleton every rootfs has: the mount points runc expects and a few files.
skeleton() {   # $1 = rootfs
  local r=$1
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,var/tmp,root,data}
  chmod 1777 "$r/tmp" "$r/var/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
  echo 'root:x:0:' > "$r/etc/group"
  echo 'ferry' > "$r/etc/hostname"
  # The root directory is 0555, as containers/storage makes an image's root: CRIU checks the
  # mode of the root it restores into, so bundles and Podman containers can swap images.
  chmod 0555 "$r"
}

stamp_of() { sha256sum "$@" "${BASH_SOURCE[0]}" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- busybox
BB=$(command -v busybox || true)
[ -n "$BB" ] || { echo "build-bundles: busybox is not installed (apt-get install busybox-static)" >&2; exit 1; }
want=$(stamp_of "$BB")
if [ "$(cat "$OUT/busybox/.stamp" 2>/dev/null)" != "$want" ]; then
  say "building the busybox test bundle"
  rm -rf "$OUT/busybox" && mkdir -p "$OUT/busybox"
  r="$OUT/busybox/rootfs"
  skeleton "$r"
  install -m 0755 "$BB" "$r/bin/busybox"
  for applet in $("$BB" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$r/bin/$applet"
  done
  make_config "$OUT/busybox" '["/bin/sh","-c","i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done"]'
  echo "$want" > "$OUT/busybox/.stamp"
fi

# ---------------------------------------------------------------- redis
# /usr/bin/redis-server is a symlink to redis-check-rdb: the binary picks its mode from argv[0],
# so it is copied under the name redis-server.
RS=$(readlink -f "$(command -v redis-server || true)" 2>/dev/null || true)
[ -n "$RS" ] && [ -x "$RS" ] || { echo "build-bundles: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
want=$(stamp_of "$RS")
if [ "$(cat "$OUT/redis/.stamp" 2>/dev/null)" != "$want" ]; then
  say "building the redis test bundle"
  rm -rf "$OUT/redis" && mkdir -p "$OUT/redis"
  r="$OUT/redis/rootfs"
  skeleton "$r"
  install -m 0755 "$RS" "$r/usr/bin/redis-server"
  # Every library the dynamic loader resolves, at the same path, plus the loader itself.
  ldd "$RS" | awk '/=> \//{print $3} $1 ~ /^\//{print $1}' | while read -r lib; do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
  # The busybox shell too, for debugging a running container (runc exec ID sh).
  install -m 0755 "$BB" "$r/bin/busybox" && ln -sf busybox "$r/bin/sh"
  make_config "$OUT/redis" '["/usr/bin/redis-server","--port","0","--unixsocket","/data/redis.sock","--save","","--appendonly","no","--daemonize","no","--loglevel","warning"]'
  echo "$want" > "$OUT/redis/.stamp"
fi
