# Scenarios 2 and 3 in one boot. Scenario 2, exec allowlist: the agent loads the LSM program
# in enforce mode with an allowlist of every ELF file the guest ships; an unlisted binary
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
# Every ELF file the guest ships: executables, ld.so and the shared libraries (mapped, checked
# by the mmap hook); build.sh computes the same list on the host (allowlist.sha256).
. /lab/elf-files.sh
lab_elf_files "" | xargs sha256sum > "$OUT/allowlist.txt"
mkdir -p /tmp/x && cp /bin/busybox /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true
sha256sum /tmp/x/true > "$OUT/unlisted.txt"
cat "$OUT/allowlist.txt" "$OUT/unlisted.txt" > "$OUT/allowlist-changed.txt"
# errno as Node sees it (spawnSync error code), and the shell's exit status
probe() {
  node -e "const r=require('child_process').spawnSync('/tmp/x/true');console.log(r.error?r.error.code:'status='+r.status)" > "$OUT/$1-node.txt" 2>&1
  /tmp/x/true 2> "$OUT/$1-sh.err"; echo $? > "$OUT/$1-sh.rc"
  /bin/true; echo $? > "$OUT/$1-listed.rc"
}
# Code run without an exec of an unlisted file (issue 20 item 4), results in $OUT/PHASE-*:
# LD_PRELOAD and dlopen (C and Node's process.dlopen) of an unlisted library whose constructor
# leaves a marker, memfd/mprotect executable mappings, exec of listed content from 9p (and the
# same from tmpfs), and an interpreter given a file.
PROBE=/usr/lib/keyward-lab/kw-probe
cp /lab/unlisted/kw-lib.so /tmp/x/kw-lib.so
cp /bin/busybox /tmp/x/busybox-copy
printf 'echo interpreted\n' > /tmp/x/script.sh
mkdir -p /mnt/9p && mount -t 9p -o trans=virtio,version=9p2000.L,ro kwshare /mnt/9p 2> "$OUT/9p-mount.err"
bypass() {
  KW_MARK=$OUT/$1-preload-ran LD_PRELOAD=/tmp/x/kw-lib.so $PROBE hello > "$OUT/$1-preload.out" 2>&1
  KW_MARK=$OUT/$1-dlopen-ran $PROBE dlopen /tmp/x/kw-lib.so > "$OUT/$1-dlopen.out" 2>&1
  KW_MARK=$OUT/$1-nodedl-ran node -e "try{process.dlopen({exports:{}},'/tmp/x/kw-lib.so');console.log('loaded')}catch(e){console.log(e.message)}" > "$OUT/$1-nodedl.out" 2>&1
  $PROBE mmap > "$OUT/$1-mmap.out" 2>&1
  /mnt/9p/busybox true 2> "$OUT/$1-9p.err"; echo $? > "$OUT/$1-9p.rc"
  /tmp/x/busybox-copy true; echo $? > "$OUT/$1-tmpfs.rc"
  sh /tmp/x/script.sh > "$OUT/$1-sh-file.out" 2>&1
}
bypass before
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
# Bypasses under enforce (issue 20 item 4), counted per cgroup (item 5): the probes run in
# cgroup kwa, one refused exec in the root cgroup (id 1). Then a root BPF program tries to
# zero the denial counter (item 2), and unload measures before it removes anything.
$AG unload > /dev/null || exit 24
$AG load --allowlist "$OUT/allowlist.txt" --mode enforce > "$OUT/load-bypass.json" || exit 25
mount -t cgroup2 none /sys/fs/cgroup || exit 26
mkdir /sys/fs/cgroup/kwa && stat -c %i /sys/fs/cgroup/kwa > "$OUT/cgroup-a.id" || exit 27
echo $$ > /sys/fs/cgroup/kwa/cgroup.procs || exit 28
bypass enforce
echo $$ > /sys/fs/cgroup/cgroup.procs || exit 29
/tmp/x/true 2> /dev/null
$AG status > "$OUT/status-bypass.json" || exit 30
$PROBE bpf-attack /sys/fs/bpf/keyward/denials > "$OUT/bpf-attack.out" 2>&1
$AG status > "$OUT/status-after-attack.json" || exit 31
$AG unload > "$OUT/unload-end.txt" || exit 32
cp $LOG "$OUT/allowlist-end.log"
# Tampering the agent must notice before it measures: a link removed (its program detached),
# a map pin replaced by another map. Each time the pins are then cleared by hand.
PIN=/sys/fs/bpf/keyward
$AG load --allowlist "$OUT/allowlist.txt" --mode enforce > /dev/null || exit 33
rm $PIN/link-mmap
$AG status > /dev/null 2> "$OUT/tamper-link.err"; echo $? > "$OUT/tamper-link.rc"
rm -rf $PIN
$AG load --allowlist "$OUT/allowlist.txt" --mode enforce > /dev/null || exit 34
rm $PIN/denials && $PROBE pin-fake $PIN/denials > "$OUT/pin-fake.out" 2>&1
$AG status > /dev/null 2> "$OUT/tamper-map.err"; echo $? > "$OUT/tamper-map.rc"
rm -rf $PIN
exit 0
