# Boot 2 of the lab tests (kw.agent=none: no agent at boot, /init extended the separator alone),
# shared by two scenarios so the VM boots once for both: first scenario 1 (measured-boot.sh:
# kw.nonce, kw.mb_enrol_token; its client has its own state dir, so its own AK, enrolled as
# lab-measured-boot; its outputs are renamed mb-*), then scenario 2's agent=none half
# (exec-allowlist.sh: kw.enrol_token). One relay shim serves both (the port has one open).
set -u
. /lab/lib.sh
kw_broker_up "$KW_BROKER_PORT" || exit 40
export KW_SHIM_PID
mkdir -p /tmp/out-mb
OUT=/tmp/out-mb KW_STATE_DIR=/run/kwc-mb KW_ENROL_TOKEN="${KW_MB_ENROL_TOKEN:-}" sh /lab/scenarios/measured-boot.sh
mb=$?
for f in /tmp/out-mb/*; do mv "$f" "$OUT/mb-${f##*/}"; done
echo "$mb" > "$OUT/mb-rc"
sh /lab/scenarios/exec-allowlist.sh
ea=$?
kill "$KW_SHIM_PID"
[ "$mb" = 0 ] || { echo "lab: measured-boot part exited $mb"; exit $((50 + mb)); }
exit $ea
