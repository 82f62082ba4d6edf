// The broker's HTTP API v1 on Hono. createApp(deps) builds everything from injected
// dependencies; one onError maps KeywardError codes to statuses, and nothing else ever
// reaches the client (no stack traces, no internal messages).
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { requestId } from 'hono/request-id'
import { randomBytes } from 'node:crypto'
import type { JWK } from 'jose'
import { jwkThumbprint } from '../protocol/binding.js'
import { z } from 'zod'
import { KeywardError, httpStatus, isKeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import * as S from './schemas.js'
import { attest, errorForAudit, nonceId, recordWorkload } from './attest.js'
import type { MeasuredItems } from './measured-items.js'
import { createAuthenticator, readGrantedSecret, readSecretValue, sealRelease, type Attested } from './release.js'
import { toB64url } from '../util/bytes.js'
import { buildOpenApi } from './openapi.js'
import { adminRoutes, createAdminAuth } from './admin.js'
import { tpmRoutes } from './tpm-registration.js'
import { uiRoutes } from './routes/ui.js'
import { dpopChallenge, dpopNonces, publicRequestUrl, verifyDpopProof } from './dpop.js'
import { TOOL_CREDENTIAL_TYP } from './tokens.js'
import { clientAddress, createNoiseRecorder, createRateLimiter, enforceCap } from './abuse.js'

type Env = { Variables: { requestId: string } }

async function jsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const ct = c.req.header('content-type') ?? ''
  if (!ct.toLowerCase().startsWith('application/json')) {
    throw new KeywardError('ERR_UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json')
  }
  let raw: unknown
  try {
    raw = await c.req.json()
  } catch {
    throw new KeywardError('ERR_BAD_REQUEST', 'body is not valid JSON')
  }
  const r = schema.safeParse(raw)
  if (!r.success) {
    const i = r.error.issues[0]!
    throw new KeywardError('ERR_BAD_REQUEST', `invalid request at ${i.path.join('.') || '(body)'}: ${i.message}`)
  }
  return r.data
}

