// The authorization server's flows without HTTP (docs/agents.md): RFC 9068 access tokens for an
// attested client (resource per RFC 8707, scope from the policy's OAuth grant for that resource,
// cnf.jkt per RFC 9449), their introspection (RFC 7662) and revocation (RFC 7009). Token state
// (jti, revocation) lives in the store, so every replica answers the same.
import { createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { KeywardError } from '../../errors.js'
import { ACCESS_TOKEN_TYP } from '../../protocol/oauth.js'
import type { OAuthGrant } from '../../policy/engine.js'
import type { BrokerDeps } from '../deps.js'
import type { AuthenticatedClient } from './client-auth.js'

export interface TokenRequest {
  grantType: string
  /** RFC 8707 resource: exactly one, an absolute URI without fragment. */
  resource: string | undefined
  /** RFC 6749 §3.3 space-delimited scopes; absent means every scope granted for the resource. */
  scope: string | undefined
}

export interface IssuedAccessToken {
  token: string
  jti: string
  expiresIn: number
  scope: string
  resource: string
}

/** The grant for a resource, compared as RFC 3986 normalised by URL (scheme and host case, default port). */
export function grantFor(grants: readonly OAuthGrant[], resource: string): OAuthGrant | undefined {
  let want: string
  try {
    want = new URL(resource).href
  } catch {
    return undefined
  }
  return grants.find((g) => new URL(g.resource).href === want)
}

/**
 * Issues an access token to an authenticated client whose DPoP proof the caller verified for
 * `client.jkt`. Refusals: ERR_GRANT_TYPE_UNSUPPORTED, ERR_BAD_REQUEST (resource missing or not a
 * URI), ERR_NOT_GRANTED (no grant for the resource: RFC 8707 invalid_target), ERR_SCOPE_INVALID.
 */
export async function issueAccessToken(deps: BrokerDeps, client: AuthenticatedClient, req: TokenRequest, issuer: string): Promise<IssuedAccessToken> {
  if (req.grantType !== 'client_credentials') throw new KeywardError('ERR_GRANT_TYPE_UNSUPPORTED', 'grant_type must be client_credentials')
  if (req.resource === undefined) throw new KeywardError('ERR_BAD_REQUEST', 'resource is required (RFC 8707): the URL of the MCP server or API')
  let url: URL
  try {
    url = new URL(req.resource)
  } catch {
    throw new KeywardError('ERR_BAD_REQUEST', 'resource must be an absolute URI')
  }
  if (url.hash !== '' || req.resource.includes('#')) throw new KeywardError('ERR_BAD_REQUEST', 'resource must not have a fragment')
  const grant = grantFor(client.grants.oauth, req.resource)
  if (!grant) throw new KeywardError('ERR_NOT_GRANTED', 'the admitting policy grants no access to this resource')
  const asked = req.scope === undefined ? grant.scopes : [...new Set(req.scope.split(' ').filter((s) => s !== ''))]
  const refused = asked.filter((s) => !grant.scopes.includes(s))
  if (refused.length > 0 || asked.length === 0) throw new KeywardError('ERR_SCOPE_INVALID', `scope not granted for this resource: ${refused.join(' ') || '(empty)'}`)
  const scope = asked.join(' ')
  // Never outlive the attestation the client authenticated with.
  const now = deps.clock().getTime()
  const ttl = Math.min(grant.ttlSeconds, Math.floor((client.attestation.expiresAt - now) / 1000))
  if (ttl <= 0) throw new KeywardError('ERR_CLIENT_INVALID', 'attestation expired: attest again')
  const signed = await deps.tokens.signJwt(
    { client_id: client.clientId, scope, cnf: { jkt: client.jkt } },
    { audience: grant.resource, issuer, subject: client.clientId, ttlSeconds: ttl, typ: ACCESS_TOKEN_TYP },
  )
  await deps.store.insertOAuthToken({
    jti: signed.jti,
    attestationJti: client.attestation.jti,
    clientId: client.clientId,
    jkt: client.jkt,
    resource: grant.resource,
    scope,
    issuedAt: now,
    expiresAt: signed.expiresAt,
    revokedAt: null,
  })
  return { token: signed.token, jti: signed.jti, expiresIn: Math.round((signed.expiresAt - now) / 1000), scope, resource: grant.resource }
}

/** An access token keyward signed, verified (signature, typ, issuer, expiry), or null. */
async function verifiedAccessToken(deps: BrokerDeps, token: string, issuer: string): Promise<JWTPayload | null> {
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(await deps.tokens.jwks()), {
      typ: ACCESS_TOKEN_TYP,
      issuer,
      algorithms: ['ES256'],
      currentDate: deps.clock(),
      requiredClaims: ['jti', 'exp', 'aud', 'client_id'],
    })
    return payload
  } catch {
    return null
  }
}

export type Introspection = { active: false } | ({ active: true; token_type: 'DPoP' } & JWTPayload)

/**
 * RFC 7662 §2.2: active only while the token verifies, is unrevoked and unexpired, and the
 * attestation it was issued on is live under its policy version with the grant still in it.
 * Anything else is `{ active: false }`, with no reason (§2.2: no detail about inactive tokens).
 */
export async function introspect(deps: BrokerDeps, token: string, issuer: string): Promise<Introspection> {
  const inactive = { active: false } as const
  const p = await verifiedAccessToken(deps, token, issuer)
  if (!p) return inactive
  const row = await deps.store.getOAuthToken(p.jti!)
  if (!row || row.revokedAt !== null || row.expiresAt <= deps.clock().getTime()) return inactive
  const att = await deps.store.getAttestation(row.attestationJti)
  if (!att || att.revokedAt !== null) return inactive
  const grants = await deps.appraiser.grantsFor(att.policy, att.policyVersion)
  const grant = grants ? grantFor(grants.oauth, row.resource) : undefined
  if (!grant || !row.scope.split(' ').every((s) => grant.scopes.includes(s))) return inactive
  const { iss, sub, aud, exp, iat, jti, client_id, scope, cnf } = p
  return { active: true, token_type: 'DPoP', iss, sub, aud, exp, iat, jti, client_id, scope, cnf }
}

/**
 * RFC 7009 §2.1: the client revokes a token issued to it. An invalid or unknown token is not an
 * error (§2.2); a token of another client is refused (ERR_FORBIDDEN). Returns the revoked jti.
 */
export async function revokeAccessToken(deps: BrokerDeps, client: AuthenticatedClient, token: string, issuer: string): Promise<string | null> {
  const p = await verifiedAccessToken(deps, token, issuer)
  if (!p) return null
  const row = await deps.store.getOAuthToken(p.jti!)
  if (!row) return null
  if (row.clientId !== client.clientId) throw new KeywardError('ERR_FORBIDDEN', 'the token was not issued to this client')
  await deps.store.revokeOAuthToken(row.jti, deps.clock().getTime())
  return row.jti
}
