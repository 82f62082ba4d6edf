#!/bin/sh
# Configures a Vault server for keyward exactly as docs/vault.md section 1 says.
# Usage: vault-setup.sh base   (secrets engines, policies, token role, AppRole)
#        vault-setup.sh jwt    (JWT auth against keyward's JWKS; needs keyward running)
# Needs VAULT_ADDR and VAULT_TOKEN (an operator token); idempotent.
set -eu
phase="${1:-base}"
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$phase" = base ]; then
  vault secrets list -format=json | grep -q '"secret/"' || vault secrets enable -path=secret kv-v2
  vault secrets list -format=json | grep -q '"transit/"' || vault secrets enable transit
  # derived=true: transit derives a key per context, which keyward binds to each secret.
  vault read transit/keys/keyward-kek >/dev/null 2>&1 || vault write transit/keys/keyward-kek type=aes256-gcm96 derived=true

  vault policy write app-read - <<'HCL'
path "secret/data/apps/*" { capabilities = ["read"] }
HCL

  vault policy write keyward - <<'HCL'
path "auth/token/create/keyward-workload" { capabilities = ["update"] }
path "auth/token/revoke-accessor"         { capabilities = ["update"] }
path "auth/token/lookup-self"             { capabilities = ["read"] }
path "auth/token/renew-self"              { capabilities = ["update"] }
path "secret/data/keyward/*"              { capabilities = ["read"] }
path "transit/encrypt/keyward-kek"        { capabilities = ["update"] }
path "transit/decrypt/keyward-kek"        { capabilities = ["update"] }
path "transit/rewrap/keyward-kek"         { capabilities = ["update"] }
path "transit/keys/keyward-kek"           { capabilities = ["read"] }
path "transit/keys/keyward-kek/rotate"    { capabilities = ["update"] }
HCL

  vault write auth/token/roles/keyward-workload \
      allowed_policies="app-read" \
      disallowed_policies="root,keyward" \
      orphan=true \
      renewable=false \
      token_type=service \
      token_explicit_max_ttl=1h

  vault auth list -format=json | grep -q '"approle/"' || vault auth enable approle
  vault write auth/approle/role/keyward \
      token_policies=keyward \
      token_ttl=1h token_max_ttl=24h \
      secret_id_ttl=0 secret_id_num_uses=0

  dir="${APPROLE_DIR:-.}"
  umask 077
  vault read -field=role_id auth/approle/role/keyward/role-id > "$dir/role-id"
  vault write -f -field=secret_id auth/approle/role/keyward/secret-id > "$dir/secret-id"
  # keyward runs as uid 1000 (node) in its image.
  chown 1000:1000 "$dir/role-id" "$dir/secret-id" 2>/dev/null || true

  # Demo secrets: one keyward may release (KV source), one only workload tokens may read.
  vault kv put secret/keyward/demo password=demo-only-password >/dev/null
  vault kv put secret/apps/db password=demo-db-password >/dev/null
  echo "vault-setup: base configuration done"
  exit 0
fi

if [ "$phase" = jwt ]; then
  url="${KEYWARD_URL:?set KEYWARD_URL}"
  i=0
  until wget -q -O /dev/null "$url/.well-known/jwks.json"; do
    i=$((i + 1)); [ "$i" -lt 60 ] || { echo "vault-setup: keyward JWKS not reachable" >&2; exit 1; }
    sleep 1
  done
  vault auth list -format=json | grep -q '"jwt/"' || vault auth enable jwt
  vault write auth/jwt/config \
      jwks_url="$url/.well-known/jwks.json" \
      jwt_supported_algs=ES256 \
      bound_issuer="$url"
  vault write auth/jwt/role/keyward-attested @"${JWT_ROLE_FILE:-/jwt-role.json}"
  echo "vault-setup: JWT auth configured"
  exit 0
fi

echo "usage: $0 base|jwt" >&2
exit 2
