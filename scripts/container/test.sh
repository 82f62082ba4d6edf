#!/usr/bin/env bash
# `npm run test:container`: builds the broker image from docker/Dockerfile with podman on local base
# images (scripts/container/base-images.sh) and runs the demo's attest-and-release against it
# (scripts/container/attest-release.ts). Its own script, not part of test:all: the first run
# debootstraps two Debian root filesystems and npm-installs inside the build (10+ minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ensure-deps.sh base
want=(podman runc debootstrap)
missing=(); for p in "${want[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
source scripts/container/podman.sh
bash scripts/container/base-images.sh
echo "test:container: building localhost/keyward:test from docker/Dockerfile" >&2
kw_podman build --format docker --network host -f docker/Dockerfile --ignorefile docker/Dockerfile.dockerignore \
  --build-arg BUILD_BASE=localhost/keyward-build-base:bookworm --build-arg RUNTIME_BASE=localhost/keyward-run-base:bookworm \
  -t localhost/keyward:test . >/tmp/keyward-image-build.log 2>&1 || { tail -40 /tmp/keyward-image-build.log >&2; exit 1; }
exec node --import tsx scripts/container/attest-release.ts
