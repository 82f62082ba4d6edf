// The broker's HTTP API v1 on Hono: composition only. createApp(deps) adds the request id, the
// access log and metrics, admission (a bound on requests in flight), the body limit, the
// per-address rate limit on /v1, the one error handler (src/broker/http/errors.ts maps codes to
// statuses; nothing else reaches the client), and mounts one route module per resource. A route
// module is a factory taking the RouteContext (src/broker/http/context.ts) and returning a
// Hono<Env> sub-app: adding one is one line below.
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { requestId } from 'hono/request-id'
import { KeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import { createRouteContext, type Env } from './http/context.js'
import { errorHandler, notFound } from './http/errors.js'
import { clientAddress } from './http/request.js'
import { healthRoutes } from './routes/health.js'
import { discoveryRoutes } from './routes/discovery.js'
import { challengeRoutes } from './routes/challenge.js'
import { attestRoutes } from './routes/attest.js'
import { appraiseRoutes } from './routes/appraise.js'
import { secretsRoutes } from './routes/secrets.js'
import { vaultRoutes } from './routes/vault.js'
import { credentialsRoutes } from './routes/credentials.js'
import { tpmRoutes } from './routes/tpm.js'
import { adminRoutes } from './routes/admin.js'
import { uiRoutes } from './routes/ui.js'
import { oauthRoutes } from './routes/oauth.js'
import { kbsRoutes } from './routes/kbs.js'
import { spiffeRoutes } from './routes/spiffe.js'

export function createApp(deps: BrokerDeps): Hono<Env> {
  const app = new Hono<Env>()
  const ctx = createRouteContext(deps)

  app.use('*', requestId({ limitLength: 64 }))
  app.use('*', async (c, next) => {
    const start = performance.now()
    await next()
    const route = c.req.routePath
    const dur = (performance.now() - start) / 1000
    deps.metrics.httpDuration.observe({ method: c.req.method, route, status: String(c.res.status) }, dur)
    deps.logger.info({ reqId: c.get('requestId'), method: c.req.method, route, status: c.res.status, ms: Math.round(dur * 1000) }, 'request')
  })
  // Health and metrics answer even when the broker is at its limit: a probe must see a busy
  // broker as alive, not restart it. Everything else is admitted before its body is read.
  const unqueued = new Set(['/healthz', '/readyz', '/metrics'])
  deps.metrics.setAdmissionSource(() => ctx.admission.load())
  app.use('*', async (c, next) => {
    if (unqueued.has(c.req.path)) return next()
    let admitted = false
    try {
      await ctx.admission.run(clientAddress(c), () => {
        admitted = true
        return next()
      })
    } catch (e) {
      if (!admitted && e instanceof KeywardError) ctx.noise('*', e.code, c.get('requestId'))
      throw e
    }
  })
  const tooLarge = (): never => {
    throw new KeywardError('ERR_BODY_TOO_LARGE', `request body exceeds ${deps.config.maxBodyBytes} bytes`)
  }
  const countedBodyLimit = bodyLimit({ maxSize: deps.config.maxBodyBytes, onError: tooLarge })
  app.use('*', async (c, next) => {
    // A declared length is decided from the header alone, as bodyLimit itself decides it, but
    // without first touching `c.req.raw.body`: on the Node adapter that builds a WHATWG Request
    // and a web stream for every request, and the route then reads its body through them (in
    // the e2e bench, about a tenth of the allocations). Node's parser reads exactly
    // Content-Length bytes and refuses a request that also has Transfer-Encoding. A chunked
    // body is counted as it streams, by bodyLimit.
    const declared = c.req.header('content-length')
    if (declared !== undefined && /^\d{1,15}$/.test(declared) && c.req.header('transfer-encoding') === undefined) return Number(declared) > deps.config.maxBodyBytes ? tooLarge() : next()
    return countedBodyLimit(c, next)
  })
  app.use('/v1/*', async (c, next) => {
    try {
      ctx.perAddress.take(clientAddress(c))
    } catch (e) {
      ctx.noise('/v1/*', 'ERR_RATE_LIMITED', c.get('requestId'))
      throw e
    }
    await next()
  })
  app.onError(errorHandler(deps.logger))
  app.notFound(notFound)

  app.route('/', healthRoutes(ctx))
  app.route('/', discoveryRoutes(ctx))
  app.route('/v1/challenge', challengeRoutes(ctx))
  app.route('/v1/attest', attestRoutes(ctx))
  app.route('/v1/appraise', appraiseRoutes(ctx))
  app.route('/v1/secrets', secretsRoutes(ctx))
  app.route('/v1/vault', vaultRoutes(ctx))
  app.route('/v1/credentials', credentialsRoutes(ctx))
  app.route('/v1/tpm', tpmRoutes(ctx))
  app.route('/v1/admin', adminRoutes(ctx))
  app.route('/ui', uiRoutes(ctx))
  app.route('/', oauthRoutes(ctx))
  app.route('/kbs/v0', kbsRoutes(ctx))
  app.route('/v1/spiffe', spiffeRoutes(ctx))
  return app
}
