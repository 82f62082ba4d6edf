#!/usr/bin/env bash
# Makes (once) the lab's provisioned swtpm state: EK and platform certificates from a local CA
# (swtpm_localca), and prints its directory. run.sh copies state/ per boot, so every boot starts
# from a fresh TPM with the same EK; tests give ca/ to the broker (tpm.ekCaFiles) before booting.
#   scripts/lab/tpm-template.sh   ->  DIR with state/, ca/swtpm-localca-rootca-cert.pem, ca/issuercert.pem
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${KEYWARD_LAB_CACHE:-$ROOT/.lab-cache}
TPL=$CACHE/tpm-template
if [[ ! -f $TPL/.done ]]; then
  rm -rf "$TPL"; mkdir -p "$TPL/state" "$TPL/ca"
  cat > "$TPL/localca.conf" <<CONF
statedir = $TPL/ca
signingkey = $TPL/ca/signkey.pem
issuercert = $TPL/ca/issuercert.pem
certserial = $TPL/ca/certserial
CONF
  cat > "$TPL/swtpm_setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $TPL/localca.conf
create_certs_tool_options = /etc/swtpm-localca.options
CONF
  swtpm_setup --tpm2 --tpmstate "$TPL/state" --config "$TPL/swtpm_setup.conf" \
    --create-ek-cert --create-platform-cert --pcr-banks sha256 \
    --logfile "$TPL/setup.log" >/dev/null || { cat "$TPL/setup.log" >&2; echo "lab-tpm: swtpm_setup failed" >&2; exit 1; }
  touch "$TPL/.done"
fi
echo "$TPL"
