# Scenario 1, measured boot: quote PCR 0-7 and the allowlist PCR with the host's nonce and
# return the quote with the firmware's UEFI event log. The host verifies both.
# With kw.relay=1 the nonce is the broker's challenge, fetched over virtio-serial
# (POST /v1/challenge answering {"nonce": "<64 hex>"}); else kw.nonce=HEX.
set -eu
. /lab/lib.sh
NONCE=${KW_NONCE:-}
if [ "${KW_RELAY:-0}" = 1 ]; then
  kw_request POST /v1/challenge '{}' > "$OUT/challenge.json"
  NONCE=$(sed -n 's/.*nonce\\":\\"\([0-9a-f]*\)\\".*/\1/p' "$OUT/challenge.json")
fi
[ ${#NONCE} -eq 64 ] || { echo "lab: no 32-byte nonce"; exit 2; }
echo "$NONCE" > "$OUT/nonce.hex"
kw_quote "$NONCE" "sha256:0,1,2,3,4,5,6,7,${KW_PCR:-15}"
cp /sys/kernel/security/tpm0/binary_bios_measurements "$OUT/eventlog.bin"