export function createApp(deps: BrokerDeps): Hono<Env> {
  const app = new Hono<Env>()
  const log = deps.logger
  const authenticate = createAuthenticator(deps)
  const requireAdmin = createAdminAuth(deps)
  const noise = createNoiseRecorder(deps)
  const perAddress = createRateLimiter(deps.config.limits.perAddress, deps.clock, 'from this address')
  const perWorkload = createRateLimiter(deps.config.limits.perWorkload, deps.clock, 'for this attested key')

  app.use('*', requestId({ limitLength: 64 }))
  app.use('*', async (c, next) => {
    const start = performance.now()
    await next()
    const route = c.req.routePath
    const dur = (performance.now() - start) / 1000
    deps.metrics.httpDuration.observe({ method: c.req.method, route, status: String(c.res.status) }, dur)
    log.info({ reqId: c.get('requestId'), method: c.req.method, route, status: c.res.status, ms: Math.round(dur * 1000) }, 'request')
  })
  app.use(
    '*',
    bodyLimit({
      maxSize: deps.config.maxBodyBytes,
      onError: () => {
        throw new KeywardError('ERR_BODY_TOO_LARGE', `request body exceeds ${deps.config.maxBodyBytes} bytes`)
      },
    }),
  )

  app.use('/v1/*', async (c, next) => {
    try {
      perAddress.take(clientAddress(c))
    } catch (e) {
      noise('/v1/*', 'ERR_RATE_LIMITED', c.get('requestId'))
      throw e
    }
    await next()
  })

  app.onError((err, c) => {
    const e = isKeywardError(err) ? err : new KeywardError('ERR_INTERNAL', 'internal error')
    const retryAfter = e.detail?.retryAfterSeconds
    if (typeof retryAfter === 'number') c.header('Retry-After', String(retryAfter))
    if (!isKeywardError(err) || httpStatus(e) >= 500) {
      log.error({ reqId: c.get('requestId'), code: e.code, err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'request failed')
    }
    const failures = e.detail?.failures
    return c.json({ error: { code: e.code, message: e.message, ...(Array.isArray(failures) ? { failures } : {}) } }, httpStatus(e) as 400)
  })
  app.notFound(() => {
    throw new KeywardError('ERR_NOT_FOUND', 'no such endpoint')
  })

  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', async (c) => {
    try {
      await deps.store.listSigningKeys()
      return c.json({ status: 'ready' })
    } catch (e) {
      throw new KeywardError('ERR_STORE_UNAVAILABLE', 'store unavailable', { cause: e })
    }
  })
  app.get('/metrics', async (c) => {
    c.header('content-type', deps.metrics.registry.contentType)
    return c.body(await deps.metrics.registry.metrics())
  })
  app.get('/openapi.json', (c) => c.json(buildOpenApi()))
  app.get('/.well-known/jwks.json', async (c) => {
    c.header('cache-control', 'max-age=60')
    return c.json(await deps.tokens.jwks())
  })

  app.post('/v1/challenge', async (c) => {
    const nonce = randomBytes(32)
    const now = deps.clock().getTime()
    try {
      await enforceCap(() => deps.store.countNonces(), () => deps.store.pruneNonces(now), deps.config.limits.maxOutstandingNonces, 'challenges', deps.config.nonceTtlSeconds)
    } catch (e) {
      noise(c.req.routePath, 'ERR_TOO_MANY_PENDING', c.get('requestId'))
      throw e
    }
    const expiresAt = now + deps.config.nonceTtlSeconds * 1000
    await deps.store.insertNonce({ id: nonceId(nonce), createdAt: now, expiresAt })
    return c.json({ nonce: toB64url(nonce), expiresAt: new Date(expiresAt).toISOString() })
  })

  // Passport model: the workload attests itself and receives its attestation result.
  app.post('/v1/attest', async (c) => {
    const req = await jsonBody(c, S.AttestRequest)
    if (req.audience !== undefined && !deps.config.extraAudiences.includes(req.audience)) {
      throw new KeywardError('ERR_BAD_REQUEST', 'audience is not one this broker issues tokens for')
    }
    const possession = await attestPossession(deps, c, req)
    try {
      return c.json(await attestAndAudit(deps, req, 'attest', c.get('requestId'), noise, req.audience, possession))
    } catch (e) {
      // The workload caller is not authenticated: by default it learns that, and how many, conditions failed, not which.
      if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED' && deps.config.denialDetail === 'summary') {
        const failed = Array.isArray(e.detail?.failures) ? e.detail.failures.length : 0
        throw new KeywardError('ERR_POLICY_DENIED', `policy denied the attestation: ${failed} condition(s) failed (details are in the audit)`, { detail: { failed } })
      }
      throw e
    }
  })

  // Background-check model (RFC 9334): a relying party (a Vault auth plugin) submits its client's evidence.
  app.post('/v1/appraise', async (c) => {
    const rp = await requireAdmin(c.req.header('authorization'), 'relying-party')
    const req = await jsonBody(c, S.AppraiseRequest)
    try {
      const out = await attestAndAudit(deps, req, `appraise:${rp}`, c.get('requestId'), noise, rp)
      return c.json({ decision: 'allow', ...out })
    } catch (e) {
      if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED') {
        return c.json({ decision: 'deny', error: { code: e.code, message: e.message, failures: e.detail?.failures ?? [] } }, 200)
      }
      throw e
    }
  })

  const nonces = dpopNonces(deps.store, deps.config.nonceTtlSeconds * 1000, deps.clock)
  for (const p of ['/v1/secrets/*', '/v1/vault/token', '/v1/credentials/*']) app.use(p, dpopChallenge(nonces.issue))
  app.get('/v1/secrets/:name', async (c) => {
    const name = S.SecretName.safeParse(c.req.param('name'))
    if (!name.success) {
      noise(c.req.routePath, 'ERR_BAD_REQUEST', c.get('requestId'))
      throw new KeywardError('ERR_BAD_REQUEST', 'invalid secret name')
    }
    return releaseAudited(deps, 'secret', name.data, c, auth, noise, async (a) => {
      const { version, value } = await readGrantedSecret(deps, a, name.data)
      const jwe = await sealRelease(deps, a, c.req.header('dpop') ?? '', { kind: 'secret', name: name.data, version }, value)
      return { subject: a.attestation.jkt, body: { name: name.data, version, jwe } }
    })
  })

  app.post('/v1/vault/token', async (c) => {
    const body = await jsonBody(c, S.VaultTokenRequest)
    return releaseAudited(deps, 'vault-token', 'vault', c, auth, noise, async (a) => {
      const grant = body.role ? a.grants.vault.find((g) => g.role === body.role) : a.grants.vault[0]
      if (!grant) throw new KeywardError('ERR_NOT_GRANTED', body.role ? `the admitting policy does not grant Vault role ${body.role}` : 'the admitting policy grants no Vault role')
      if (!deps.vault) throw new KeywardError('ERR_CONFIG', 'no Vault is configured')
      const att = a.attestation
      const minted = await deps.vault.mintToken(
        { jti: att.jti, jkt: att.jkt, tee: att.tee, measurement: att.measurement, policy: att.policy, referenceIds: JSON.parse(att.referenceIds) as string[], workload: att.workload },
        { ...grant, ...(body.wrap ? { wrapTtlSeconds: 60 } : {}) },
      )
      const payload = JSON.stringify({ token: minted.token, wrapToken: minted.wrapToken, accessor: minted.accessor, leaseDuration: minted.leaseDuration })
      const jwe = await sealRelease(deps, a, c.req.header('dpop') ?? '', { kind: 'vault-token', name: 'vault' }, new TextEncoder().encode(payload))
      return { subject: att.jkt, body: { jwe, accessor: minted.accessor, leaseDuration: minted.leaseDuration }, detail: { role: grant.role, accessor: minted.accessor } }
    })
  })

  app.post('/v1/credentials/:tool', async (c) => {
    const parsed = S.ToolName.safeParse(c.req.param('tool'))
    if (!parsed.success) {
      noise(c.req.routePath, 'ERR_BAD_REQUEST', c.get('requestId'))
      throw new KeywardError('ERR_BAD_REQUEST', 'invalid tool name: 1–128 of [A-Za-z0-9._/:-]')
    }
    const tool = parsed.data
    return releaseAudited(deps, 'tool-credential', tool, c, auth, noise, async (a) => {
      const grant = a.grants.tools.find((t) => t.name === tool)
      if (!grant) throw new KeywardError('ERR_NOT_GRANTED', `the admitting policy grants no credential for tool ${tool}`)
      if (grant.kind === 'api-key') {
        const { version, value } = await readSecretValue(deps, grant.apiKeySecret)
        const jwe = await sealRelease(deps, a, c.req.header('dpop') ?? '', { kind: 'tool-credential', name: tool }, value)
        return { subject: a.attestation.jkt, body: { tool, kind: 'api-key', expiresAt: null, jwe }, detail: { secretName: grant.apiKeySecret, version } }
      }
      // The issuer caps the lifetime (12 × tokenTtlSeconds) and keeps a rotated key published that long.
      const ttl = grant.ttlSeconds
      const cred = await deps.tokens.signJwt(
        { scope: grant.scopes.join(' '), cnf: { jkt: a.attestation.jkt }, keyward_tool: tool, keyward_policy: a.attestation.policy },
        { audience: grant.audience, ttlSeconds: ttl, subject: a.attestation.workload, typ: TOOL_CREDENTIAL_TYP },
      )
      const jwe = await sealRelease(deps, a, c.req.header('dpop') ?? '', { kind: 'tool-credential', name: tool }, new TextEncoder().encode(cred.token))
      return { subject: a.attestation.jkt, body: { tool, kind: 'jwt', expiresAt: new Date(cred.expiresAt).toISOString(), jwe }, detail: { audience: grant.audience, scopes: grant.scopes, jti: cred.jti } }
    })
  })

  app.route('/v1/tpm', tpmRoutes(deps, jsonBody, noise))
  app.route('/v1/admin', adminRoutes(deps, requireAdmin, jsonBody))
  app.route('/ui', uiRoutes(deps))
  return app

  /** Authenticates a release request, then charges the attested key's bucket. */
  async function auth(c: Context<Env>): Promise<Attested> {
    const a = await authenticate(authInput(c, deps))
    perWorkload.take(a.attestation.jkt)
    return a
  }
}

