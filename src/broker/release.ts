// Release to an attested key: the attestation token plus a DPoP proof by the bound key,
// the grant re-checked against the admitting policy as it stands now, and the value
// encrypted as a compact JWE to that same key. createReleases() holds the three releases
// (secret, Vault token, tool credential) and audits each outcome; routes/{secrets,vault,
// credentials}.ts only read the request into a ReleaseCaller and answer with the body.
import { decodeJwt, type JWK } from 'jose'
import type { KeyObject } from 'node:crypto'
import { compactJwe, encryptJwe } from './jwe.js'
import { KeywardError, isKeywardError } from '../errors.js'
import type { BrokerDeps, Grants } from './deps.js'
import type { EarClaims } from './tokens.js'
import type { AttestationRow } from '../store/types.js'
import { dpopNonces, verifyDpopProof } from './dpop.js'
import { toB64url } from '../util/bytes.js'
import { RELEASE_TYP, releaseAudience } from '../protocol/binding.js'
import { TOOL_CREDENTIAL_TYP } from './tokens.js'
import { errorForAudit } from './attest.js'
import type { Noise, RateLimiter } from './abuse.js'
import { assertNotQuarantined } from './containment.js'
import { inSpan } from './tracing.js'

export interface Attested {
  claims: EarClaims
  attestation: AttestationRow
  /** The bound key, as the DPoP proof carried it. */
  key: JWK
  /** The same key for node:crypto: every release is encrypted to it. */
  publicKey: KeyObject
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
    const proofKey = await verifyDpopProof(
      { proof: a.dpop, method: a.method, url: a.url, accessToken: token, jkt: claims.cnf.jkt, now: deps.clock(), ...(nonces ? { nonceValid: nonces.valid } : {}) },
      useProofId,
    )
    // From here the caller holds a validly signed token and its key: refusals are audited (releaseAudited below).
    const caller = { detail: { authenticatedJkt: claims.cnf.jkt } }
    const attestation = await deps.store.getAttestation(claims.jti!)
    if (!attestation) throw new KeywardError('ERR_TOKEN_INVALID', 'attestation revoked', caller)
    // Before the revocation check: containment revokes the tokens it quarantines, and says why.
    const state = await deps.appraiser.state()
    await assertNotQuarantined(state, attestation.workload, caller.detail)
    if (attestation.revokedAt !== null) throw new KeywardError('ERR_TOKEN_INVALID', 'attestation revoked', caller)
    const grants = await deps.appraiser.grantsFor(attestation.policy, attestation.policyVersion, state)
    if (!grants) throw new KeywardError('ERR_NOT_GRANTED', 'the policy that admitted this token is no longer active', caller)
    return { claims, attestation, key: proofKey.jwk, publicKey: proofKey.publicKey, grants }
  }
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
  // A compact JWE to the bound key: ECDH-ES+A256KW for EC keys, RSA-OAEP-256 for RSA, A256GCM content.
  return compactJwe(encryptJwe(a.publicKey, new TextEncoder().encode(signed.token), { kid: jkt, cty: RELEASE_TYP }))
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

/** A release request as the route read it: plain values, no HTTP types. */
export interface ReleaseCaller {
  reqId: string
  /** The route label for noise metrics (e.g. /v1/secrets/:name). */
  route: string
  auth: AuthInput
}

type ReleaseBody = Record<string, unknown>
export interface Releases {
  secret(caller: ReleaseCaller, name: string): Promise<ReleaseBody>
  vaultToken(caller: ReleaseCaller, req: { role?: string | undefined; wrap?: boolean | undefined }): Promise<ReleaseBody>
  toolCredential(caller: ReleaseCaller, tool: string): Promise<ReleaseBody>
  /** Another kind of release (SPIFFE SVIDs): authenticated, charged and audited like the three above. */
  audited(kind: string, what: string, caller: ReleaseCaller, fn: (a: Attested) => Promise<Released>): Promise<ReleaseBody>
}

