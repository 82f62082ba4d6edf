// Admin API for TPM enrolment (mounted under /v1/admin behind the admin credential):
// pending enrolments, enrolment tokens, the EK allow/deny list, AK revocation.
import { Hono, type Context } from 'hono'
import type { z } from 'zod'
import type { BrokerDeps } from './deps.js'
import * as S from './schemas.js'
import * as E from './enrolment.js'

type JsonBody = <T extends z.ZodType>(c: Context, schema: T) => Promise<z.infer<T>>

export function enrolmentAdminRoutes(deps: BrokerDeps, jsonBody: JsonBody): Hono<{ Variables: { admin: string } }> {
  const r = new Hono<{ Variables: { admin: string } }>()
  r.get('/enrolments', async (c) => c.json({ enrolments: await E.listPendingEnrolments(deps) }))
  r.post('/enrolments/tokens', async (c) => {
    const body = await jsonBody(c, S.EnrolmentTokenRequest)
    return c.json(await E.issueEnrolmentToken(deps, body.workload, body.ttlSeconds ?? E.DEFAULT_TOKEN_TTL_S, c.get('admin')), 201)
  })
  r.post('/enrolments/:ak/approve', async (c) => c.json(await E.decideEnrolment(deps, c.req.param('ak'), 'approve', c.get('admin'))))
  r.post('/enrolments/:ak/reject', async (c) => c.json(await E.decideEnrolment(deps, c.req.param('ak'), 'reject', c.get('admin'))))

  r.get('/eks', async (c) => c.json({ eks: await deps.store.listEkEntries() }))
  r.post('/eks', async (c) => {
    const body = await jsonBody(c, S.EkAllowRequest)
    return c.json(await E.allowEk(deps, body.ek, body.workload, c.get('admin'), body.note ?? null), 201)
  })
  r.delete('/eks/denied/:ek', async (c) => c.json({ removed: await E.undenyEk(deps, c.req.param('ek'), c.get('admin')) }))
  r.delete('/eks/:id', async (c) => {
    await E.removeEkEntry(deps, c.req.param('id'), c.get('admin'))
    return c.body(null, 204)
  })
  r.post('/aks/:name/revoke', async (c) => {
    const body = await jsonBody(c, S.RevokeAkRequest)
    return c.json(await E.revokeAk(deps, c.req.param('name'), { denyEk: body.denyEk === true }, c.get('admin')))
  })
  return r
}
