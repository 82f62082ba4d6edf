# Scenarios 2 and 3. Scenario 2, exec allowlist. With kw.agent=enforce the initramfs /init has
# started the agent before this script (the workload phase): the LSM program enforces an
# allowlist of busybox, node, tpm2-tools and the agent; an unlisted binary (busybox with one byte
# appended) fails with EPERM and is counted. keyward-client attests against the broker (relayed
# over virtio-serial) asking the agent for a fresh signed statement each time (--runtime-state
# the agent's socket):
#   enforce, approved, 0 denials      -> `run` starts its child with the secret (scenario 3)
#   the refused execs, no manual step -> the very next attestation is denied (allowlist-no-denials)
#   root starts its own agent (own key, enforce, approved, 0 denials); its records land after
#   the separator                     -> ERR_ALLOWLIST_UNTRUSTED (or ERR_ALLOWLIST_REPLAY when
#                                        it leaves the real records out)
#   an extend missing from the log    -> ERR_ALLOWLIST_REPLAY
# With kw.agent=none no agent ran at boot and /init extended the SEPARATOR alone; root in the
# workload forges:
#   nothing presented                 -> denied by the allowlist conditions
#   its own statement, no records     -> ERR_ALLOWLIST_REPLAY (PCR 15 is not zero)
#   its own agent started now, presented after /init's separator -> ERR_ALLOWLIST_UNTRUSTED,
#   or with its own records only      -> ERR_ALLOWLIST_REPLAY
set -u
. /lab/lib.sh
AG=keyward-allowlist
SOCK=/run/keyward/agent.sock
mkdir -p /tmp/x && cp /bin/busybox /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true
sha256sum /tmp/x/true > "$OUT/unlisted.txt"
# errno as Node sees it (spawnSync error code), and the shell's exit status
probe() {
  node -e "const r=require('child_process').spawnSync('/tmp/x/true');console.log(r.error?r.error.code:'status='+r.status)" > "$OUT/$1-node.txt" 2>&1
  /tmp/x/true 2> "$OUT/$1-sh.err"; echo $? > "$OUT/$1-sh.rc"
  /bin/true; echo $? > "$OUT/$1-listed.rc"
}
# forged_agent: root loads a second program with its own key and socket (after boot: a workload)
forged_agent() {
  sha256sum /bin/busybox /usr/bin/node /usr/bin/tpm2 /usr/bin/keyward-allowlist > /tmp/forged-allowlist.txt
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
kw_step register register --workload lab-exec-allowlist

if [ "${KW_AGENT:-none}" = none ]; then
  probe noagent
  kw_step attest-nothing attest
  forged_agent || exit 30
  cp /run/keyward/separator.json "$OUT/separator.json"
  forge_proxy norecords /tmp/forged.sock /tmp/norecords.sock
  kw_step attest-norecords attest --runtime-state /tmp/norecords.sock
  forge_proxy withsep /run/keyward/separator.json /tmp/forged.sock /tmp/withsep.sock
  kw_step attest-selfload attest --runtime-state /tmp/withsep.sock
  kw_step attest-selfload-own attest --runtime-state /tmp/forged.sock
  kill "$KW_SHIM_PID"
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
# No update step: the agent reads the counter when asked for the statement.
kw_step attest-denials attest --runtime-state $SOCK
# The agent signs for any nonce; the host judges one (statement + quote over PCR 15).
$AG statement --nonce "$KW_NONCE" --jkt "$KW_NONCE" > "$OUT/statement.json" || exit 12
kw_quote "$KW_NONCE" "sha256:15" || exit 13
# Root forges: its own agent, its records after the separator.
forged_agent || exit 14
forge_proxy merge $SOCK /tmp/forged.sock /tmp/merged.sock
kw_step attest-forged attest --runtime-state /tmp/merged.sock
kw_step attest-forged-own attest --runtime-state /tmp/forged.sock
# An extend of PCR 15 nobody logs.
tpm2_pcrextend "15:sha256=$(echo 'lab: unlogged extend' | sha256sum | cut -c1-64)" || exit 23
kw_step attest-unlogged attest --runtime-state $SOCK
kill "$KW_SHIM_PID"
exit 0
