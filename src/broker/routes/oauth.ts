// The OAuth 2.0 authorization server for attested workloads (docs/agents.md): RFC 8414 metadata,
// the Client Attester endpoint, the token endpoint (client_credentials, Attestation-Based Client
// Authentication + DPoP, RFC 8707 resource), introspection (RFC 7662) and revocation (RFC 7009).
// The flows are in src/broker/oauth/; this module reads requests and writes OAuth answers.
import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { z } from 'zod'
import { KeywardError, isKeywardError, type ErrorCode } from '../../errors.js'
import { httpStatus } from '../http/errors.js'
import { publicRequestUrl } from '../http/request.js'
import { formBody } from '../http/validate.js'
import type { Env, RouteContext } from '../http/context.js'
import {
  ATTEST_JWT_CLIENT_AUTH,
  CLIENT_ATTESTATION_HEADER,
  CLIENT_ATTESTATION_POP_HEADER,
  OAUTH_PATHS,
} from '../../protocol/oauth.js'
import type { BrokerDeps } from '../deps.js'
import { createAuthenticator } from '../release.js'
import { DPOP_ALGS, verifyDpopProof } from '../dpop.js'
import { errorForAudit } from '../attest.js'
import { authenticateClient, issueClientAttestation, type AuthenticatedClient } from '../oauth/client-auth.js'
import { introspect, issueAccessToken, revokeAccessToken } from '../oauth/access-tokens.js'

/** RFC 6749 §5.2, RFC 8707 §2, RFC 9449 §5 error codes for keyward's. */
const OAUTH_ERRORS: Partial<Record<ErrorCode, { error: string; status: number }>> = {
  ERR_BAD_REQUEST: { error: 'invalid_request', status: 400 },
  ERR_UNSUPPORTED_MEDIA_TYPE: { error: 'invalid_request', status: 400 },
  ERR_BODY_TOO_LARGE: { error: 'invalid_request', status: 413 },
  ERR_CLIENT_INVALID: { error: 'invalid_client', status: 401 },
  ERR_UNAUTHORIZED: { error: 'invalid_client', status: 401 },
  ERR_GRANT_TYPE_UNSUPPORTED: { error: 'unsupported_grant_type', status: 400 },
  ERR_SCOPE_INVALID: { error: 'invalid_scope', status: 400 },
  ERR_NOT_GRANTED: { error: 'invalid_target', status: 400 },
  ERR_DPOP_INVALID: { error: 'invalid_dpop_proof', status: 400 },
  ERR_DPOP_NONCE: { error: 'use_dpop_nonce', status: 400 },
  ERR_FORBIDDEN: { error: 'access_denied', status: 403 },
}

/** The token request (RFC 6749 §4.4.2, RFC 8707 §2.1): each parameter at most once. */
const TokenForm = z.object({
  grant_type: z.string().min(1).max(64),
  resource: z.string().min(1).max(2048).optional(),
  scope: z.string().max(2048).optional(),
  client_id: z.string().min(1).max(256).optional(),
})
const TokenOnlyForm = z.object({ token: z.string().min(1).max(16_384), token_type_hint: z.string().max(64).optional() })

/** The RFC 8414 issuer identifier: the configured publicUrl, else (loopback only) the origin the client addressed. */
export function oauthIssuer(c: Context, config: BrokerDeps['config']): string {
  if (config.publicUrl !== undefined) return config.publicUrl.replace(/\/$/, '')
  return new URL(publicRequestUrl(c, config)).origin
}

