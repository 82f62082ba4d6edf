// POST /v1/challenge: a fresh 32-byte nonce, single use, nonceTtlSeconds long. Outstanding
// challenges are capped (limits.maxOutstandingNonces); at the cap, expired and spent ones are pruned first.
import { Hono } from 'hono'
import { randomBytes } from 'node:crypto'
import { enforceCap } from '../abuse.js'
import { nonceId } from '../attest.js'
import { toB64url } from '../../util/bytes.js'
import type { Env, RouteContext } from '../http/context.js'

export function challengeRoutes({ deps, noise }: RouteContext): Hono<Env> {
  const r = new Hono<Env>()
  r.post('/', async (c) => {
    const nonce = randomBytes(32)
    const now = deps.clock().getTime()
    try {
      await enforceCap(
        () => deps.store.countNonces(),
        () => deps.store.pruneSpentNonces(now),
        deps.config.limits.maxOutstandingNonces,
        'challenges',
        deps.config.nonceTtlSeconds,
      )
    } catch (e) {
      noise(c.req.routePath, 'ERR_TOO_MANY_PENDING', c.get('requestId'))
      throw e
    }
    const expiresAt = now + deps.config.nonceTtlSeconds * 1000
    await deps.store.insertNonce({ id: nonceId(nonce), createdAt: now, expiresAt })
    return c.json({ nonce: toB64url(nonce), expiresAt: new Date(expiresAt).toISOString() })
  })
  return r
}
