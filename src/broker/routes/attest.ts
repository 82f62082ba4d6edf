// POST /v1/attest (passport model): the flow, its audit and the denial summary are
// src/broker/attest.ts attestWorkload; this reads the body and the optional DPoP proof of possession.
import { Hono } from 'hono'
import * as S from '../../protocol/wire.js'
import { attestWorkload } from '../attest.js'
import type { Env, RouteContext } from '../http/context.js'
import { jsonBody } from '../http/validate.js'
import { publicRequestUrl } from '../http/request.js'

export function attestRoutes({ deps, noise }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.post('/', jsonBody(S.AttestRequest), async (c) => {
    const proof = c.req.header('dpop')
    const possessionProof = proof === undefined ? undefined : { proof, method: c.req.method, url: publicRequestUrl(c, deps.config) }
    return c.json(await attestWorkload(deps, c.req.valid('json'), { reqId: c.get('requestId'), noise, possessionProof }))
  })
  return r
}
