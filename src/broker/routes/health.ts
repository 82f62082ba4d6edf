// Liveness, readiness (the store answers) and Prometheus metrics; outside /v1, so no rate limit.
import { Hono } from 'hono'
import { KeywardError } from '../../errors.js'
import type { Env, RouteContext } from '../http/context.js'

export function healthRoutes({ deps }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.get('/healthz', (c) => c.json({ status: 'ok' }))
  r.get('/readyz', async (c) => {
    try {
      await deps.store.ready() // a read, and on SQLite the free space writes (and audited releases) need
      return c.json({ status: 'ready' })
    } catch (e) {
      throw new KeywardError('ERR_STORE_UNAVAILABLE', 'store unavailable', { cause: e })
    }
  })
  r.get('/metrics', async (c) => {
    c.header('content-type', deps.metrics.registry.contentType)
    return c.body(await deps.metrics.exposition())
  })
  return r
}