function authInput(c: Context, deps: BrokerDeps) {
  return { authorization: c.req.header('authorization'), dpop: c.req.header('dpop'), method: c.req.method, url: publicRequestUrl(c, deps.config) }
}

/**
 * An optional DPoP proof on /v1/attest (over POST of this URL, `nonce` = the challenge nonce,
 * signed by the presented key) proves the caller holds the key; only then may a denial revoke
 * that key's Vault leases. A proof that is present must be valid.
 */
async function attestPossession(deps: BrokerDeps, c: Context<Env>, req: z.infer<typeof S.AttestRequest>): Promise<boolean> {
  const proof = c.req.header('dpop')
  if (proof === undefined) return false
  const jkt = await jwkThumbprint(req.key as JWK).catch(() => {
    throw new KeywardError('ERR_KEY_UNSUPPORTED', 'key is not a usable public JWK')
  })
  await verifyDpopProof({ proof, method: c.req.method, url: authInput(c, deps).url, nonce: req.nonce, jkt, now: deps.clock() }, (id, exp) => deps.store.useDpopProof(id, exp))
  return true
}

type Noise = ReturnType<typeof createNoiseRecorder>

/**
 * Audits an attestation once it has spent a challenge nonce (at most one row per issued
 * challenge, and challenges are capped and rate-limited); failures before that (undecodable
 * evidence, unknown tee, bad, unknown, expired or used nonce) are noise: counted, not audited.
 */
