// POST /v1/credentials/{tool}: a short-lived tool credential (JWT) or a granted API key for an
// AI agent, sealed to the attested key (src/broker/release.ts).
import { Hono } from 'hono'
import { KeywardError } from '../../errors.js'
import * as S from '../../protocol/wire.js'
import type { Env, RouteContext } from '../http/context.js'
import { releaseCaller } from '../http/request.js'

export function credentialsRoutes({ deps, noise, releases, dpopChallenge }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.use('*', dpopChallenge)
  r.post('/:tool', async (c) => {
    const tool = S.ToolName.safeParse(c.req.param('tool'))
    if (!tool.success) {
      noise(c.req.routePath, 'ERR_BAD_REQUEST', c.get('requestId'))
      throw new KeywardError('ERR_BAD_REQUEST', 'invalid tool name: 1–128 of [A-Za-z0-9._/:-]')
    }
    return c.json(await releases.toolCredential(releaseCaller(c, deps.config), tool.data))
  })
  return r
}
