// POST /v1/appraise (background-check model, RFC 9334): a relying party with its credential
// submits its client's evidence; src/broker/attest.ts appraiseForRelyingParty runs and audits it.
// The credential is checked before the body is read.
import { Hono } from 'hono'
import { createMiddleware } from 'hono/factory'
import * as S from '../../protocol/wire.js'
import { appraiseForRelyingParty } from '../attest.js'
import type { Env, RouteContext } from '../http/context.js'
import { jsonBody } from '../http/validate.js'

type RpEnv = { Variables: Env['Variables'] & { relyingParty: string } }

export function appraiseRoutes({ deps, noise, requireCredential }: RouteContext): Hono<RpEnv> {
  const relyingParty = createMiddleware<RpEnv>(async (c, next) => {
    c.set('relyingParty', await requireCredential(c.req.header('authorization'), 'relying-party'))
    await next()
  })
  const r = new Hono<RpEnv>()
  r.post('/', relyingParty, jsonBody(S.AppraiseRequest), async (c) => c.json(await appraiseForRelyingParty(deps, c.req.valid('json'), c.get('relyingParty'), { reqId: c.get('requestId'), noise })))
  return r
}
