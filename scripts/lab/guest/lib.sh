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