/** The three releases; each authenticates (token + DPoP proof), charges the per-key bucket, and is audited by releaseAudited. */
export function createReleases(deps: BrokerDeps, opts: { noise: Noise; perWorkload: RateLimiter }): Releases {
  const authenticate = createAuthenticator(deps)
  const run = (kind: string, what: string, caller: ReleaseCaller, fn: (a: Attested) => Promise<Released>) =>
    releaseAudited(
      deps,
      opts.noise,
      kind,
      what,
      caller,
      async () => {
        const a = await authenticate(caller.auth)
        opts.perWorkload.take(a.attestation.jkt)
        return a
      },
      fn,
    )
  const proof = (caller: ReleaseCaller) => caller.auth.dpop ?? ''

  return {
    audited: (kind, what, caller, fn) => run(kind, what, caller, fn),

    secret: (caller, name) =>
      run('secret', name, caller, async (a) => {
        const { version, value } = await readGrantedSecret(deps, a, name)
        const jwe = await sealRelease(deps, a, proof(caller), { kind: 'secret', name, version }, value)
        return { subject: a.attestation.jkt, body: { name, version, jwe } }
      }),

    vaultToken: (caller, req) =>
      run('vault-token', 'vault', caller, async (a) => {
        const grant = req.role ? a.grants.vault.find((g) => g.role === req.role) : a.grants.vault[0]
        if (!grant) throw new KeywardError('ERR_NOT_GRANTED', req.role ? `the admitting policy does not grant Vault role ${req.role}` : 'the admitting policy grants no Vault role')
        if (!deps.vault) throw new KeywardError('ERR_CONFIG', 'no Vault is configured')
        const att = a.attestation
        const minted = await deps.vault.mintToken(
          { jti: att.jti, jkt: att.jkt, tee: att.tee, measurement: att.measurement, policy: att.policy, referenceIds: JSON.parse(att.referenceIds) as string[], workload: att.workload },
          { ...grant, ...(req.wrap ? { wrapTtlSeconds: 60 } : {}) },
        )
        const payload = JSON.stringify({ token: minted.token, wrapToken: minted.wrapToken, accessor: minted.accessor, leaseDuration: minted.leaseDuration })
        const jwe = await sealRelease(deps, a, proof(caller), { kind: 'vault-token', name: 'vault' }, new TextEncoder().encode(payload))
        return { subject: att.jkt, body: { jwe, accessor: minted.accessor, leaseDuration: minted.leaseDuration }, detail: { role: grant.role, accessor: minted.accessor } }
      }),

    toolCredential: (caller, tool) =>
      run('tool-credential', tool, caller, async (a) => {
        const grant = a.grants.tools.find((t) => t.name === tool)
        if (!grant) throw new KeywardError('ERR_NOT_GRANTED', `the admitting policy grants no credential for tool ${tool}`)
        if (grant.kind === 'api-key') {
          const { version, value } = await readSecretValue(deps, grant.apiKeySecret)
          const jwe = await sealRelease(deps, a, proof(caller), { kind: 'tool-credential', name: tool }, value)
          return { subject: a.attestation.jkt, body: { tool, kind: 'api-key', expiresAt: null, jwe }, detail: { secretName: grant.apiKeySecret, version } }
        }
        // The issuer caps the lifetime (12 × tokenTtlSeconds) and keeps a rotated key published that long.
        const cred = await deps.tokens.signJwt(
          { scope: grant.scopes.join(' '), cnf: { jkt: a.attestation.jkt }, keyward_tool: tool, keyward_policy: a.attestation.policy },
          { audience: grant.audience, ttlSeconds: grant.ttlSeconds, subject: a.attestation.workload, typ: TOOL_CREDENTIAL_TYP },
        )
        const jwe = await sealRelease(deps, a, proof(caller), { kind: 'tool-credential', name: tool }, new TextEncoder().encode(cred.token))
        return {
          subject: a.attestation.jkt,
          body: { tool, kind: 'jwt', expiresAt: new Date(cred.expiresAt).toISOString(), jwe },
          detail: { audience: grant.audience, scopes: grant.scopes, jti: cred.jti },
        }
      }),
  }
}

export interface Released {
  subject: string
  body: ReleaseBody
  detail?: Record<string, unknown>
}

/**
 * Runs a release and audits its outcome: every release and every denial of an authenticated
 * caller (valid attestation token and DPoP proof) is chained into the audit with its reasons.
 * Refusals before authentication, and rate-limit refusals, are noise: counted and sampled in logs.
 */
function releaseAudited(
  deps: BrokerDeps,
  noise: Noise,
  kind: string,
  what: string,
  caller: ReleaseCaller,
  auth: () => Promise<Attested>,
  fn: (a: Attested) => Promise<Released>,
): Promise<ReleaseBody> {
  return inSpan('keyward.release', { 'keyward.release.kind': kind, 'keyward.release.name': what }, async () => {
    let attested: Attested | undefined
    try {
      attested = await auth()
      const r = await fn(attested)
      deps.metrics.releases.inc({ kind, result: 'allow' })
      if (kind === 'secret') deps.metrics.secretReleases.inc({ secret: what })
      await deps.audit({ type: `release:${kind}`, subject: r.subject, decision: 'allow', detail: { name: what, reqId: caller.reqId, ...(r.detail ?? {}) } })
      return r.body
    } catch (e) {
      const err = errorForAudit(e)
      deps.metrics.releases.inc({ kind, result: err.code })
      const authenticated = attested?.attestation.jkt ?? (isKeywardError(e) && typeof e.detail?.authenticatedJkt === 'string' ? e.detail.authenticatedJkt : undefined)
      if (authenticated === undefined || err.code === 'ERR_RATE_LIMITED') {
        noise(caller.route, err.code, caller.reqId)
        throw e
      }
      await deps.audit({
        type: `release:${kind}`,
        subject: authenticated,
        decision: 'deny',
        detail: { name: what, reqId: caller.reqId, ...(attested ? { workload: attested.attestation.workload } : {}), ...err },
      })
      throw e
    }
  })
}
