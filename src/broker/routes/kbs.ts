// HTTP of the Trustee KBS protocol (docs/trustee.md), mounted at /kbs/v0: cookies, the
// Authorization header, ErrorInformation bodies and the protocol's statuses. The protocol itself
// is src/broker/kbs/rcar.ts.
import { Hono, type Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { KeywardError, isKeywardError, type ErrorCode } from '../../errors.js'
import { httpStatus } from '../http/errors.js'
import { clientAddress } from '../http/request.js'
import type { Env, RouteContext } from '../http/context.js'
import { kbsAttest, kbsAuth, kbsResource } from '../kbs/rcar.js'

const COOKIE = 'kbs-session-id'
/** trustee kbs/src/error.rs: ErrorInformation.type is this prefix and the error's name. */
const ERROR_TYPE_PREFIX = 'https://github.com/confidential-containers/kbs/errors'

/**
 * The protocol's statuses (kbs_attestation_protocol.md §Resource Requests, §Error information):
 * 401 for everything of authentication and attestation, 403 for an authenticated caller the
 * policy does not grant the resource, 404 for a path or resource that does not exist.
 */
function kbsError(e: KeywardError): { status: number; type: string } {
  const code: ErrorCode = e.code
  if (code === 'ERR_NOT_GRANTED') return { status: 403, type: 'PolicyDeny' }
  if (code === 'ERR_NOT_FOUND') return { status: 404, type: 'InvalidRequestPath' }
  if (code === 'ERR_POLICY_DENIED') return { status: 401, type: 'PolicyDeny' }
  if (code === 'ERR_UNAUTHORIZED') return { status: 401, type: 'TokenNotFound' }
  if (code === 'ERR_TOKEN_INVALID') return { status: 401, type: 'TokenVerifierError' }
  if (code === 'ERR_BAD_REQUEST' || code === 'ERR_UNSUPPORTED_MEDIA_TYPE') return { status: 401, type: 'SerdeError' }
  const status = httpStatus(e)
  if (status === 413 || status === 429 || status >= 500) return { status, type: status >= 500 ? 'InternalError' : code === 'ERR_BODY_TOO_LARGE' ? 'SerdeError' : 'RateLimited' }
  return { status: 401, type: 'AttestationError' }
}

async function jsonOf(c: Context): Promise<unknown> {
  try {
    return await c.req.json()
  } catch {
    throw new KeywardError('ERR_BAD_REQUEST', 'body is not valid JSON')
  }
}

/** The per-address bucket for every KBS request, the per-key bucket for releases (as on /v1); refusals before authentication go to `noise`. */
export function kbsRoutes(ctx: RouteContext): Hono<Env> {
  const { deps, noise } = ctx
  const limits = { perAddress: ctx.perAddress, perWorkload: ctx.perWorkload }
  const app = new Hono<Env>()
  const secure = deps.config.tls !== undefined || (deps.config.publicUrl ?? '').startsWith('https:')
  const putCookie = (c: Context, value: string, expiresAt: number) =>
    setCookie(c, COOKIE, value, { path: '/kbs/v0', httpOnly: true, sameSite: 'Strict', secure, expires: new Date(expiresAt) })

  app.onError((err, c) => {
    const e = isKeywardError(err) ? err : new KeywardError('ERR_INTERNAL', 'internal error')
    const { status, type } = kbsError(e)
    if (e.detail?.audited !== true && status < 500) noise(c.req.routePath, e.code, c.get('requestId'))
    if (status >= 500) deps.logger.error({ reqId: c.get('requestId'), code: e.code, err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'KBS request failed')
    const retryAfter = e.detail?.retryAfterSeconds
    if (typeof retryAfter === 'number') c.header('Retry-After', String(retryAfter))
    const detail = status >= 500 && !isKeywardError(err) ? 'ERR_INTERNAL: internal error' : `${e.code}: ${e.message}`
    return c.json({ type: `${ERROR_TYPE_PREFIX}/${type}`, detail }, status as 401)
  })

  app.use('*', async (c, next) => {
    limits.perAddress.take(clientAddress(c))
    await next()
  })

  app.post('/auth', async (c) => {
    const out = await kbsAuth(deps, await jsonOf(c))
    putCookie(c, out.cookie, out.expiresAt)
    return c.json(out.challenge)
  })

  app.post('/attest', async (c) => {
    const cookie = getCookie(c, COOKIE)
    const out = await kbsAttest(deps, cookie, await jsonOf(c), c.get('requestId'))
    putCookie(c, cookie!, out.expiresAt)
    return c.json({ token: out.token })
  })

  app.get('/resource/*', async (c) => {
    // The raw path, still percent-encoded: kbsSecretName refuses '%', so nothing is decoded into a separator or a dot segment.
    const raw = new URL(c.req.url).pathname.replace(/^\/kbs\/v0\/resource\//, '')
    const bearer = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(c.req.header('authorization') ?? '')?.[1]
    const out = await kbsResource(deps, { cookie: getCookie(c, COOKIE), bearer, charge: (jkt) => limits.perWorkload.take(jkt) }, raw, c.get('requestId'))
    return c.json(out.jwe)
  })

  app.all('*', () => {
    throw new KeywardError('ERR_NOT_FOUND', 'no such KBS endpoint: keyward serves auth, attest and resource/<repository>/<type>/<tag>')
  })
  return app
}
