// What clients and relying parties fetch to talk to the broker: the OpenAPI document (generated
// from src/protocol/wire.ts) and the token signing keys.
import { Hono } from 'hono'
import { buildOpenApi } from '../openapi.js'
import type { Env, RouteContext } from '../http/context.js'

export function discoveryRoutes({ deps }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.get('/openapi.json', (c) => c.json(buildOpenApi()))
  r.get('/.well-known/jwks.json', async (c) => {
    c.header('cache-control', 'max-age=60')
    return c.json(await deps.tokens.jwks())
  })
  return r
}
