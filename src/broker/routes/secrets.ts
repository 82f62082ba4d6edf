// GET /v1/secrets/{name}: a granted secret as a JWE to the attested key (src/broker/release.ts).
import { Hono } from 'hono'
import { KeywardError } from '../../errors.js'
import * as S from '../../protocol/wire.js'
import type { Env, RouteContext } from '../http/context.js'
import { releaseCaller } from '../http/request.js'

export function secretsRoutes({ deps, noise, releases, dpopChallenge }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.use('*', dpopChallenge)
  r.get('/:name', async (c) => {
    const name = S.SecretName.safeParse(c.req.param('name'))
    if (!name.success) {
      noise(c.req.routePath, 'ERR_BAD_REQUEST', c.get('requestId'))
      throw new KeywardError('ERR_BAD_REQUEST', 'invalid secret name')
    }
    return c.json(await releases.secret(releaseCaller(c, deps.config), name.data))
  })
  return r
}
