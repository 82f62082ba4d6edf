// Admin API (/v1/admin/…) behind a bearer credential: `kw.<kind>.<name>.<secret>`, looked up by
// id and checked against its stored hash in constant time. Secret values are write-only.
import { Hono, type Context } from 'hono'
import type { z } from 'zod'
import { KeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import * as S from './schemas.js'
import * as A from './admin-services.js'
import { hashCredential, isLegacyHash, verifyCredential } from '../sealing/credentials.js'
import { fromB64 } from '../util/bytes.js'
import { revokeAk } from './enrolment.js'
import { enrolmentAdminRoutes } from './enrolment-routes.js'

type JsonBody = <T extends z.ZodType>(c: Context, schema: T) => Promise<z.infer<T>>
export type RequireCredential = (authorization: string | undefined, kind?: 'admin' | 'relying-party') => Promise<string>

/**
 * Returns a checker that resolves to the caller's credential id or throws ERR_UNAUTHORIZED.
 * Every well-formed attempt costs the same: one store read and one SHA-256, compared in constant
 * time whether the name is unknown, revoked or right. Nothing is cached, so a revocation holds
 * at once on every replica sharing the store.
 */
export function createAdminAuth(deps: BrokerDeps): RequireCredential {
  return async (authorization, kind = 'admin') => {
    const m = /^Bearer (kw\.(admin|rp)\.([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{20,}))$/.exec(authorization ?? '')
    const deny = () => new KeywardError('ERR_UNAUTHORIZED', `${kind} credential required`)
    if (!m) throw deny()
    const wantPrefix = kind === 'admin' ? 'admin' : 'rp'
    const id = `${wantPrefix}:${m[3]}`
    const row = await deps.store.getCredential(id)
    const ok = await verifyCredential(m[4]!, row?.hash)
    if (!ok || m[2] !== wantPrefix || !row || row.revokedAt !== null || row.kind !== kind) throw deny()
    if (isLegacyHash(row.hash)) await deps.store.rehashCredential(id, await hashCredential(m[4]!))
    return id
  }
}

/** With tls.clientCa, the admin API (and the dashboard) also require a client certificate from that CA (mTLS). */
export function assertAdminClientCertificate(deps: Pick<BrokerDeps, 'config'>, c: Context): void {
  if (!deps.config.tls?.clientCa) return
  const socket = (c.env as { incoming?: { socket?: { authorized?: boolean } } } | undefined)?.incoming?.socket
  if (socket?.authorized !== true) throw new KeywardError('ERR_UNAUTHORIZED', 'admin API requires a client certificate')
}

export function adminRoutes(deps: BrokerDeps, requireAdmin: RequireCredential, jsonBody: JsonBody): Hono {
  const r = new Hono<{ Variables: { admin: string } }>()
  r.use('*', async (c, next) => {
    assertAdminClientCertificate(deps, c)
    c.set('admin', await requireAdmin(c.req.header('authorization')))
    await next()
  })

  r.get('/secrets', async (c) => c.json({ secrets: await deps.store.listSecrets() }))
  r.put('/secrets/:name', async (c) => {
    const name = S.SecretName.safeParse(c.req.param('name'))
    if (!name.success) throw new KeywardError('ERR_BAD_REQUEST', 'invalid secret name')
    const version = await A.putSecret(deps, name.data, await jsonBody(c, S.PutSecretRequest), c.get('admin'))
    return c.json({ name: name.data, version }, 201)
  })
  r.delete('/secrets/:name', async (c) => {
    await A.removeSecret(deps, c.req.param('name'), c.get('admin'))
    return c.body(null, 204)
  })

  r.get('/policies', async (c) =>
    c.json({ policies: (await deps.store.getActivePolicies()).map((p) => ({ name: p.name, version: p.version, sha256: p.sha256, createdAt: new Date(p.createdAt).toISOString(), createdBy: p.createdBy })) }),
  )
  r.post('/policies', async (c) => c.json(await A.applyPolicy(deps, (await jsonBody(c, S.ApplyPolicyRequest)).source, c.get('admin')), 201))
  r.delete('/policies/:name', async (c) => {
    if (!(await deps.store.deactivatePolicy(c.req.param('name')))) throw new KeywardError('ERR_NOT_FOUND', 'no such policy')
    await deps.audit({ type: 'policy.deactivate', subject: c.req.param('name'), decision: 'info', detail: { by: c.get('admin') } })
    if (deps.vault) await deps.vault.revokeFor({ policy: c.req.param('name') }, 'policy deactivated')
    return c.body(null, 204)
  })

  r.get('/reference-values', async (c) => c.json({ referenceValues: await deps.store.listReferenceValues(c.req.query('set')) }))
  r.post('/reference-values', async (c) => c.json({ id: await A.addReferenceValue(deps, await jsonBody(c, S.ReferenceValueRequest), c.get('admin')) }, 201))
  r.delete('/reference-values/:id', async (c) => c.json(await A.revokeReferenceValue(deps, c.req.param('id'), c.get('admin'))))

  r.get('/aks', async (c) => c.json({ aks: await deps.store.listAks() }))
  r.post('/aks', async (c) => {
    const body = await jsonBody(c, S.PinAkRequest)
    return c.json(await A.pinAk(deps, body.workload, fromB64(body.ak) ?? new Uint8Array(0), c.get('admin')), 201)
  })
  r.delete('/aks/:name', async (c) => {
    await revokeAk(deps, c.req.param('name'), { denyEk: false }, c.get('admin'))
    return c.body(null, 204)
  })
  r.route('/', enrolmentAdminRoutes(deps, jsonBody))

  r.delete('/credentials/:kind/:name', async (c) => {
    const kind = c.req.param('kind')
    if (kind !== 'admin' && kind !== 'relying-party') throw new KeywardError('ERR_BAD_REQUEST', 'kind is admin or relying-party')
    await A.revokeCredential(deps, kind, c.req.param('name'), c.get('admin'))
    return c.body(null, 204)
  })

  r.get('/workloads', async (c) => c.json({ workloads: await A.workloadsView(deps) }))
  r.get('/audit', async (c) => {
    const after = Number(c.req.query('after') ?? 0)
    const limit = Math.min(Number(c.req.query('limit') ?? 100), 1000)
    if (!Number.isInteger(after) || !Number.isInteger(limit) || after < 0 || limit < 1) throw new KeywardError('ERR_BAD_REQUEST', 'after and limit are integers')
    return c.json({ entries: await deps.store.listAudit({ afterSeq: after, limit }) })
  })
  r.get('/audit/verify', async (c) => c.json(await A.verifyAudit(deps)))
  r.post('/keys/rotate', async (c) => c.json({ kid: await A.rotateSigningKey(deps) }))
  r.post('/keys/rotate-kek', async (c) => c.json(await A.rotateKek(deps)))
  return r as unknown as Hono
}

export { workloadsView } from './admin-services.js'
