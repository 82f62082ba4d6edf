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
