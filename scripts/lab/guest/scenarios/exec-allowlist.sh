# Scenario 2, exec allowlist: the agent loads the LSM program in enforce mode with an
# allowlist of busybox, node, tpm2-tools and itself; an unlisted binary (busybox with one
# byte appended) must fail with EPERM and be counted; in audit mode it runs and is counted.
# Every state change is measured into PCR 15 and logged; the host replays log vs quote.
set -u
. /lab/lib.sh
AG=keyward-allowlist
sha256sum /bin/busybox /usr/bin/node /usr/bin/tpm2 /usr/bin/keyward-allowlist > "$OUT/allowlist.txt"
mkdir -p /tmp/x && cp /bin/busybox /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true
sha256sum /tmp/x/true > "$OUT/unlisted.txt"
# errno as Node sees it (spawnSync error code), and the shell's exit status
probe() {
  node -e "const r=require('child_process').spawnSync('/tmp/x/true');console.log(r.error?r.error.code:'status='+r.status)" > "$OUT/$1-node.txt" 2>&1
  /tmp/x/true 2> "$OUT/$1-sh.err"; echo $? > "$OUT/$1-sh.rc"
  /bin/true; echo $? > "$OUT/$1-listed.rc"
}
probe before
$AG load --allowlist "$OUT/allowlist.txt" --mode enforce > "$OUT/load-enforce.json" || exit 10
probe enforce
$AG status > "$OUT/status-enforce.json" || exit 11
$AG update-denials > "$OUT/update-enforce-1.txt" || exit 12
$AG update-denials > "$OUT/update-enforce-2.txt" || exit 13
$AG unload > /dev/null || exit 14
$AG load --allowlist "$OUT/allowlist.txt" --mode audit > "$OUT/load-audit.json" || exit 15
probe audit
$AG status > "$OUT/status-audit.json" || exit 16
$AG status --print-state > "$OUT/print-state-audit.txt" || exit 17
$AG update-denials > "$OUT/update-audit.txt" || exit 18
cp /run/keyward/allowlist.log "$OUT/allowlist.log"
kw_quote "$KW_NONCE" "sha256:15" || exit 19
