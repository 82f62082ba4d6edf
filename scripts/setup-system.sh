#!/usr/bin/env bash
# Installs the Debian packages keyward's demo and tests need, only when missing.
# Usage: scripts/setup-system.sh [base|lab]   (base: swtpm + tpm2-tools; lab: also qemu, OVMF, clang, libbpf)
set -euo pipefail
want=(swtpm swtpm-tools tpm2-tools jq openssl)
if [ "${1:-base}" = lab ]; then
  want+=(qemu-system-x86 ovmf busybox-static clang llvm libbpf-dev bpftool cpio libelf-dev zlib1g-dev libssl-dev pkg-config)
  want+=(chromium)   # the dashboard tests drive Debian's chromium with playwright-core (no browser download)
  # linux-image-amd64 is deliberately absent: the lab's guest kernel is fetched with
  # `apt-get download` and extracted into .lab-cache/ by scripts/lab/build.sh, never installed on the host.
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup-system: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