export function oauthRoutes(ctx: RouteContext): Hono<Env> {
  const { deps, noise, requireCredential } = ctx
  const r = new Hono<Env>()
  const authenticate = createAuthenticator(deps)
  const useProofId = (id: string, exp: number) => deps.store.useDpopProof(id, exp)

  r.onError((err, c) => {
    const e = isKeywardError(err) ? err : new KeywardError('ERR_INTERNAL', 'internal error')
    if (!isKeywardError(err) || httpStatus(e) >= 500) {
      deps.logger.error({ reqId: c.get('requestId'), code: e.code, err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'request failed')
    }
    const retryAfter = e.detail?.retryAfterSeconds
    if (typeof retryAfter === 'number') c.header('Retry-After', String(retryAfter))
    c.header('cache-control', 'no-store')
    // The Client Attester endpoint speaks keyward's error format (it is a release-like API).
    if (c.req.path === OAUTH_PATHS.clientAttestation) return c.json({ error: { code: e.code, message: e.message } }, httpStatus(e) as 400)
    const m = OAUTH_ERRORS[e.code] ?? { error: httpStatus(e) >= 500 ? 'server_error' : 'invalid_request', status: httpStatus(e) }
    return c.json({ error: m.error, error_description: e.message, keyward_code: e.code }, m.status as 400)
  })

  r.get(OAUTH_PATHS.metadata, (c) => {
    const issuer = oauthIssuer(c, deps.config)
    c.header('cache-control', 'max-age=60')
    return c.json({
      issuer,
      token_endpoint: `${issuer}${OAUTH_PATHS.token}`,
      introspection_endpoint: `${issuer}${OAUTH_PATHS.introspect}`,
      revocation_endpoint: `${issuer}${OAUTH_PATHS.revoke}`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      grant_types_supported: ['client_credentials'],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: [ATTEST_JWT_CLIENT_AUTH],
      revocation_endpoint_auth_methods_supported: [ATTEST_JWT_CLIENT_AUTH],
      client_attestation_signing_alg_values_supported: ['ES256'],
      client_attestation_pop_signing_alg_values_supported: DPOP_ALGS,
      dpop_signing_alg_values_supported: DPOP_ALGS,
      keyward_client_attestation_endpoint: `${issuer}${OAUTH_PATHS.clientAttestation}`,
    })
  })

  // The Client Attester: an attested workload (attestation token + DPoP proof) gets its Client Attestation.
  r.use(OAUTH_PATHS.clientAttestation, ctx.dpopChallenge)
  r.post(OAUTH_PATHS.clientAttestation, async (c) => {
    const reqId = c.get('requestId')
    let jkt: string | undefined
    try {
      const a = await authenticate({ authorization: c.req.header('authorization'), dpop: c.req.header('dpop'), method: c.req.method, url: publicRequestUrl(c, deps.config) })
      jkt = a.attestation.jkt
      const issued = await issueClientAttestation(deps, a, oauthIssuer(c, deps.config))
      await deps.audit({ type: 'oauth.client-attestation', subject: jkt, decision: 'allow', detail: { reqId, clientId: issued.clientId, attestation: a.attestation.jti, expiresAt: issued.expiresAt } })
      c.header('cache-control', 'no-store')
      return c.json({ client_attestation: issued.token, client_id: issued.clientId, expires_at: new Date(issued.expiresAt).toISOString() })
    } catch (e) {
      await auditRefusal(c, 'oauth.client-attestation', e, jkt)
      throw e
    }
  })

  r.post(OAUTH_PATHS.token, formBody(TokenForm), async (c) => {
    const reqId = c.get('requestId')
    const issuer = oauthIssuer(c, deps.config)
    const form = c.req.valid('form')
    let client: AuthenticatedClient | undefined
    try {
      client = await authenticateClient(deps, { attestation: c.req.header(CLIENT_ATTESTATION_HEADER), pop: c.req.header(CLIENT_ATTESTATION_POP_HEADER), clientId: form.client_id, issuer })
      // RFC 9449 §5: the proof over this request binds the token; it must be the attested key.
      const proof = c.req.header('dpop')
      if (!proof) throw new KeywardError('ERR_DPOP_INVALID', 'a DPoP proof by the attested key is required')
      await verifyDpopProof({ proof, method: c.req.method, url: publicRequestUrl(c, deps.config), jkt: client.jkt, now: deps.clock() }, useProofId)
      const issued = await issueAccessToken(deps, client, { grantType: form.grant_type, resource: form.resource, scope: form.scope }, issuer)
      await deps.audit({
        type: 'oauth.token',
        subject: client.jkt,
        decision: 'allow',
        detail: { reqId, clientId: client.clientId, resource: issued.resource, scope: issued.scope, jti: issued.jti, attestation: client.attestation.jti, policy: client.attestation.policy, expiresIn: issued.expiresIn },
      })
      c.header('cache-control', 'no-store')
      return c.json({ access_token: issued.token, token_type: 'DPoP', expires_in: issued.expiresIn, scope: issued.scope })
    } catch (e) {
      await auditRefusal(c, 'oauth.token', e, client?.jkt, client?.clientId)
      throw e
    }
  })

  // The credential is checked before the body, so an unauthenticated caller learns nothing of the form.
  const relyingParty: MiddlewareHandler<Env> = async (c, next) => {
    try {
      await requireCredential(c.req.header('authorization'), 'relying-party')
    } catch (e) {
      noise(OAUTH_PATHS.introspect, 'ERR_UNAUTHORIZED', c.get('requestId'))
      throw e
    }
    await next()
  }
  // RFC 7662: for resource servers, authenticated with a relying-party credential.
  r.post(OAUTH_PATHS.introspect, relyingParty, formBody(TokenOnlyForm), async (c) => {
    const form = c.req.valid('form')
    c.header('cache-control', 'no-store')
    return c.json(await introspect(deps, form.token, oauthIssuer(c, deps.config)))
  })

  // RFC 7009: the client revokes its own token, authenticated as at the token endpoint.
  r.post(OAUTH_PATHS.revoke, formBody(TokenOnlyForm), async (c) => {
    const reqId = c.get('requestId')
    const issuer = oauthIssuer(c, deps.config)
    const form = c.req.valid('form')
    let client: AuthenticatedClient | undefined
    try {
      client = await authenticateClient(deps, { attestation: c.req.header(CLIENT_ATTESTATION_HEADER), pop: c.req.header(CLIENT_ATTESTATION_POP_HEADER), issuer })
      const jti = await revokeAccessToken(deps, client, form.token, issuer)
      await deps.audit({ type: 'oauth.revoke', subject: client.jkt, decision: 'allow', detail: { reqId, clientId: client.clientId, jti } })
      return c.body(null, 200)
    } catch (e) {
      await auditRefusal(c, 'oauth.revoke', e, client?.jkt, client?.clientId)
      throw e
    }
  })

  return r

  /** Refusals of an authenticated caller are audited with their reasons; the rest is noise. */
  async function auditRefusal(c: Context<Env>, type: string, e: unknown, jkt?: string, clientId?: string): Promise<void> {
    const err = errorForAudit(e)
    const detail = isKeywardError(e) ? e.detail : undefined
    const subject = jkt ?? (typeof detail?.authenticatedJkt === 'string' ? detail.authenticatedJkt : undefined)
    if (subject === undefined || err.code === 'ERR_RATE_LIMITED') {
      noise(c.req.routePath, err.code, c.get('requestId'))
      return
    }
    const who = clientId ?? (typeof detail?.clientId === 'string' ? detail.clientId : undefined)
    await deps.audit({ type, subject, decision: 'deny', detail: { reqId: c.get('requestId'), ...(who ? { clientId: who } : {}), ...err } })
  }
}
