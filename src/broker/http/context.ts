// What every route module is built from: the broker's dependencies plus the per-app things that
// must exist once per app (rate-limit buckets, the noise sampler, DPoP server nonces), gathered in
// one typed object. createApp makes one RouteContext and hands it to every route factory, so a
// new module is `export function xRoutes(ctx: RouteContext): Hono<Env>` and one app.route line.
import type { MiddlewareHandler } from 'hono'
import type { BrokerDeps } from '../deps.js'
import { createAdmission, createNoiseRecorder, createRateLimiter, type Admission, type Noise, type RateLimiter } from '../abuse.js'
import { createAdminAuth, type RequireCredential } from '../admin.js'
import { createReleases, type Releases } from '../release.js'
import { dpopNonces } from '../dpop.js'
import { dpopChallenge } from './dpop-challenge.js'

/** The hono environment of every route: the request id (hono/request-id) is always set. */
export type Env = { Variables: { requestId: string } }
/** Routes behind the admin credential (routes/admin.ts) also know the caller's credential id. */
export type AdminEnv = { Variables: Env['Variables'] & { admin: string } }

export interface RouteContext {
  readonly deps: BrokerDeps
  /** Counts and samples refused unauthenticated requests; never audited (src/broker/abuse.ts). */
  readonly noise: Noise
  /** Token bucket per client address, taken by every /v1 request (app.ts). */
  readonly perAddress: RateLimiter
  /** Bounds the requests this process works on at once (app.ts; health and metrics apart). */
  readonly admission: Admission
  /** Token bucket per attested key, charged by every release (the /v1 flows and the KBS resource). */
  readonly perWorkload: RateLimiter
  /** Checks an `Authorization: Bearer kw.…` admin or relying-party credential; resolves to its id. */
  readonly requireCredential: RequireCredential
  /** The audited release flows (secret, Vault token, tool credential), charging the per-key bucket. */
  readonly releases: Releases
  /** WWW-Authenticate and DPoP-Nonce on a 401 from a DPoP-protected route. */
  readonly dpopChallenge: MiddlewareHandler
}

export function createRouteContext(deps: BrokerDeps): RouteContext {
  const noise = createNoiseRecorder(deps)
  const perWorkload = createRateLimiter(deps.config.limits.perWorkload, deps.clock, 'for this attested key')
  const nonces = dpopNonces(deps.store, deps.config.nonceTtlSeconds * 1000, deps.clock)
  return {
    deps,
    noise,
    perAddress: createRateLimiter(deps.config.limits.perAddress, deps.clock, 'from this address'),
    admission: createAdmission({ maxInflight: deps.config.limits.maxInflightRequests, maxQueued: deps.config.limits.maxQueuedRequests, maxPerKey: deps.config.limits.maxInflightPerAddress }),
    perWorkload,
    requireCredential: createAdminAuth(deps),
    releases: createReleases(deps, { noise, perWorkload }),
    dpopChallenge: dpopChallenge(nonces.issue),
  }
}
