// Admin API (/v1/admin/…) behind an admin credential (src/broker/admin.ts), and with tls.clientCa
// also a client certificate. The operations themselves are admin-services.ts and enrolment.ts,
// shared with the `keyward` CLI; these handlers only read the request and answer. Secret values
// are write-only.
import { Hono } from 'hono'
import { KeywardError } from '../../errors.js'
import * as S from '../../protocol/wire.js'
import * as A from '../admin-services.js'
import { fromB64 } from '../../util/bytes.js'
import { revokeAk } from '../enrolment.js'
import type { AdminEnv, RouteContext } from '../http/context.js'
import { jsonBody } from '../http/validate.js'
import { assertAdminClientCertificate } from '../http/request.js'
import { adminEnrolmentRoutes } from './admin-enrolment.js'

export function adminRoutes(ctx: RouteContext): Hono<AdminEnv> {
  const { deps } = ctx
  const r = new Hono<AdminEnv>()
  r.use('*', async (c, next) => {
    assertAdminClientCertificate(c, deps.config)
    c.set('admin', await ctx.requireCredential(c.req.header('authorization')))
    await next()
  })

  r.get('/secrets', async (c) => c.json({ secrets: await deps.store.listSecrets() }))
  r.put('/secrets/:name', jsonBody(S.PutSecretRequest), async (c) => {
    const name = S.SecretName.safeParse(c.req.param('name'))
    if (!name.success) throw new KeywardError('ERR_BAD_REQUEST', 'invalid secret name')
    const version = await A.putSecret(deps, name.data, c.req.valid('json'), c.get('admin'))
    return c.json({ name: name.data, version }, 201)
  })
  r.delete('/secrets/:name', async (c) => {
    await A.removeSecret(deps, c.req.param('name'), c.get('admin'))
    return c.body(null, 204)
  })

  r.get('/policies', async (c) =>
    c.json({
      policies: (await deps.store.getActivePolicies()).map((p) => ({ name: p.name, version: p.version, sha256: p.sha256, createdAt: new Date(p.createdAt).toISOString(), createdBy: p.createdBy })),
    }),
  )
  r.post('/policies', jsonBody(S.ApplyPolicyRequest), async (c) => c.json(await A.applyPolicy(deps, c.req.valid('json').source, c.get('admin')), 201))
  r.delete('/policies/:name', async (c) => {
    await A.deactivatePolicy(deps, c.req.param('name'), c.get('admin'))
    return c.body(null, 204)
  })

  r.get('/reference-values', async (c) => c.json({ referenceValues: await deps.store.listReferenceValues(c.req.query('set')) }))
  r.post('/reference-values', jsonBody(S.ReferenceValueRequest), async (c) => c.json({ id: await A.addReferenceValue(deps, c.req.valid('json'), c.get('admin')) }, 201))
  r.delete('/reference-values/:id', async (c) => c.json(await A.revokeReferenceValue(deps, c.req.param('id'), c.get('admin'))))

  r.get('/aks', async (c) => c.json({ aks: await deps.store.listAks() }))
  r.post('/aks', jsonBody(S.PinAkRequest), async (c) => {
    const body = c.req.valid('json')
    return c.json(await A.pinAk(deps, body.workload, fromB64(body.ak) ?? new Uint8Array(0), c.get('admin')), 201)
  })
  r.delete('/aks/:name', async (c) => {
    await revokeAk(deps, c.req.param('name'), { denyEk: false }, c.get('admin'))
    return c.body(null, 204)
  })
  r.route('/', adminEnrolmentRoutes(ctx))

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
  return r
}
