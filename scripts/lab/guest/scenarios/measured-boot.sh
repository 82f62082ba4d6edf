# Scenario 1, measured boot: (a) tpm2-tools quotes PCR 0-7 and the allowlist PCR with the
# host's nonce (kw.nonce) and returns it with the firmware's UEFI event log; (b) with
# kw.broker_port=P, keyward-client talks to the broker through the virtio-serial relay: it
# registers its AK by credential activation against the swtpm EK certificate, attests (quote
# with the binding digest + event log; the broker verifies and replays it), and prints one more
# /v1/attest body (`evidence`) that the host alters and posts itself.
set -u
. /lab/lib.sh
NONCE=${KW_NONCE:-}
[ ${#NONCE} -eq 64 ] || { echo "lab: kw.nonce must be 32 bytes hex"; exit 2; }
echo "$NONCE" > "$OUT/nonce.hex"
kw_quote "$NONCE" "sha256:0,1,2,3,4,5,6,7,${KW_PCR:-15}" || exit 3
cp /sys/kernel/security/tpm0/binary_bios_measurements "$OUT/eventlog.bin"
[ -n "${KW_BROKER_PORT:-}" ] || exit 0
kw_broker_up "$KW_BROKER_PORT" || exit 4
# The host's admin issued a single-use enrolment token for the name (kw.enrol_token).
export KEYWARD_ENROL_TOKEN="${KW_ENROL_TOKEN:-}"
kw_step register register --workload lab-measured-boot
unset KEYWARD_ENROL_TOKEN
kw_step attest attest
kw_step evidence evidence
kw_broker_down
exit 0
