# Scenario 1, measured boot: quote PCR 0-7 and the allowlist PCR with the host's nonce and
# return the quote with the firmware's UEFI event log. The host verifies both.
set -eu
. /lab/lib.sh
kw_quote "$KW_NONCE" "sha256:0,1,2,3,4,5,6,7,${KW_PCR:-15}"
cp /sys/kernel/security/tpm0/binary_bios_measurements "$OUT/eventlog.bin"
