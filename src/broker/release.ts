// Release to an attested key: the attestation token plus a DPoP proof by the bound key,
// the grant re-checked against the admitting policy as it stands now, and the value
// encrypted as a compact JWE to that same key.
import { CompactEncrypt, decodeJwt, importJWK, type JWK } from 'jose'
import { KeywardError } from '../errors.js'
import type { BrokerDeps, Grants } from './deps.js'
import type { EarClaims } from './tokens.js'
import type { AttestationRow } from '../store/types.js'
import { dpopNonces, verifyDpopProof } from './dpop.js'
import { toB64url } from '../util/bytes.js'
import { RELEASE_TYP, releaseAudience } from '../protocol/binding.js'

export interface Attested {
  claims: EarClaims
  attestation: AttestationRow
  key: JWK
  grants: Grants
}

export interface AuthInput {
  authorization: string | undefined
  dpop: string | undefined
  method: string
  url: string
}

export function createAuthenticator(deps: BrokerDeps) {
  const useProofId = (id: string, expiresAt: number) => deps.store.useDpopProof(id, expiresAt)
  const nonces = deps.config.requireDpopNonce ? dpopNonces(deps.store, deps.config.nonceTtlSeconds * 1000, deps.clock) : undefined
  return async function authenticate(a: AuthInput): Promise<Attested> {
    // Auth schemes are case-insensitive (RFC 9110 §11.1).
    const m = /^DPoP +([A-Za-z0-9._~+/-]+=*)$/i.exec(a.authorization ?? '')
    if (!m) throw new KeywardError('ERR_UNAUTHORIZED', 'Authorization: DPoP <attestation token> is required')
    if (!a.dpop) throw new KeywardError('ERR_DPOP_INVALID', 'a DPoP proof header is required')
    const token = m[1]!
    const claims = await deps.tokens.verify(token)
    const key = await verifyDpopProof(
      { proof: a.dpop, method: a.method, url: a.url, accessToken: token, jkt: claims.cnf.jkt, now: deps.clock(), ...(nonces ? { nonceValid: nonces.valid } : {}) },
      useProofId,
    )
    // From here the caller holds a validly signed token and its key: refusals are audited (app.ts releaseAudited).
    const caller = { detail: { authenticatedJkt: claims.cnf.jkt } }
    const attestation = await deps.store.getAttestation(claims.jti!)
    if (!attestation || attestation.revokedAt !== null) {
      throw new KeywardError('ERR_TOKEN_INVALID', 'attestation revoked', caller)
    }
    const grants = await deps.appraiser.grantsFor(attestation.policy, attestation.policyVersion)
    if (!grants) throw new KeywardError('ERR_NOT_GRANTED', 'the policy that admitted this token is no longer active', caller)
    return { claims, attestation, key, grants }
  }
}

/** Encrypts to the workload key: ECDH-ES+A256KW for EC keys, RSA-OAEP-256 for RSA, A256GCM content. */
export async function encryptToKey(key: JWK, plaintext: Uint8Array, headers: Record<string, string> = {}): Promise<string> {
  const alg = key.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW'
  const pub = await importJWK({ kty: key.kty, crv: key.crv, x: key.x, y: key.y, n: key.n, e: key.e } as JWK, alg)
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc: 'A256GCM', ...headers }).encrypt(pub)
}

export interface ReleaseLabel {
  kind: 'secret' | 'vault-token' | 'tool-credential' | 'jwt-svid'
  /** The secret's name, `vault`, the tool, or the SPIFFE ID. */
  name: string
  version?: number
}

/**
 * Every release path ends here: the value is signed with the token signing key (published in
 * /.well-known/jwks.json) together with what was asked for and this request's DPoP proof jti,
 * for the key's thumbprint as audience, and then encrypted to that key. Whoever sits between
 * broker and client can neither forge a release nor replay one to another request.
 */
export async function sealRelease(deps: BrokerDeps, a: Attested, dpopProof: string, label: ReleaseLabel, value: Uint8Array): Promise<string> {
  // authenticate() verified this proof; here only its jti is read.
  const { jti } = decodeJwt(dpopProof)
  const jkt = a.attestation.jkt
  const signed = await deps.tokens.signJwt(
    { keyward_release: label, dpop_jti: jti, value: toB64url(value) },
    { audience: releaseAudience(jkt), ttlSeconds: 300, typ: RELEASE_TYP },
  )
  return encryptToKey(a.key, new TextEncoder().encode(signed.token), { kid: jkt, cty: RELEASE_TYP })
}

/** Reads the newest version of a granted secret (a stored value or a Vault KV reference). */
export async function readGrantedSecret(deps: BrokerDeps, a: Attested, name: string): Promise<{ version: number; value: Uint8Array }> {
  if (!a.grants.secrets.includes(name)) {
    throw new KeywardError('ERR_NOT_GRANTED', `the admitting policy does not grant secret ${name}`)
  }
  return readSecretValue(deps, name)
}

/** The newest version of a stored secret; the caller has checked the grant that allows it. */
export async function readSecretValue(deps: BrokerDeps, name: string): Promise<{ version: number; value: Uint8Array }> {
  const row = await deps.store.getSecretVersion(name)
  if (!row) throw new KeywardError('ERR_NOT_FOUND', `secret ${name} not found`)
  if (row.source) {
    if (!deps.vault) throw new KeywardError('ERR_CONFIG', 'secret references Vault but no Vault is configured')
    const ref = JSON.parse(row.source) as { vaultKv: { mount: string; path: string; version?: number; field?: string } }
    return { version: row.version, value: await deps.vault.readKv(ref.vaultKv) }
  }
  return { version: row.version, value: await deps.sealer.unseal(row) }
}
