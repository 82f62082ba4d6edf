// POST /v1/tpm/register and /v1/tpm/activate: AK registration by credential activation
// (the flow is src/broker/tpm-registration.ts).
import { Hono } from 'hono'
import * as S from '../../protocol/wire.js'
import { activateTpmAk, registerTpmAk } from '../tpm-registration.js'
import type { Env, RouteContext } from '../http/context.js'
import { jsonBody } from '../http/validate.js'

export function tpmRoutes({ deps, noise }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.post('/register', jsonBody(S.TpmRegisterRequest), async (c) => c.json(await registerTpmAk(deps, c.req.valid('json'))))
  r.post('/activate', jsonBody(S.TpmActivateRequest), async (c) => c.json(await activateTpmAk(deps, c.req.valid('json'), { reqId: c.get('requestId'), noise })))
  return r
}
