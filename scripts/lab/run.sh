#!/usr/bin/env bash
# Boots the lab guest under OVMF with a software TPM and runs one scenario.
#   scripts/lab/run.sh SCENARIO [--out DIR] [--arg KEY=VALUE]... [--timeout SEC]
#                               [--relay URL] [--no-node] [--guest DIR]
# SCENARIO is scripts/lab/guest/scenarios/SCENARIO.sh; --arg KEY=VALUE reaches the guest as
# kernel parameter kw.KEY=VALUE (env KW_KEY). Outputs in DIR (default: a new temp dir, printed
# on stdout): serial.log (console), results.txt (raw result channel), files/ (the guest's
# /tmp/out), tpm/ (EK certificate chain: ek.cert.der, ca-root.pem, ca-intermediate.pem),
# timing.json. With --relay URL, the guest's virtio-serial port "keyward" is relayed to URL
# (scripts/lab/relay.mjs). --guest DIR boots a guest build.sh already printed (skips the
# build check). Everything started here is stopped by pid on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${KEYWARD_LAB_CACHE:-$ROOT/.lab-cache}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
die() { echo "lab-run: $*" >&2; exit 1; }
T0=$(now_ms)
SCENARIO=${1:-}; [[ -n $SCENARIO && $SCENARIO != -* ]] || die "usage: run.sh SCENARIO [--out DIR] [--arg K=V]... [--timeout SEC] [--relay URL] [--no-node]"
shift
OUTDIR='' ARGS=() TIMEOUT=240 RELAY='' BUILD_ARGS=() GUEST=
while (($#)); do
  case $1 in
    --out) OUTDIR=$2; shift ;;
    --arg) [[ $2 =~ ^[a-z0-9_-]+=[^[:space:]]*$ ]] || die "bad --arg $2"; ARGS+=("kw.$2"); shift ;;
    --timeout) TIMEOUT=$2; shift ;;
    --relay) RELAY=$2; shift ;;
    --no-node) BUILD_ARGS+=(--no-node) ;;
    --guest) GUEST=$2; shift ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
[[ -f $ROOT/scripts/lab/guest/scenarios/$SCENARIO.sh ]] || die "no scenario $SCENARIO"
if [[ -n $GUEST ]]; then
  [[ -f $GUEST/.done ]] || die "no guest build in $GUEST"
else
  GUEST=$("$ROOT/scripts/lab/build.sh" "${BUILD_ARGS[@]}")
fi
T_BUILD=$(now_ms)

OUTDIR=${OUTDIR:-$(mktemp -d /tmp/keyward-lab.XXXXXX)}
mkdir -p "$OUTDIR/files" "$OUTDIR/tpm"
OUTDIR=$(cd "$OUTDIR" && pwd)
TMP=$(mktemp -d /tmp/keyward-lab-run.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- TPM: a provisioned template (scripts/lab/tpm-template.sh) copied per run, so each boot
# starts from a fresh TPM with the same EK.
TPL=$("$ROOT/scripts/lab/tpm-template.sh")
cp -r "$TPL/state" "$TMP/tpm"
cp "$TPL/ca/swtpm-localca-rootca-cert.pem" "$OUTDIR/tpm/ca-root.pem"
cp "$TPL/ca/issuercert.pem" "$OUTDIR/tpm/ca-intermediate.pem"
swtpm socket --tpm2 --tpmstate dir="$TMP/tpm" --ctrl type=unixio,path="$TMP/swtpm.sock" \
  --log file="$OUTDIR/swtpm.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $TMP/swtpm.sock ]] && break; sleep 0.05; done
[[ -S $TMP/swtpm.sock ]] || die "swtpm did not start (see $OUTDIR/swtpm.log)"

# --- optional relay between the guest's virtio-serial port and the broker -------------
if [[ -n $RELAY ]]; then
  node "$ROOT/scripts/lab/relay.mjs" --socket "$TMP/vport.sock" --target "$RELAY" \
    > "$OUTDIR/relay.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [[ -S $TMP/vport.sock ]] && break; sleep 0.05; done
  [[ -S $TMP/vport.sock ]] || die "relay did not start (see $OUTDIR/relay.log)"
  VPORT=(-chardev "socket,id=c0,path=$TMP/vport.sock")
else
  VPORT=(-chardev "socket,id=c0,path=$TMP/vport.sock,server=on,wait=off")
fi

# --- a 9p share (virtio-9p) holding a copy of busybox: a filesystem IMA cannot vouch for,
# which the exec allowlist refuses to run from whatever the file's hash (exec-allowlist).
mkdir -p "$TMP/share" && cp /bin/busybox "$TMP/share/busybox"

# --- qemu: OVMF measures the boot into PCR 0-7 and keeps the UEFI event log ------------
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$TMP/vars.fd"
PAYLOAD=()
[[ -f $GUEST/payload.cpio ]] && PAYLOAD=(-drive "file=$GUEST/payload.cpio,format=raw,if=virtio,readonly=on")
: > "$OUTDIR/results.txt"
qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 1024 -smp 1 \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,file="$TMP/vars.fd" \
  -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.cpio.gz" \
  -append "console=ttyS0 loglevel=4 panic=-1 kw.scenario=$SCENARIO ${ARGS[*]}" \
  -display none -monitor none -nic none -no-reboot \
  -serial file:"$OUTDIR/serial.log" -serial file:"$OUTDIR/results.txt" \
  -chardev socket,id=chrtpm,path="$TMP/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
  -device tpm-crb,tpmdev=tpm0 "${PAYLOAD[@]}" \
  -virtfs local,path="$TMP/share",mount_tag=kwshare,security_model=none,readonly=on \
  -device virtio-serial "${VPORT[@]}" -device virtserialport,chardev=c0,name=keyward &
QEMU=$!
PIDS+=($QEMU)
T_START=$(now_ms)
deadline=$((T_START + TIMEOUT * 1000))
while kill -0 "$QEMU" 2>/dev/null; do
  (( $(now_ms) < deadline )) || { echo "lab-run: timeout after ${TIMEOUT}s" >&2; break; }
  sleep 0.1
done
T_END=$(now_ms)
wait "$QEMU" 2>/dev/null || true

# --- unpack the result channel ------------------------------------------------------------
tr -d '\r' < "$OUTDIR/results.txt" | awk -v dir="$OUTDIR/files" '
  /^KW-FILE-END$/ { close(cmd); cmd=""; next }
  /^KW-FILE / { cmd = "base64 -d > \"" dir "/" $2 "\""; next }
  /^KW-END rc=/ { sub("KW-END rc=", ""); print > (dir "/../guest-rc"); next }
  cmd != "" { print | cmd }'
GRC=$(cat "$OUTDIR/guest-rc" 2>/dev/null || echo none)
jq -n --argjson build $((T_BUILD - T0)) --argjson boot $((T_END - T_START)) \
  --argjson total $((T_END - T0)) --arg rc "$GRC" --arg scenario "$SCENARIO" \
  --arg up "$(cat "$OUTDIR/files/uptime" 2>/dev/null || echo)" \
  '{scenario:$scenario, guestRc:$rc, buildMs:$build, vmMs:$boot, totalMs:$total, guestUptimeS:$up}' \
  > "$OUTDIR/timing.json"
echo "lab-run: $(jq -c . "$OUTDIR/timing.json")" >&2
echo "$OUTDIR"
[[ $GRC == 0 ]]
