# Shared guest helpers (sourced by scenarios).
# kw_quote NONCE_HEX SELECTION: EK (standard RSA template, the one swtpm_setup certified),
# an RSA AK under it, and a quote over SELECTION with NONCE as qualifying data, all through
# the kernel resource manager /dev/tpmrm0. Writes to $OUT: ek.pub.pem ek.cert.der ak.pub
# ak.pub.pem ak.name quote.msg quote.sig quote.pcrs quote.yaml.
export TPM2TOOLS_TCTI=device:/dev/tpmrm0
kw_quote() {
  local nonce=$1 sel=$2 d=/tmp/kwq
  mkdir -p $d
  tpm2_createek -c $d/ek.ctx -G rsa -u $d/ek.pub -f pem -u "$OUT/ek.pub.pem" >/dev/null || return 1
  tpm2_nvread 0x01c00002 -C o -o "$OUT/ek.cert.der" >/dev/null 2>&1 || true
  tpm2_createak -C $d/ek.ctx -c $d/ak.ctx -G rsa -g sha256 -s rsassa \
    -u "$OUT/ak.pub" -n "$OUT/ak.name" >/dev/null || return 1
  tpm2_readpublic -c $d/ak.ctx -f pem -o "$OUT/ak.pub.pem" >/dev/null || return 1
  tpm2_quote -c $d/ak.ctx -l "$sel" -q "$nonce" -g sha256 -m "$OUT/quote.msg" \
    -s "$OUT/quote.sig" -o "$OUT/quote.pcrs" > "$OUT/quote.yaml" || return 1
}
# kw_request METHOD PATH BODY: one request over the virtio-serial port "keyward" to the host
# relay (scripts/lab/relay.mjs); prints the response line ({"id","status","headers","body"}).
kw_request() {
  local p= d
  for d in /sys/class/virtio-ports/*; do [ "$(cat "$d/name")" = keyward ] && p=/dev/${d##*/}; done
  [ -n "$p" ] || { echo "lab: no virtio-serial port named keyward" >&2; return 1; }
  exec 3<>"$p"
  printf '{"id":1,"method":"%s","path":"%s","headers":{"content-type":"application/json"},"body":"%s"}\n' \
    "$1" "$2" "$(echo "$3" | sed 's/"/\\"/g')" >&3
  read -r line <&3
  exec 3>&-
  echo "$line"
}
# kw_broker_up PORT: the broker at http://127.0.0.1:PORT inside the guest (only lo is up),
# served by /lab/vport-http.mjs over the virtio-serial port; sets KW_BROKER and KW_SHIM_PID.
# A shim an enclosing scenario started (exported KW_SHIM_PID, alive) is reused: the port has one
# open. kw_broker_down stops the shim only if this scenario started it.
kw_broker_up() {
  if [ -n "${KW_SHIM_PID:-}" ] && kill -0 "$KW_SHIM_PID" 2>/dev/null; then
    KW_SHIM_SHARED=1
    export KW_BROKER=http://127.0.0.1:$1
    return 0
  fi
  KW_SHIM_SHARED=
  ip link set lo up || return 1
  node /lab/vport-http.mjs "$1" > /tmp/vport-http.out 2>&1 &
  KW_SHIM_PID=$!
  local i
  for i in $(seq 300); do grep -q ready /tmp/vport-http.out 2>/dev/null && break; sleep 0.1; done
  grep -q ready /tmp/vport-http.out || { cat /tmp/vport-http.out >&2; return 1; }
  export KW_BROKER=http://127.0.0.1:$1
}
kw_broker_down() {
  [ -n "${KW_SHIM_SHARED:-}" ] || kill "$KW_SHIM_PID"
}
# kwc ARGS...: the bundled keyward-client (payload disk, build.sh) against the relayed broker,
# with this guest's TPM and one state dir (so every command uses the AK that was registered;
# KW_STATE_DIR gives a scenario its own, default /run/kwc).
# Its stderr starts with "code cache used|rejected|absent" (scripts/lab/client/load.cjs).
kwc() {
  KW_CODE_CACHE_STATUS=1 node /usr/lib/keyward/load.cjs --broker "$KW_BROKER" --tee tpm --tcti device:/dev/tpmrm0 \
    --state-dir "${KW_STATE_DIR:-/run/kwc}" --retries 0 --timeout 120000 "$@"
}
# kw_step NAME ARGS...: kwc with stdout/stderr/exit status kept in $OUT/NAME.{out,err,rc};
# "NAME rc seconds" (guest uptime) appended to $OUT/steps.txt.
kw_step() {
  local n=$1 t0; shift
  t0=$(cut -d' ' -f1 /proc/uptime)
  kwc "$@" > "$OUT/$n.out" 2> "$OUT/$n.err"; echo $? > "$OUT/$n.rc"
  echo "$n $(cat "$OUT/$n.rc") $(awk -v a="$t0" '{printf "%.2f", $1 - a}' /proc/uptime)" >> "$OUT/steps.txt"
  echo "lab: $(tail -n1 "$OUT/steps.txt")"
}
