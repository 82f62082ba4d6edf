# Scenarios 2 and 3. Scenario 2, exec allowlist. With kw.agent=enforce the initramfs /init has
# started the agent before this script (the workload phase): the LSM programs enforce an
# allowlist of every ELF file the guest ships (executables, ld.so, shared libraries); an
# unlisted binary (busybox with one byte appended) fails with EPERM and is counted, host-wide and
# per cgroup. keyward-client attests against the broker (relayed over virtio-serial) asking the
# agent for a fresh signed statement each time (--runtime-state the agent's socket); the
# statement carries the denials of the client's own cgroup, which the lab policy judges:
#   enforce, approved, 0 denials      -> `run` starts its child with the secret (scenario 3)
#   the refused execs, no manual step -> the very next attestation is denied (allowlist-no-denials)
#   bypass probes refused in cgroup kwa -> a client in kwa is denied, one in the clean kwb is not
#   root starts its own agent (own key, enforce, approved, 0 denials); its records land after
#   the separator                     -> ERR_ALLOWLIST_UNTRUSTED (or ERR_ALLOWLIST_REPLAY when
#                                        it leaves the real records out)
#   an extend missing from the log    -> ERR_ALLOWLIST_REPLAY
# and the kernel side (issue 20 items 2 and 4): code run without an exec (LD_PRELOAD, dlopen,
# process.dlopen, memfd, mprotect, 9p) refused, a root BPF program kept from the counters, a
# removed link or replaced map pin noticed.
# With kw.agent=none no agent ran at boot and /init extended the SEPARATOR alone; the bypass
# probes run unhindered (the control), and root in the workload forges:
#   nothing presented                 -> denied by the allowlist conditions
#   its own statement, no records     -> ERR_ALLOWLIST_REPLAY (PCR 15 is not zero)
#   its own agent started now, presented after /init's separator -> ERR_ALLOWLIST_UNTRUSTED,
#   or with its own records only      -> ERR_ALLOWLIST_REPLAY
set -u
. /lab/lib.sh
AG=keyward-allowlist
SOCK=/run/keyward/agent.sock
PIN=/sys/fs/bpf/keyward
CG=/sys/fs/cgroup
mkdir -p /tmp/x && cp /bin/busybox /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true
sha256sum /tmp/x/true > "$OUT/unlisted.txt"
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
# forged_agent: root loads a second program with its own key and socket (after boot: a workload)
forged_agent() {
  . /lab/elf-files.sh
  lab_elf_files "" | xargs sha256sum > /tmp/forged-allowlist.txt
  $AG load --allowlist /tmp/forged-allowlist.txt --mode enforce --pin-dir /sys/fs/bpf/forged \
    --socket /tmp/forged.sock --tcti device:/dev/tpmrm0 > "$OUT/forged-load.json" 2> "$OUT/forged-load.err" &
  for i in $(seq 300); do [ -s "$OUT/forged-load.json" ] && break; sleep 0.1; done
  [ -s "$OUT/forged-load.json" ]
}
forge_proxy() {
  node /lab/forge.mjs "$@" > /tmp/forge.out 2>&1 &
  for i in $(seq 300); do grep -q ready /tmp/forge.out 2>/dev/null && break; sleep 0.1; done
}
kw_broker_up "$KW_BROKER_PORT" || exit 20
# The host's admin issued a single-use enrolment token for the name (kw.enrol_token).
export KEYWARD_ENROL_TOKEN="${KW_ENROL_TOKEN:-}"
kw_step register register --workload lab-exec-allowlist
unset KEYWARD_ENROL_TOKEN

if [ "${KW_AGENT:-none}" = none ]; then
  probe noagent
  bypass before
  kw_step attest-nothing attest
  forged_agent || exit 30
  cp /run/keyward/separator.json "$OUT/separator.json"
  forge_proxy norecords /tmp/forged.sock /tmp/norecords.sock
  kw_step attest-norecords attest --runtime-state /tmp/norecords.sock
  forge_proxy withsep /run/keyward/separator.json /tmp/forged.sock /tmp/withsep.sock
  kw_step attest-selfload attest --runtime-state /tmp/withsep.sock
  kw_step attest-selfload-own attest --runtime-state /tmp/forged.sock
  kw_broker_down
  exit 0
fi

