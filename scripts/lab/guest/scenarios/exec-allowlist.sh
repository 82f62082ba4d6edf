# Scenarios 2 and 3 in one boot. Scenario 2, exec allowlist: the agent loads the LSM program
# in enforce mode with an allowlist of busybox, node, tpm2-tools and itself; an unlisted binary
# (busybox with one byte appended) must fail with EPERM and be counted; in audit mode it runs and
# is counted. Every state change is measured into PCR 15 and logged; the host replays log vs
# quote. With kw.broker_port=P, keyward-client attests against the broker (relayed over
# virtio-serial) after each state change, passing the agent's log (--runtime-state):
#   enforce, approved, 0 denials  -> `run` starts its child with the secret (scenario 3)
#   enforce, 2 denials            -> denied (allowlist-no-denials)
#   audit                         -> denied (allowlist-enforcing)
#   enforce, changed allowlist    -> `run` denied, child never starts (scenario 3; allowlist-approved)
#   an extend missing from the log -> denied (ERR_ALLOWLIST_REPLAY)
set -u
. /lab/lib.sh
AG=keyward-allowlist
LOG=/run/keyward/allowlist.log
BROKER=0; [ -n "${KW_BROKER_PORT:-}" ] && BROKER=1
sha256sum /bin/busybox /usr/bin/node /usr/bin/tpm2 /usr/bin/keyward-allowlist > "$OUT/allowlist.txt"
mkdir -p /tmp/x && cp /bin/busybox /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true
sha256sum /tmp/x/true > "$OUT/unlisted.txt"
cat "$OUT/allowlist.txt" "$OUT/unlisted.txt" > "$OUT/allowlist-changed.txt"
# errno as Node sees it (spawnSync error code), and the shell's exit status
probe() {
  node -e "const r=require('child_process').spawnSync('/tmp/x/true');console.log(r.error?r.error.code:'status='+r.status)" > "$OUT/$1-node.txt" 2>&1
  /tmp/x/true 2> "$OUT/$1-sh.err"; echo $? > "$OUT/$1-sh.rc"
  /bin/true; echo $? > "$OUT/$1-listed.rc"
}
if [ $BROKER = 1 ]; then
  kw_broker_up "$KW_BROKER_PORT" || exit 20
  # The host's admin issued a single-use enrolment token for the name (kw.enrol_token).
  export KEYWARD_ENROL_TOKEN="${KW_ENROL_TOKEN:-}"
  kw_step register register --workload lab-exec-allowlist
  unset KEYWARD_ENROL_TOKEN
fi
probe before
$AG load --allowlist "$OUT/allowlist.txt" --mode enforce > "$OUT/load-enforce.json" || exit 10
if [ $BROKER = 1 ]; then
  # The child reports what it got; the secret file must be 0600 on tmpfs under /run/secrets.
  kw_step run-approved run --runtime-state $LOG --renew-interval 0 \
    --secret lab-secret=env:LAB_SECRET --secret lab-secret=file:/run/secrets/lab-secret -- \
    /bin/sh -c 'printf %s "$LAB_SECRET" > /tmp/out/child-env.txt; cat /run/secrets/lab-secret > /tmp/out/child-file.txt; stat -c %a /run/secrets/lab-secret > /tmp/out/child-file-mode.txt'
fi
probe enforce
$AG status > "$OUT/status-enforce.json" || exit 11
$AG update-denials > "$OUT/update-enforce-1.txt" || exit 12
$AG update-denials > "$OUT/update-enforce-2.txt" || exit 13
[ $BROKER = 1 ] && kw_step attest-denials attest --runtime-state $LOG
$AG unload > /dev/null || exit 14
$AG load --allowlist "$OUT/allowlist.txt" --mode audit > "$OUT/load-audit.json" || exit 15
[ $BROKER = 1 ] && kw_step attest-audit attest --runtime-state $LOG
probe audit
$AG status > "$OUT/status-audit.json" || exit 16
$AG status --print-state > "$OUT/print-state-audit.txt" || exit 17
$AG update-denials > "$OUT/update-audit.txt" || exit 18
cp $LOG "$OUT/allowlist.log"
kw_quote "$KW_NONCE" "sha256:15" || exit 19
[ $BROKER = 1 ] || exit 0
# A changed allowlist (the unlisted binary added), enforcing, no denials: not approved.
$AG unload > /dev/null || exit 21
$AG load --allowlist "$OUT/allowlist-changed.txt" --mode enforce > "$OUT/load-changed.json" || exit 22
kw_step run-unapproved run --runtime-state $LOG --renew-interval 0 --secret lab-secret=env:LAB_SECRET -- \
  /bin/sh -c 'echo started > /tmp/out/unapproved-child-started'
# An extend of PCR 15 the log does not have (as if the agent's append had been lost).
tpm2_pcrextend "15:sha256=$(echo 'lab: unlogged extend' | sha256sum | cut -c1-64)" || exit 23
kw_step attest-unlogged attest --runtime-state $LOG
cp $LOG "$OUT/allowlist-final.log"
kill "$KW_SHIM_PID"
exit 0
