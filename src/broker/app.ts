// The broker's HTTP API v1 on Hono. createApp(deps) builds everything from injected
// dependencies; one onError maps KeywardError codes to statuses, and nothing else ever
// reaches the client (no stack traces, no internal messages).
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { requestId } from 'hono/request-id'
import { randomBytes } from 'node:crypto'
import type { JWK } from 'jose'
import { jwkThumbprint } from './binding.js'
import { z } from 'zod'
import { KeywardError, isKeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import * as S from './schemas.js'
import { attest, errorForAudit, nonceId, recordWorkload } from './attest.js'
import { createAuthenticator, encryptToKey, readGrantedSecret, readSecretValue } from './release.js'
import { toB64url } from '../util/bytes.js'
import { buildOpenApi } from './openapi.js'
import { adminRoutes, createAdminAuth } from './admin.js'
import { tpmRoutes } from './tpm-registration.js'

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

  app.onError((err, c) => {
    const e = isKeywardError(err) ? err : new KeywardError('ERR_INTERNAL', 'internal error')
    if (!isKeywardError(err) || e.status >= 500) {
      log.error({ reqId: c.get('requestId'), code: e.code, err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'request failed')
    }
    const failures = e.detail?.failures
    return c.json({ error: { code: e.code, message: e.message, ...(Array.isArray(failures) ? { failures } : {}) } }, e.status as 400)
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
    const expiresAt = now + deps.config.nonceTtlSeconds * 1000
    await deps.store.insertNonce({ id: nonceId(nonce), createdAt: now, expiresAt })
    return c.json({ nonce: toB64url(nonce), expiresAt: new Date(expiresAt).toISOString() })
  })

  // Passport model: the workload attests itself and receives its attestation result.
  app.post('/v1/attest', async (c) => {
    const req = await jsonBody(c, S.AttestRequest)
    return c.json(await attestAndAudit(deps, req, 'attest', c.get('requestId')))
  })

  // Background-check model (RFC 9334): a relying party (a Vault auth plugin) submits its client's evidence.
  app.post('/v1/appraise', async (c) => {
    const rp = await requireAdmin(c.req.header('authorization'), 'relying-party')
    const req = await jsonBody(c, S.AppraiseRequest)
    try {
      const out = await attestAndAudit(deps, req, `appraise:${rp}`, c.get('requestId'))
      return c.json({ decision: 'allow', ...out })
    } catch (e) {
      if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED') {
        return c.json({ decision: 'deny', error: { code: e.code, message: e.message, failures: e.detail?.failures ?? [] } }, 200)
      }
      throw e
    }
  })

  app.get('/v1/secrets/:name', async (c) => {
    const name = S.SecretName.safeParse(c.req.param('name'))
    if (!name.success) throw new KeywardError('ERR_BAD_REQUEST', 'invalid secret name')
    return releaseAudited(deps, 'secret', name.data, c, async () => {
      const a = await authenticate(authInput(c))
      const { version, value } = await readGrantedSecret(deps, a, name.data)
      const jwe = await encryptToKey(a.key, value, { kid: a.claims.cnf.jkt })
      return { subject: a.attestation.jkt, body: { name: name.data, version, jwe } }
    })
  })

  app.post('/v1/vault/token', async (c) => {
    const body = await jsonBody(c, S.VaultTokenRequest)
    return releaseAudited(deps, 'vault-token', 'vault', c, async () => {
      const a = await authenticate(authInput(c))
      const grant = body.role ? a.grants.vault.find((g) => g.role === body.role) : a.grants.vault[0]
      if (!grant) throw new KeywardError('ERR_NOT_GRANTED', body.role ? `the admitting policy does not grant Vault role ${body.role}` : 'the admitting policy grants no Vault role')
      if (!deps.vault) throw new KeywardError('ERR_CONFIG', 'no Vault is configured')
      const att = a.attestation
      const minted = await deps.vault.mintToken(
        { jti: att.jti, jkt: att.jkt, tee: att.tee, measurement: att.measurement, policy: att.policy, referenceIds: JSON.parse(att.referenceIds) as string[], workload: att.workload },
        { ...grant, ...(body.wrap ? { wrapTtlSeconds: 60 } : {}) },
      )
      const payload = JSON.stringify({ token: minted.token, wrapToken: minted.wrapToken, accessor: minted.accessor, leaseDuration: minted.leaseDuration })
      const jwe = await encryptToKey(a.key, new TextEncoder().encode(payload), { kid: att.jkt })
      return { subject: att.jkt, body: { jwe, accessor: minted.accessor, leaseDuration: minted.leaseDuration }, detail: { role: grant.role, accessor: minted.accessor } }
    })
  })

  app.post('/v1/credentials/:tool', async (c) => {
    const tool = c.req.param('tool')
    return releaseAudited(deps, 'tool-credential', tool, c, async () => {
      const a = await authenticate(authInput(c))
      const grant = a.grants.tools.find((t) => t.name === tool)
      if (!grant) throw new KeywardError('ERR_NOT_GRANTED', `the admitting policy grants no credential for tool ${tool}`)
      if (grant.kind === 'api-key') {
        const { version, value } = await readSecretValue(deps, grant.apiKeySecret)
        const jwe = await encryptToKey(a.key, value, { kid: a.attestation.jkt })
        return { subject: a.attestation.jkt, body: { tool, kind: 'api-key', expiresAt: null, jwe }, detail: { secretName: grant.apiKeySecret, version } }
      }
      // The issuer caps the lifetime (12 × tokenTtlSeconds) and keeps a rotated key published that long.
      const ttl = grant.ttlSeconds
      const cred = await deps.tokens.signJwt(
        { scope: grant.scopes.join(' '), cnf: { jkt: a.attestation.jkt }, keyward_tool: tool, keyward_policy: a.attestation.policy },
        { audience: grant.audience, ttlSeconds: ttl, subject: a.attestation.workload, typ: 'JWT' },
      )
      const jwe = await encryptToKey(a.key, new TextEncoder().encode(cred.token), { kid: a.attestation.jkt })
      return { subject: a.attestation.jkt, body: { tool, kind: 'jwt', expiresAt: new Date(cred.expiresAt).toISOString(), jwe }, detail: { audience: grant.audience, scopes: grant.scopes, jti: cred.jti } }
    })
  })

  app.route('/v1/tpm', tpmRoutes(deps, jsonBody))
  app.route('/v1/admin', adminRoutes(deps, requireAdmin, jsonBody))
  return app
}