cp /run/keyward/allowlist.txt "$OUT/allowlist.txt"
cp /run/keyward/load.json "$OUT/load.json"
$AG status > "$OUT/status-start.json" || exit 10
# The child reports what it got; the secret file must be 0600 on tmpfs under /run/secrets.
kw_step run-approved run --runtime-state $SOCK --renew-interval 0 \
  --secret lab-secret=env:LAB_SECRET --secret lab-secret=file:/run/secrets/lab-secret -- \
  /bin/sh -c 'printf %s "$LAB_SECRET" > /tmp/out/child-env.txt; cat /run/secrets/lab-secret > /tmp/out/child-file.txt; stat -c %a /run/secrets/lab-secret > /tmp/out/child-file-mode.txt'
probe enforce
$AG status > "$OUT/status-enforce.json" || exit 11
# Root reaches for the agent's key: its /proc/<pid>/mem and /maps are refused (ptrace guard);
# the same opens on another process succeed.
for f in mem maps; do
  ( exec 3< "/proc/$KW_AGENT_PID/$f" ) 2> "$OUT/agent-$f.err"; echo $? > "$OUT/agent-$f.rc"
  ( exec 3< "/proc/$KW_SHIM_PID/$f" ) 2> "$OUT/other-$f.err"; echo $? > "$OUT/other-$f.rc"
done
# No update step: the agent reads the counters when asked for the statement. The two refused
# execs ran in this shell's cgroup (the root cgroup), as does the client.
kw_step attest-denials attest --runtime-state $SOCK
# The agent signs for any nonce; the host judges one (statement + quote over PCR 15).
$AG statement --nonce "$KW_NONCE" --jkt "$KW_NONCE" > "$OUT/statement.json" || exit 12
kw_quote "$KW_NONCE" "sha256:15" || exit 13

# Bypasses under enforce (issue 20 item 4), counted per cgroup (item 5): the probes run in
# cgroup kwa; a client there is denied, one in the clean cgroup kwb is admitted although the
# host-wide count is not 0.
mkdir $CG/kwa $CG/kwb && stat -c %i $CG/kwa > "$OUT/cgroup-a.id" && stat -c %i $CG/kwb > "$OUT/cgroup-b.id" || exit 27
echo $$ > $CG/kwa/cgroup.procs || exit 28
bypass enforce
kw_step attest-cgroup-a attest --runtime-state $SOCK
echo $$ > $CG/kwb/cgroup.procs || exit 29
kw_step attest-cgroup-b attest --runtime-state $SOCK
echo $$ > $CG/cgroup.procs || exit 29
$AG status > "$OUT/status-bypass.json" || exit 30
# A root BPF program tries to zero the denial counter (item 2).
$PROBE bpf-attack $PIN/denials > "$OUT/bpf-attack.out" 2>&1
$AG status > "$OUT/status-after-attack.json" || exit 31

# Root forges: its own agent, its records after the separator.
forged_agent || exit 14
forge_proxy merge $SOCK /tmp/forged.sock /tmp/merged.sock
kw_step attest-forged attest --runtime-state /tmp/merged.sock
kw_step attest-forged-own attest --runtime-state /tmp/forged.sock
# An extend of PCR 15 nobody logs.
tpm2_pcrextend "15:sha256=$(echo 'lab: unlogged extend' | sha256sum | cut -c1-64)" || exit 23
kw_step attest-unlogged attest --runtime-state $SOCK
kw_broker_down

# Tampering the pins must be noticed by whoever reads through them: a link pin removed, a map
# pin replaced by another map. The agent reads through its own descriptors; its programs stay
# attached through them.
rm $PIN/link-mmap
$AG status > /dev/null 2> "$OUT/tamper-link.err"; echo $? > "$OUT/tamper-link.rc"
rm $PIN/denials && $PROBE pin-fake $PIN/denials > "$OUT/pin-fake.out" 2>&1
$AG status > /dev/null 2> "$OUT/tamper-map.err"; echo $? > "$OUT/tamper-map.rc"
$AG statement --nonce "$KW_NONCE" --jkt "$KW_NONCE" > "$OUT/statement-after-tamper.json" || exit 32
/tmp/x/true 2> /dev/null; echo $? > "$OUT/after-tamper-sh.rc"
exit 0
