#!/usr/bin/env bash
# Builds the lab guest (kernel + initramfs) into .lab-cache/, keyed by its inputs so a
# repeat run only checks hashes. Prints the path of the build dir (vmlinuz, initrd.cpio.gz,
# manifest.json) on stdout.
#   scripts/lab/build.sh [--no-node]
# Inputs: Debian's linux-image-amd64 (apt-get download + dpkg-deb -x, never installed on the
# host), busybox-static, tpm2-tools and its libraries, the eBPF agent built against the guest
# kernel's BTF, Node's binary and its libraries, and scripts/lab/guest/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${KEYWARD_LAB_CACHE:-$ROOT/.lab-cache}
WITH_NODE=1
[[ ${1:-} == --no-node ]] && WITH_NODE=0
log() { echo "lab-build: $*" >&2; }
"$ROOT/scripts/setup-system.sh" lab >&2
mkdir -p "$CACHE/debs"

# --- kernel: the candidate of the linux-image-amd64 metapackage -----------------------
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[[ -n $KPKG ]] || { log "cannot resolve linux-image-amd64 (apt-get update?)"; exit 1; }
KDIR=$CACHE/kernel/$KPKG
if [[ ! -f $KDIR/.done ]]; then
  log "fetching $KPKG"
  (cd "$CACHE/debs" && ls "$KPKG"_*.deb >/dev/null 2>&1 || apt-get download "$KPKG" >&2)
  rm -rf "$KDIR"; mkdir -p "$KDIR"
  dpkg-deb -x "$(ls "$CACHE/debs/$KPKG"_*.deb | head -1)" "$KDIR/pkg"
  cp "$KDIR"/pkg/boot/vmlinuz-* "$KDIR/vmlinuz"
  # The BTF lives in vmlinux inside the xz-compressed bzImage (CONFIG_KERNEL_XZ).
  python3 - "$KDIR/vmlinuz" "$KDIR/vmlinux" <<'PY'
import lzma, sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'\xfd7zXZ\x00')
if i < 0: sys.exit('no xz payload in bzImage')
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[i:]))
PY
  touch "$KDIR/.done"
fi
KVER=$(ls "$KDIR/pkg/lib/modules")
MODDIR=$KDIR/pkg/lib/modules/$KVER/kernel

# --- eBPF agent against the guest kernel's BTF (make is incremental) -------------------
make -s -C "$ROOT/enclave-client/ebpf" OUT="$CACHE/ebpf" VMLINUX_BTF="$KDIR/vmlinux" >&2

# --- exec-allowlist probes (scripts/lab/probe): kw-probe is listed (a tool root runs), kw-lib.so
# is the unlisted payload of the LD_PRELOAD/dlopen probes.
PROBE=$CACHE/probe
mkdir -p "$PROBE"
cc -O2 -Wall -Wextra -Werror -o "$PROBE/kw-probe" "$ROOT/scripts/lab/probe/kw-probe.c" -lbpf -ldl
cc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$PROBE/kw-lib.so" "$ROOT/scripts/lab/probe/kw-lib.c"

# --- keyward-client as one CommonJS file for the payload disk (esbuild comes with tsx), with
# a V8 code cache made by running it once here (scripts/lab/client/load.cjs): under TCG that
# saves ~1.5 s of compiling per client process. ~1 s, deterministic: rebuilt every time, keyed
# by hash. import.meta.url (only the Nitro collector's addon lookup uses it) becomes the file's URL.
CLIENT=$CACHE/client
if ((WITH_NODE)); then
  mkdir -p "$CLIENT"
  ESBUILD=$ROOT/node_modules/.bin/esbuild
  [[ -x $ESBUILD ]] || ESBUILD=$ROOT/node_modules/tsx/node_modules/.bin/esbuild
  "$ESBUILD" "$ROOT/scripts/lab/client/entry.ts" --bundle --platform=node \
    --target=node20 --format=cjs --minify --legal-comments=none --log-level=warning \
    --define:import.meta.url=__kwMetaUrl \
    --banner:js="const __kwMetaUrl=require('node:url').pathToFileURL(__filename).href;" \
    --outfile="$CLIENT/keyward-client.cjs" >&2
  cp "$ROOT/scripts/lab/client/load.cjs" "$CLIENT/load.cjs"
  KW_MAKE_CODE_CACHE=1 node "$CLIENT/load.cjs" --help 2>/dev/null
fi

# --- cache key over every input ---------------------------------------------------------
MODS=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console virtio_blk
      netfs fscache 9pnet 9pnet_virtio 9p)
