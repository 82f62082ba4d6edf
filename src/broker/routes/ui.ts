// The drift dashboard at /ui: server-rendered pages (./ui-pages.tsx) behind a login that
// exchanges an admin credential for a session cookie (../ui-sessions.ts). Cookie: HttpOnly,
// SameSite=Strict, Secure with the __Secure- prefix when the broker is addressed over https,
// path /ui. Every POST must come from this origin (Origin header) and, once logged in, carry
// the session's CSRF token. Pages send a strict Content-Security-Policy (no script at all, the
// stylesheet from this origin only), nosniff, no referrer to other origins, and are never cached.
import { Hono, type Context } from 'hono'
import { getCookie, setCookie, deleteCookie } from 'hono/cookie'
import { secureHeaders } from 'hono/secure-headers'
import { z } from 'zod'
import { KeywardError, isKeywardError } from '../../errors.js'
import type { BrokerDeps } from '../deps.js'
import { createRateLimiter } from '../abuse.js'
import type { Env, RouteContext } from '../http/context.js'
import { httpStatus } from '../http/errors.js'
import { assertAdminClientCertificate, clientAddress, publicRequestUrl } from '../http/request.js'
import { decideEnrolment } from '../enrolment.js'
import { workloadsView } from '../admin-services.js'
import { overview, pending, recentDenials, releasesOverTime, sortDriftedFirst, WINDOWS, type WindowName } from '../dashboard-data.js'
import { checkCsrf, closeUiSession, openUiSession, resolveUiSession, UI_SESSION_TTL_MS, type UiSession } from '../ui-sessions.js'
import * as P from './ui-pages.js'
import { UI_CSS } from './ui-style.js'

type UiEnv = { Variables: Env['Variables'] & { session: UiSession; cookie: string } }

const COOKIE = 'keyward_ui'
const LoginForm = z.object({ credential: z.string().min(1).max(512) })
const CsrfForm = z.object({ csrf: z.string().max(128).optional() })
const AkName = z.string().regex(/^[0-9a-f]{8,140}$/)

const isHttps = (c: Context, deps: BrokerDeps): boolean => new URL(publicRequestUrl(c, deps.config)).protocol === 'https:'
const cookiePrefix = (c: Context, deps: BrokerDeps) => (isHttps(c, deps) ? ('secure' as const) : undefined)
const windowOf = (c: Context): WindowName => {
  const w = c.req.query('window')
  return w !== undefined && w in WINDOWS ? (w as WindowName) : '24h'
}