function authInput(c: Context) {
  // The URL the client signed: behind a TLS-terminating proxy, X-Forwarded-Proto says https.
  const url = new URL(c.req.url)
  const proto = c.req.header('x-forwarded-proto')
  if (proto === 'https' || proto === 'http') url.protocol = `${proto}:`
  return { authorization: c.req.header('authorization'), dpop: c.req.header('dpop'), method: c.req.method, url: url.toString() }
}

async function attestAndAudit(deps: BrokerDeps, req: z.infer<typeof S.AttestRequest>, via: string, reqId: string) {
  try {
    const out = await attest(deps, req)
    deps.metrics.attestations.inc({ tee: req.tee, result: 'allow' })
    await deps.audit({
      type: 'attestation',
      subject: out.jkt,
      decision: 'allow',
      detail: { via, reqId, tee: req.tee, workload: out.workload, policy: out.appraisal.policy, policyVersion: out.appraisal.policyVersion, measurement: out.claims.measurement, jti: out.jti, referenceIds: out.appraisal.referenceIds },
    })
    await recordWorkload(deps, req.tee, out.workload, 'allow', { measurement: out.claims.measurement, policy: out.appraisal.policy })
    return {
      token: out.token,
      expiresAt: new Date(out.expiresAt).toISOString(),
      policy: out.appraisal.policy,
      claims: { tee: out.claims.tee, measurement: out.claims.measurement, debug: out.claims.debug, workload: out.workload },
    }
  } catch (e) {
    const err = errorForAudit(e)
    deps.metrics.attestations.inc({ tee: req.tee, result: err.code })
    const detail = isKeywardError(e) ? e.detail : undefined
    const jkt = await jwkThumbprint(req.key as JWK).catch(() => 'invalid-key')
    await deps.audit({ type: 'attestation', subject: jkt, decision: 'deny', detail: { via, reqId, tee: req.tee, ...err, ...(detail?.workload ? { workload: detail.workload } : {}) } })
    if (isKeywardError(e) && typeof detail?.workload === 'string') {
      await recordWorkload(deps, req.tee, detail.workload, 'deny', { measurement: detail.measurement, failures: detail.failures })
      if (deps.vault) await revokeOnFailedReattestation(deps, jkt, detail.workload)
    }
    throw e
  }
}

/**
 * A workload that fails re-attestation loses the Vault tokens it was given. Only its own: the
 * denied evidence must come from the workload the leases were minted for, since anyone may bind
 * evidence from another TEE to a public key and must not thereby revoke someone else's tokens.
 */
async function revokeOnFailedReattestation(deps: BrokerDeps, jkt: string, workload: string): Promise<void> {
  const leases = await deps.store.listLiveVaultLeases({ jkt })
  for (const lease of leases) {
    if ((await deps.store.getAttestation(lease.jti))?.workload === workload) {
      await deps.vault!.revokeFor({ jkt }, 'failed re-attestation').catch((err: unknown) => deps.logger.warn({ err: String(err) }, 'Vault revocation failed; leases stay live for a retry'))
      return
    }
  }
}

async function releaseAudited(
  deps: BrokerDeps,
  kind: string,
  what: string,
  c: Context<Env>,
  fn: () => Promise<{ subject: string; body: Record<string, unknown>; detail?: Record<string, unknown> }>,
) {
  try {
    const r = await fn()
    deps.metrics.releases.inc({ kind, result: 'allow' })
    await deps.audit({ type: `release:${kind}`, subject: r.subject, decision: 'allow', detail: { name: what, reqId: c.get('requestId'), ...(r.detail ?? {}) } })
    return c.json(r.body)
  } catch (e) {
    const err = errorForAudit(e)
    deps.metrics.releases.inc({ kind, result: err.code })
    await deps.audit({ type: `release:${kind}`, subject: 'unauthenticated-or-denied', decision: 'deny', detail: { name: what, reqId: c.get('requestId'), ...err } })
    throw e
  }
}