async function attestAndAudit(deps: BrokerDeps, req: z.infer<typeof S.AttestRequest>, via: string, reqId: string, noise: Noise, audience?: string, possession = false) {
  let nonceSpent = false
  try {
    const out = await attest(deps, req, { onNonceSpent: () => (nonceSpent = true), ...(audience === undefined ? {} : { audience }) })
    deps.metrics.attestations.inc({ tee: req.tee, result: 'allow' })
    await deps.audit({
      type: 'attestation',
      subject: out.jkt,
      decision: 'allow',
      detail: { via, reqId, tee: req.tee, workload: out.workload, policy: out.appraisal.policy, policyVersion: out.appraisal.policyVersion, measurement: out.claims.measurement, jti: out.jti, referenceIds: out.appraisal.referenceIds },
    })
    await recordWorkload(deps, req.tee, out.workload, 'allow', { measurement: out.claims.measurement, policy: out.appraisal.policy, items: out.items })
    return {
      token: out.token,
      expiresAt: new Date(out.expiresAt).toISOString(),
      policy: out.appraisal.policy,
      claims: { tee: out.claims.tee, measurement: out.claims.measurement, debug: out.claims.debug, workload: out.workload },
    }
  } catch (e) {
    const err = errorForAudit(e)
    deps.metrics.attestations.inc({ tee: req.tee, result: err.code })
    if (!nonceSpent) {
      noise('/v1/attest', err.code, reqId)
      throw e
    }
    const detail = isKeywardError(e) ? e.detail : undefined
    const jkt = await jwkThumbprint(req.key as JWK).catch(() => 'invalid-key')
    await deps.audit({ type: 'attestation', subject: jkt, decision: 'deny', detail: { via, reqId, tee: req.tee, ...err, ...(detail?.workload ? { workload: detail.workload } : {}), possession } })
    // detail.workload is set only when the evidence verified and the policy denied it.
    if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED' && typeof detail?.workload === 'string') {
      await recordWorkload(deps, req.tee, detail.workload, 'deny', { measurement: detail.measurement, policy: detail.policy as string, failures: detail.failures, items: detail.items as MeasuredItems })
      if (deps.vault) await revokeOnFailedReattestation(deps, jkt, detail.workload, possession, reqId)
    }
    throw e
  }
}

/**
 * A workload that fails re-attestation loses the Vault tokens it was given. Only its own, and only
 * on its own say: the request must prove possession of the key (a DPoP proof; the public key alone
 * is in every proof header) and the denied evidence must verify as the workload the leases were
 * minted for, since anyone may bind other evidence to a public key. Otherwise: audited, nothing revoked.
 */
async function revokeOnFailedReattestation(deps: BrokerDeps, jkt: string, workload: string, possession: boolean, reqId: string): Promise<void> {
  const leases = await deps.store.listLiveVaultLeases({ jkt })
  if (leases.length === 0) return
  if (!possession) {
    await deps.audit({ type: 'vault.token.revoke', subject: jkt, decision: 'deny', detail: { reqId, reason: 'denied attestation without proof of possession of the key: leases kept', leases: leases.length } })
    return
  }
  for (const lease of leases) {
    if ((await deps.store.getAttestation(lease.jti))?.workload === workload) {
      await deps.vault!.revokeFor({ jkt }, 'failed re-attestation').catch((err: unknown) => deps.logger.warn({ err: String(err) }, 'Vault revocation failed; leases stay live for a retry'))
      return
    }
  }
}

/**
 * Runs a release and audits its outcome: every release and every denial of an authenticated
 * caller (valid attestation token and DPoP proof) is chained into the audit with its reasons.
 * Refusals before authentication, and rate-limit refusals, are noise: counted and sampled in logs.
 */
async function releaseAudited(
  deps: BrokerDeps,
  kind: string,
  what: string,
  c: Context<Env>,
  auth: (c: Context<Env>) => Promise<Attested>,
  noise: Noise,
  fn: (a: Attested) => Promise<{ subject: string; body: Record<string, unknown>; detail?: Record<string, unknown> }>,
) {
  let caller: Attested | undefined
  try {
    caller = await auth(c)
    const r = await fn(caller)
    deps.metrics.releases.inc({ kind, result: 'allow' })
    await deps.audit({ type: `release:${kind}`, subject: r.subject, decision: 'allow', detail: { name: what, reqId: c.get('requestId'), ...(r.detail ?? {}) } })
    return c.json(r.body)
  } catch (e) {
    const err = errorForAudit(e)
    deps.metrics.releases.inc({ kind, result: err.code })
    const authenticated = caller?.attestation.jkt ?? (isKeywardError(e) && typeof e.detail?.authenticatedJkt === 'string' ? e.detail.authenticatedJkt : undefined)
    if (authenticated === undefined || err.code === 'ERR_RATE_LIMITED') {
      noise(c.req.routePath, err.code, c.get('requestId'))
      throw e
    }
    await deps.audit({ type: `release:${kind}`, subject: authenticated, decision: 'deny', detail: { name: what, reqId: c.get('requestId'), ...(caller ? { workload: caller.attestation.workload } : {}), ...err } })
    throw e
  }
}
