#!/usr/bin/env bash
# Makes the two local base images docker/Dockerfile builds on, since no image registry is reachable here:
#   localhost/keyward-build-base  Debian bookworm (debootstrap) + Node.js 20 + python3, make, g++ (better-sqlite3 builds from source)
#   localhost/keyward-run-base    Debian bookworm minbase + Node.js 20, user node (uid 1000), nothing else
# Node.js 20 is not in bookworm: both take the host's Node.js (binary, npm, headers), the same Node
# the tests run on. The host's CA bundle goes into the build image so npm reaches the registry
# the host reaches. Skips an image that already exists; KEYWARD_REBUILD_BASE=1 remakes both.
set -euo pipefail
source "$(dirname "$0")/podman.sh"
work=${KEYWARD_CONTAINER_CACHE:-$(cd "$(dirname "$0")/../.." && pwd)/.lab-cache/container}
mkdir -p "$work"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

make_base() { # name include-packages [extra ENV for the image]
  local name=$1 include=$2 root="$work/rootfs-$1" changes=() kv
  for kv in ${3:-}; do changes+=(--change "ENV $kv"); done # one ENV per variable: podman takes "ENV A=1 B=2" as one
  if [ "${KEYWARD_REBUILD_BASE:-0}" != 1 ] && kw_podman image exists "localhost/$name:bookworm"; then return; fi
  # The debootstrapped tree is kept as a tarball in the cache: remaking an image skips the download.
  if [ ! -f "$work/$name.debootstrap.tar" ]; then
    echo "base-images: debootstrap $name (a few minutes)" >&2
    rm -rf "$root"
    debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$work/$name.debootstrap.log" 2>&1 \
      || { tail -20 "$work/$name.debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -cf "$work/$name.debootstrap.tar.part" . && mv "$work/$name.debootstrap.tar.part" "$work/$name.debootstrap.tar"
  fi
  rm -rf "$root" && mkdir -p "$root"
  tar -C "$root" --numeric-owner -xf "$work/$name.debootstrap.tar"
  # Node.js as installed on the host: the binary, npm and corepack (npm may have been upgraded in
  # place, so the folder, not the package's file list) and the headers node-gyp builds against.
  rm -rf "$root/usr/lib/node_modules"
  tar -C / -cf - usr/bin/node usr/bin/npm usr/bin/npx usr/bin/corepack usr/lib/node_modules usr/include/node \
    | tar -C "$root" -xf -
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  chroot "$root" /usr/bin/id node >/dev/null 2>&1 || {
    chroot "$root" /usr/sbin/groupadd --gid 1000 node
    chroot "$root" /usr/sbin/useradd --uid 1000 --gid node --shell /bin/sh --create-home node
  }
  tar -C "$root" --numeric-owner -cf - . | kw_podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' "${changes[@]}" - "localhost/$name:bookworm" >/dev/null 2>&1
  rm -rf "$root"
  echo "base-images: localhost/$name:bookworm" >&2
}

# As npm on the host is configured: the system CA bundle (the host's, copied above), and node-gyp
# builds against the installed headers (/usr/include/node) instead of downloading them.
make_base keyward-build-base ca-certificates,python3,make,g++ "NPM_CONFIG_CAFILE=/etc/ssl/certs/ca-certificates.crt NPM_CONFIG_NODEDIR=/usr"
make_base keyward-run-base ca-certificates
