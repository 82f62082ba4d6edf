// Attestation-Based Client Authentication (draft-ietf-oauth-attestation-based-client-auth) with
// keyward as the Client Attester: a workload holding a live attestation (EAR token + DPoP) gets a
// Client Attestation JWT whose cnf.jwk is its attested key; at the token and revocation endpoints
// it presents that JWT with a Client Attestation PoP signed by the key. Nothing here knows HTTP:
// headers come in as strings, the caller maps errors to OAuth answers.
import { createHash } from 'node:crypto'
import { createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose'
import { KeywardError } from '../../errors.js'
import { jwkThumbprint } from '../../protocol/binding.js'
import { CLIENT_ATTESTATION_POP_TYP, CLIENT_ATTESTATION_TYP } from '../../protocol/oauth.js'
import type { AttestationRow } from '../../store/types.js'
import type { BrokerDeps, Grants } from '../deps.js'
import type { Attested } from '../release.js'
import { DPOP_ALGS, IAT_WINDOW_S } from '../dpop.js'

/** A Client Attestation lives as long as the attestation behind it, and never longer than this. */
export const CLIENT_ATTESTATION_MAX_TTL_S = 3600

/** The attested client, once its Client Attestation and PoP verified against a live attestation. */
export interface AuthenticatedClient {
  clientId: string
  /** RFC 7638 thumbprint of the attested key (cnf.jwk of the Client Attestation). */
  jkt: string
  attestation: AttestationRow
  grants: Grants
}

const invalidClient = (message: string, detail?: Record<string, unknown>): KeywardError =>
  new KeywardError('ERR_CLIENT_INVALID', message, detail ? { detail } : {})

/** The public members of a JWK; anything else (a private part) is dropped. */
function publicJwk(k: JWK): JWK {
  const pick = k.kty === 'RSA' ? ['kty', 'n', 'e'] : ['kty', 'crv', 'x', 'y']
  return Object.fromEntries(pick.filter((m) => k[m as keyof JWK] !== undefined).map((m) => [m, k[m as keyof JWK]])) as JWK
}

/**
 * Issues the Client Attestation JWT for a caller authenticated by its attestation token and DPoP
 * proof: `sub` = client_id = the attested workload, `cnf.jwk` = the attested key, expiring with
 * the attestation. `issuer` is the authorization server's RFC 8414 issuer identifier.
 */
export async function issueClientAttestation(deps: BrokerDeps, a: Attested, issuer: string): Promise<{ token: string; clientId: string; expiresAt: number }> {
  const now = deps.clock().getTime()
  const ttl = Math.min(CLIENT_ATTESTATION_MAX_TTL_S, Math.floor((a.attestation.expiresAt - now) / 1000))
  if (ttl <= 0) throw new KeywardError('ERR_TOKEN_INVALID', 'attestation expired')
  const signed = await deps.tokens.signJwt(
    { cnf: { jwk: publicJwk(a.key) }, keyward_attestation: a.attestation.jti },
    { audience: issuer, issuer, subject: a.attestation.workload, ttlSeconds: ttl, typ: CLIENT_ATTESTATION_TYP },
  )
  return { token: signed.token, clientId: a.attestation.workload, expiresAt: signed.expiresAt }
}

export interface ClientAuthInput {
  /** The OAuth-Client-Attestation header. */
  attestation: string | undefined
  /** The OAuth-Client-Attestation-PoP header. */
  pop: string | undefined
  /** The client_id form parameter, when sent: it must name the attested client. */
  clientId?: string | undefined
  issuer: string
}

/**
 * Verifies Client Attestation + PoP (draft §4–§5) and that the attestation behind them is still
 * live: not revoked (reference value revoked, AK revoked, failed re-attestation) and admitted by
 * the policy version as it stands now. Throws ERR_CLIENT_INVALID; once both JWTs verified, the
 * error's detail carries the client (authenticatedJkt, clientId) so that the refusal is audited.
 */
export async function authenticateClient(deps: BrokerDeps, input: ClientAuthInput): Promise<AuthenticatedClient> {
  if (!input.attestation || !input.pop) throw invalidClient('OAuth-Client-Attestation and OAuth-Client-Attestation-PoP headers are required')
  const now = deps.clock()
  let payload: JWTPayload
  try {
    ;({ payload } = await jwtVerify(input.attestation, createLocalJWKSet(await deps.tokens.jwks()), {
      typ: CLIENT_ATTESTATION_TYP,
      issuer: input.issuer,
      algorithms: ['ES256'],
      currentDate: now,
      requiredClaims: ['sub', 'exp', 'cnf'],
    }))
  } catch {
    throw invalidClient('client attestation invalid')
  }
  const jwk = (payload.cnf as { jwk?: unknown } | undefined)?.jwk as JWK | undefined
  const attJti = payload.keyward_attestation
  if (!jwk || typeof jwk !== 'object' || typeof attJti !== 'string' || typeof payload.sub !== 'string') throw invalidClient('client attestation invalid')
  const clientId = payload.sub
  let jkt: string
  try {
    jkt = await jwkThumbprint(jwk)
  } catch {
    throw invalidClient('client attestation invalid')
  }
  await verifyPop(deps, input.pop, jwk, jkt, clientId, input.issuer, now)
  // From here the caller holds a keyward-issued attestation and its key: refusals are audited.
  const who = { authenticatedJkt: jkt, clientId }
  if (input.clientId !== undefined && input.clientId !== clientId) throw invalidClient('client_id is not the attested client', who)
  const attestation = await deps.store.getAttestation(attJti)
  if (!attestation || attestation.jkt !== jkt || attestation.workload !== clientId) throw invalidClient('client attestation names no attestation of this key', who)
  if (attestation.revokedAt !== null) throw invalidClient('attestation revoked', who)
  if (attestation.expiresAt <= now.getTime()) throw invalidClient('attestation expired: attest again', who)
  const grants = await deps.appraiser.grantsFor(attestation.policy, attestation.policyVersion)
  if (!grants) throw invalidClient('the policy that admitted this attestation is no longer active: attest again', who)
  return { clientId, jkt, attestation, grants }
}

/** draft §4.3/§5.2: typ, signature by cnf.jwk, aud = the AS issuer, fresh iat, single-use jti. */
async function verifyPop(deps: BrokerDeps, pop: string, jwk: JWK, jkt: string, clientId: string, issuer: string, now: Date): Promise<void> {
  let alg: string | undefined
  try {
    alg = decodeProtectedHeader(pop).alg
  } catch {
    throw invalidClient('client attestation PoP invalid')
  }
  if (!alg || !DPOP_ALGS.includes(alg)) throw invalidClient('client attestation PoP alg not allowed')
  let p: JWTPayload
  try {
    const key = await importJWK(publicJwk(jwk), alg)
    ;({ payload: p } = await jwtVerify(pop, key, {
      typ: CLIENT_ATTESTATION_POP_TYP,
      audience: issuer,
      algorithms: [alg],
      currentDate: now,
      maxTokenAge: IAT_WINDOW_S,
      clockTolerance: IAT_WINDOW_S,
      requiredClaims: ['jti', 'iat', 'aud'],
    }))
  } catch {
    throw invalidClient('client attestation PoP invalid')
  }
  // Drafts up to -04 had iss = client_id in the PoP; later ones dropped it. If present, it must match.
  if (p.iss !== undefined && p.iss !== clientId) throw invalidClient('client attestation PoP iss is not the client')
  if (typeof p.jti !== 'string' || p.jti.length < 8 || p.jti.length > 256) throw invalidClient('client attestation PoP jti missing')
  const id = createHash('sha256').update(`keyward-client-attestation-pop:${jkt}:${p.jti}`).digest('hex')
  if (!(await deps.store.useDpopProof(id, ((p.iat as number) + 2 * IAT_WINDOW_S) * 1000))) throw invalidClient('client attestation PoP replayed')
}
