// POST /v1/vault/token: a Vault token bound to the attested key, sealed to it (src/broker/release.ts).
import { Hono } from 'hono'
import * as S from '../../protocol/wire.js'
import type { Env, RouteContext } from '../http/context.js'
import { jsonBody } from '../http/validate.js'
import { releaseCaller } from '../http/request.js'

export function vaultRoutes({ deps, releases, dpopChallenge }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.use('*', dpopChallenge)
  r.post('/token', jsonBody(S.VaultTokenRequest), async (c) => c.json(await releases.vaultToken(releaseCaller(c, deps.config), c.req.valid('json'))))
  return r
}
