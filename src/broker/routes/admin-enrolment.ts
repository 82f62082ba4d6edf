// Admin API for TPM enrolment (mounted by routes/admin.ts, behind the admin credential):
// pending enrolments, enrolment tokens, the EK allow/deny list, AK revocation (src/broker/enrolment.ts).
import { Hono } from 'hono'
import * as S from '../../protocol/wire.js'
import * as E from '../enrolment.js'
import type { AdminEnv, RouteContext } from '../http/context.js'
import { jsonBody } from '../http/validate.js'

export function adminEnrolmentRoutes({ deps }: RouteContext): Hono<AdminEnv> {
  const r = new Hono<AdminEnv>()
  r.get('/enrolments', async (c) => c.json({ enrolments: await E.listPendingEnrolments(deps) }))
  r.post('/enrolments/tokens', jsonBody(S.EnrolmentTokenRequest), async (c) => {
    const body = c.req.valid('json')
    return c.json(await E.issueEnrolmentToken(deps, body.workload, body.ttlSeconds ?? E.DEFAULT_TOKEN_TTL_S, c.get('admin')), 201)
  })
  r.post('/enrolments/:ak/approve', async (c) => c.json(await E.decideEnrolment(deps, c.req.param('ak'), 'approve', c.get('admin'))))
  r.post('/enrolments/:ak/reject', async (c) => c.json(await E.decideEnrolment(deps, c.req.param('ak'), 'reject', c.get('admin'))))

  r.get('/eks', async (c) => c.json({ eks: await deps.store.listEkEntries() }))
  r.post('/eks', jsonBody(S.EkAllowRequest), async (c) => {
    const body = c.req.valid('json')
    return c.json(await E.allowEk(deps, body.ek, body.workload, c.get('admin'), body.note ?? null), 201)
  })
  r.delete('/eks/denied/:ek', async (c) => c.json({ removed: await E.undenyEk(deps, c.req.param('ek'), c.get('admin')) }))
  r.delete('/eks/:id', async (c) => {
    await E.removeEkEntry(deps, c.req.param('id'), c.get('admin'))
    return c.body(null, 204)
  })
  r.post('/aks/:name/revoke', jsonBody(S.RevokeAkRequest), async (c) => {
    const body = c.req.valid('json')
    return c.json(await E.revokeAk(deps, c.req.param('name'), { denyEk: body.denyEk === true }, c.get('admin')))
  })
  return r
}