export function uiRoutes(ctx: RouteContext): Hono<UiEnv> {
  const { deps, noise, requireCredential: requireAdmin } = ctx
  const r = new Hono<UiEnv>()
  const logins = createRateLimiter({ ratePerSecond: 1, burst: 10 }, deps.clock, 'login attempts from this address')

  r.use(
    '*',
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      // same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on the dashboard's own form POSTs.
      referrerPolicy: 'same-origin',
      xFrameOptions: 'DENY',
      strictTransportSecurity: false,
    }),
  )
  r.use('*', async (c, next) => {
    // The overview is /ui; hono routes /ui/ apart from it.
    if (c.req.path === '/ui/') return c.redirect('/ui', 301)
    await next()
    if (!c.res.headers.has('cache-control')) c.header('cache-control', 'no-store')
  })
  r.onError((err, c) => {
    const e = isKeywardError(err) ? err : new KeywardError('ERR_INTERNAL', 'internal error')
    if (!isKeywardError(err)) deps.logger.error({ reqId: c.get('requestId'), err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'dashboard request failed')
    const session = c.get('session') as UiSession | undefined
    return c.html(P.htmlDocument(P.ErrorPage({ code: e.code, message: e.message, ...(session ? { session } : {}) })), httpStatus(e))
  })

  r.get('/static/ui.css', (c) => {
    c.header('content-type', 'text/css; charset=utf-8')
    c.header('cache-control', 'max-age=300')
    return c.body(UI_CSS)
  })

  // With tls.clientCa the dashboard, like the admin API, also requires a client certificate.
  r.use('*', async (c, next) => {
    assertAdminClientCertificate(c, deps.config)
    await next()
  })
  // Every POST comes from a page of this origin (form-action 'self' and SameSite=Strict are the browser's half).
  r.use('*', async (c, next) => {
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin')
      if (origin === undefined || origin !== new URL(publicRequestUrl(c, deps.config)).origin) {
        throw new KeywardError('ERR_FORBIDDEN', 'cross-origin form submission refused')
      }
      if (!(c.req.header('content-type') ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
        throw new KeywardError('ERR_UNSUPPORTED_MEDIA_TYPE', 'forms are application/x-www-form-urlencoded')
      }
    }
    await next()
  })

  r.get('/login', (c) => c.html(P.htmlDocument(P.LoginPage({}))))
  r.post('/login', async (c) => {
    logins.take(clientAddress(c))
    const form = LoginForm.safeParse(await c.req.parseBody())
    try {
      if (!form.success) throw new KeywardError('ERR_UNAUTHORIZED', 'admin credential required')
      const { cookie } = await openUiSession(deps, requireAdmin, form.data.credential)
      setCookie(c, COOKIE, cookie, { path: '/ui', httpOnly: true, sameSite: 'Strict', secure: isHttps(c, deps), maxAge: UI_SESSION_TTL_MS / 1000, ...(cookiePrefix(c, deps) ? { prefix: 'secure' } : {}) })
      return c.redirect('/ui', 303)
    } catch (e) {
      if (!isKeywardError(e) || e.code !== 'ERR_UNAUTHORIZED') throw e
      // A failed login is unauthenticated noise: counted and sampled in the log, not audited.
      noise('/ui/login', e.code, c.get('requestId'))
      return c.html(P.htmlDocument(P.LoginPage({ error: 'That is not a live admin credential.' })), 401)
    }
  })

  // Everything below needs a live session: pages redirect to the login form, POSTs are refused.
  r.use('*', async (c, next) => {
    const cookie = getCookie(c, COOKIE, cookiePrefix(c, deps))
    const session = await resolveUiSession(deps, cookie)
    if (!session || cookie === undefined) {
      if (c.req.method === 'GET') return c.redirect('/ui/login', 303)
      throw new KeywardError('ERR_UNAUTHORIZED', 'log in first')
    }
    c.set('session', session)
    c.set('cookie', cookie)
    if (c.req.method === 'POST') checkCsrf(session, CsrfForm.safeParse(await c.req.parseBody()).data?.csrf)
    await next()
  })

  r.post('/logout', async (c) => {
    await closeUiSession(deps, c.get('cookie'), c.get('session'))
    deleteCookie(c, COOKIE, { path: '/ui', secure: isHttps(c, deps), ...(cookiePrefix(c, deps) ? { prefix: 'secure' } : {}) })
    return c.redirect('/ui/login', 303)
  })
  r.post('/enrolments/:ak/:decision', async (c) => {
    const ak = AkName.safeParse(c.req.param('ak'))
    const decision = c.req.param('decision')
    if (!ak.success || (decision !== 'approve' && decision !== 'reject')) throw new KeywardError('ERR_BAD_REQUEST', 'no such enrolment decision')
    await decideEnrolment(deps, ak.data, decision, c.get('session').credentialId)
    return c.redirect('/ui/pending', 303)
  })

  r.get('/', async (c) => c.html(P.htmlDocument(P.OverviewPage({ o: await overview(deps), session: c.get('session') }))))
  r.get('/workloads', async (c) => c.html(P.htmlDocument(P.WorkloadsPage({ ws: sortDriftedFirst(await workloadsView(deps)), session: c.get('session') }))))
  r.get('/pending', async (c) => c.html(P.htmlDocument(P.PendingPage({ p: await pending(deps), session: c.get('session') }))))
  r.get('/denials', async (c) => c.html(P.htmlDocument(P.DenialsPage({ denials: await recentDenials(deps, windowOf(c)), window: windowOf(c), session: c.get('session') }))))
  r.get('/releases', async (c) => c.html(P.htmlDocument(P.ReleasesPage({ r: await releasesOverTime(deps, windowOf(c)), session: c.get('session') }))))
  r.get('/baselines', async (c) => c.html(P.htmlDocument(P.BaselinesPage({ ws: sortDriftedFirst(await workloadsView(deps)), session: c.get('session') }))))
  return r
}