BINS=(/bin/busybox /usr/bin/tpm2 /usr/bin/setpriv "$CACHE/ebpf/keyward-allowlist" "$PROBE/kw-probe" "$PROBE/kw-lib.so")
((WITH_NODE)) && BINS+=("$(command -v node)" "$CLIENT/keyward-client.cjs" "$CLIENT/load.cjs")
KEY=$( { echo "v3 $KPKG node=$WITH_NODE"; sha256sum "${BINS[@]}" "$0";
         find "$ROOT/scripts/lab/guest" -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
OUT=$CACHE/guest-$KEY
if [[ -f $OUT/.done ]]; then echo "$OUT"; exit 0; fi
log "building guest $KEY"
rm -rf "$OUT"; mkdir -p "$OUT"
R=$OUT/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/lib,lib/modules,proc,sys,dev,run,tmp,etc,lab,root}
cp /bin/busybox "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
for m in "${MODS[@]}"; do cp "$(find "$MODDIR" -name "$m.ko" | head -1)" "$R/lib/modules/"; done
printf '%s\n' "${MODS[@]}" > "$R/lib/modules/order"
# ELF binaries with the shared libraries ldd finds; the TCTI is dlopen()ed, so it is listed.
copy_with_libs() {
  local f=$1 dst=$2 l
  mkdir -p "$R$(dirname "$dst")"; cp -L "$f" "$R$dst"
  for l in $(ldd "$f" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'); do
    [[ -e $R$l ]] || { mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"; }
  done
}
copy_with_libs /usr/bin/tpm2 /usr/bin/tpm2
for t in /usr/bin/tpm2_*; do [[ $(readlink "$t") == tpm2 ]] && ln -sf tpm2 "$R/usr/bin/$(basename "$t")"; done
for l in /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0; do copy_with_libs "$l" "$l"; done
copy_with_libs "$CACHE/ebpf/keyward-allowlist" /usr/bin/keyward-allowlist
# util-linux setpriv: `keyward-client run` starts its command through `setpriv --pdeathsig`
# (busybox's setpriv has no --pdeathsig).
copy_with_libs /usr/bin/setpriv /usr/bin/setpriv
copy_with_libs "$PROBE/kw-probe" /usr/lib/keyward-lab/kw-probe
mkdir -p "$R/lib64"; [[ -e $R/lib64/ld-linux-x86-64.so.2 ]] || cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
cp -r "$ROOT/scripts/lab/guest/." "$R/lab/"
mkdir -p "$R/lab/unlisted" && cp "$PROBE/kw-lib.so" "$R/lab/unlisted/"
# The guest's allowlist lists every ELF file it ships (executables, ld.so and every shared
# library: the mmap hook checks those too); the guest computes the same list with
# lab_elf_files (guest/elf-files.sh); the host test approves allowlist.sha256 (sha256sum format,
# guest paths) made here from the same files.
. "$ROOT/scripts/lab/guest/elf-files.sh"
(cd "$R" && lab_elf_files . | xargs sha256sum | sed 's|  \./|  /|') > "$OUT/elf-files.txt"
mv "$R/lab/init" "$R/init"; chmod +x "$R/init" "$R"/lab/scenarios/*.sh
(cd "$R" && find . -print0 | sort -z | cpio --null -o -H newc --quiet | gzip -1 > "$OUT/initrd.cpio.gz")
# Node (~100 MB) goes on a read-only virtio disk holding an uncompressed cpio archive that
# init unpacks: in the initrd, OVMF would hash it into PCR 9 under TCG (~20 s per boot).
# It is still measured by IMA and must pass the allowlist when executed.
if ((WITH_NODE)); then
  rm -rf "$R"; mkdir -p "$R"
  copy_with_libs "$(command -v node)" /usr/bin/node
  mkdir -p "$R/usr/lib/keyward" && cp "$CLIENT"/{keyward-client.cjs,keyward-client.cjs.cache,load.cjs} "$R/usr/lib/keyward/"
  (cd "$R" && find . -print0 | sort -z | cpio --null -o -H newc --quiet > "$OUT/payload.cpio")
  (cd "$R" && lab_elf_files . | xargs sha256sum | sed 's|  \./|  /|') >> "$OUT/elf-files.txt"
fi
sort -u "$OUT/elf-files.txt" -o "$OUT/allowlist.sha256"
ln -sf "$KDIR/vmlinuz" "$OUT/vmlinuz"
jq -n --arg key "$KEY" --arg kernel "$KPKG" --arg kver "$KVER" --argjson node "$WITH_NODE" \
  --arg bytes "$(stat -c %s "$OUT/initrd.cpio.gz")" \
  '{key:$key, kernel:$kernel, kernelRelease:$kver, node:($node==1), initrdBytes:($bytes|tonumber)}' > "$OUT/manifest.json"
rm -rf "$R"
touch "$OUT/.done"
# Keep one guest per node/no-node variant: drop stale builds of older inputs.
for old in "$CACHE"/guest-*; do
  [[ $old != "$OUT" && -f $old/manifest.json ]] || continue
  [[ $(jq -r .node "$old/manifest.json") == $(jq -r .node "$OUT/manifest.json") ]] && rm -rf "$old"
done
log "guest $KEY: $(jq -c . "$OUT/manifest.json")"
echo "$OUT"
