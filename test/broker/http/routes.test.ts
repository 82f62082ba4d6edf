// The HTTP layer through app.request() over a real SQLite store (no socket): every route module
// answers validation failures with the stable codes and messages (wrong content type, malformed
// JSON, schema failure), unknown routes are ERR_NOT_FOUND, bodies over maxBodyBytes are
// ERR_BODY_TOO_LARGE, every error body has the wire shape, refusals of the body add nothing to
// the audit, and every ERR_ code keeps the HTTP status it had when the table lived in src/errors.ts.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Hono } from 'hono'
import pino from 'pino'
import { startHarness, type Harness } from '../harness.js'
import { createApp } from '../../../src/broker/app.js'
import { ERROR_STATUS, errorHandler, notFound } from '../../../src/broker/http/errors.js'
import type { Env } from '../../../src/broker/http/context.js'
import { ERROR_CODES, KeywardError, type ErrorCode } from '../../../src/errors.js'
import * as W from '../../../src/protocol/wire.js'
import * as A from '../../../src/broker/admin-services.js'
import { hashCredential } from '../../../src/sealing/credentials.js'

/** The table as it stood in src/errors.ts before it moved into the HTTP layer (main at ed32b9a). */
const STATUS_BEFORE_THE_MOVE: Record<ErrorCode, number> = {
  ERR_BAD_REQUEST: 400, ERR_USAGE: 400, ERR_BODY_TOO_LARGE: 413, ERR_UNSUPPORTED_MEDIA_TYPE: 415, ERR_UNKNOWN_TEE: 400, ERR_NOT_FOUND: 404, ERR_CONFLICT: 409,
  ERR_METHOD_NOT_ALLOWED: 405, ERR_RATE_LIMITED: 429, ERR_TOO_MANY_PENDING: 429, ERR_OVERLOADED: 503, ERR_UNAUTHORIZED: 401, ERR_FORBIDDEN: 403, ERR_TOKEN_INVALID: 401, ERR_DPOP_INVALID: 401,
  ERR_DPOP_NONCE: 401, ERR_KEY_UNSUPPORTED: 400, ERR_NONCE_UNKNOWN: 403, ERR_NONCE_EXPIRED: 403, ERR_NONCE_USED: 403, ERR_EVIDENCE_MALFORMED: 400, ERR_EVIDENCE_UNSUPPORTED: 400,
  ERR_SIGNATURE_INVALID: 403, ERR_CHAIN_INVALID: 403, ERR_CERT_EXPIRED: 403, ERR_CERT_REVOKED: 403, ERR_ROOT_UNTRUSTED: 403, ERR_NONCE_MISMATCH: 403, ERR_BINDING_MISMATCH: 403,
  ERR_PCR_DIGEST_MISMATCH: 403, ERR_EVENTLOG_REPLAY: 403, ERR_EVENTLOG_UNTRUSTED: 403, ERR_AK_ATTRIBUTES: 403, ERR_AK_UNTRUSTED: 403, ERR_EK_UNTRUSTED: 403, ERR_EK_PROFILE: 403,
  ERR_CREDENTIAL_ACTIVATION: 403, ERR_ENROLMENT_PENDING: 403, ERR_EK_DENIED: 403, ERR_TCB_MISMATCH: 403, ERR_CHIP_ID_MISMATCH: 403, ERR_DEBUG_ENCLAVE: 403, ERR_ALLOWLIST_REPLAY: 403,
  ERR_ALLOWLIST_UNTRUSTED: 403, ERR_ALLOWLIST_UNATTESTED: 403, ERR_POLICY_DENIED: 403, ERR_POLICY_INVALID: 400, ERR_NOT_GRANTED: 403, ERR_QUARANTINED: 403, ERR_REFERENCE_REVOKED: 403, ERR_SEAL: 500,
  ERR_UNSEAL: 500, ERR_STORE: 500, ERR_STORE_UNAVAILABLE: 503, ERR_AUDIT_CHAIN: 500, ERR_VAULT_UNAVAILABLE: 503, ERR_VAULT_SEALED: 503, ERR_VAULT_DENIED: 502, ERR_VAULT_ERROR: 502,
  ERR_UPSTREAM_UNAVAILABLE: 503, ERR_CONFIG: 500, ERR_COLLECTOR: 500, ERR_UNSAFE_PATH: 500, ERR_RELEASE_UNVERIFIED: 502, ERR_INTERNAL: 500,
  // added after the move, with the OAuth authorization server (RFC 6749 §5.2 statuses)
  ERR_CLIENT_INVALID: 401, ERR_GRANT_TYPE_UNSUPPORTED: 400, ERR_SCOPE_INVALID: 400,
}

type App = ReturnType<typeof createApp>
type Auth = 'none' | 'admin' | 'rp'
/** Every route that takes a JSON body, by module, with a body that fails its schema and the path the message names. */
const BODY_ROUTES: Array<{ module: string; method: string; path: string; auth: Auth; bad: unknown; at: string }> = [
  { module: 'attest', method: 'POST', path: '/v1/attest', auth: 'none', bad: { tee: 'sgx' }, at: 'tee' },
  { module: 'appraise', method: 'POST', path: '/v1/appraise', auth: 'rp', bad: { tee: 'nitro', nonce: 'x' }, at: 'nonce' },
  { module: 'vault', method: 'POST', path: '/v1/vault/token', auth: 'none', bad: { role: 7 }, at: 'role' },
  { module: 'tpm', method: 'POST', path: '/v1/tpm/register', auth: 'none', bad: { workload: 'Bad Name' }, at: 'workload' },
  { module: 'tpm', method: 'POST', path: '/v1/tpm/activate', auth: 'none', bad: { activationId: 'not-a-uuid', secret: 'AAAA' }, at: 'activationId' },
  { module: 'admin', method: 'PUT', path: '/v1/admin/secrets/x', auth: 'admin', bad: { text: 5 }, at: 'text' },
  { module: 'admin', method: 'POST', path: '/v1/admin/policies', auth: 'admin', bad: { source: '' }, at: 'source' },
  { module: 'admin', method: 'POST', path: '/v1/admin/reference-values', auth: 'admin', bad: { set: 'UPPER', tee: 'nitro', value: 'v', source: 's' }, at: 'set' },
  { module: 'admin', method: 'POST', path: '/v1/admin/aks', auth: 'admin', bad: { workload: 'w', ak: '%%' }, at: 'ak' },
  { module: 'admin-enrolment', method: 'POST', path: '/v1/admin/enrolments/tokens', auth: 'admin', bad: { workload: 'w', ttlSeconds: -1 }, at: 'ttlSeconds' },
  { module: 'admin-enrolment', method: 'POST', path: '/v1/admin/eks', auth: 'admin', bad: { workload: 'w', ek: 'short' }, at: 'ek' },
  { module: 'admin-enrolment', method: 'POST', path: '/v1/admin/aks/x/revoke', auth: 'admin', bad: { denyEk: 'yes' }, at: 'denyEk' },
]

describe('HTTP layer (app.request over SQLite)', () => {
  let h: Harness
  let app: App
  let rpToken: string
  const headers: Record<Auth, Record<string, string>> = { none: {}, admin: {}, rp: {} }

  beforeAll(async () => {
    h = await startHarness('sqlite')
    // This file sends a few hundred requests from one (in-process) address.
    app = createApp({ ...h.deps, config: { ...h.deps.config, limits: { ...h.deps.config.limits, perAddress: { ratePerSecond: 1000, burst: 10_000 } } } })
    rpToken = await A.createCredential(h.deps, 'relying-party', 'routes-test', hashCredential)
    headers.admin = { authorization: `Bearer ${h.adminToken}` }
    headers.rp = { authorization: `Bearer ${rpToken}` }
  })
  afterAll(async () => {
    await h?.stop()
  })

  async function errorOf(r: Response): Promise<{ status: number; code: string; message: string }> {
    const body = W.ErrorResponse.parse(await r.json())
    return { status: r.status, code: body.error.code, message: body.error.message }
  }
  const send = (route: (typeof BODY_ROUTES)[number], contentType: string | undefined, body: string) =>
    app.request(route.path, { method: route.method, headers: { ...headers[route.auth], ...(contentType ? { 'content-type': contentType } : {}) }, body })

  describe.each(BODY_ROUTES)('$module: $method $path', (route) => {
    it('refuses a body that is not application/json with 415 ERR_UNSUPPORTED_MEDIA_TYPE', async () => {
      for (const ct of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'application/merge-patch+json']) {
        expect(await errorOf(await send(route, ct, '{}'))).toEqual({ status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE', message: 'content-type must be application/json' })
      }
    })
    it('refuses malformed JSON with 400 ERR_BAD_REQUEST "body is not valid JSON"', async () => {
      for (const body of ['{"tee":', '', 'nul', '{"a":1}}']) {
        expect(await errorOf(await send(route, 'application/json; charset=utf-8', body))).toEqual({ status: 400, code: 'ERR_BAD_REQUEST', message: 'body is not valid JSON' })
      }
    })
    it('refuses a body that fails the schema with 400 ERR_BAD_REQUEST naming the field', async () => {
      const e = await errorOf(await send(route, 'application/json', JSON.stringify(route.bad)))
      expect([e.status, e.code]).toEqual([400, 'ERR_BAD_REQUEST'])
      expect(e.message).toMatch(new RegExp(`^invalid request at ${route.at}: `))
      const whole = await errorOf(await send(route, 'Application/JSON', '[]'))
      expect(whole).toMatchObject({ status: 400, code: 'ERR_BAD_REQUEST' })
      expect(whole.message).toMatch(/^invalid request at \(body\): /)
    })
  })

  it('checks credentials before the body: an unauthenticated caller learns nothing about the schema', async () => {
    for (const route of BODY_ROUTES.filter((r) => r.auth !== 'none')) {
      const r = await app.request(route.path, { method: route.method, headers: { 'content-type': 'text/plain' }, body: 'garbage' })
      expect((await errorOf(r)).code).toBe('ERR_UNAUTHORIZED')
    }
  })

  it('validation refusals add no audit rows', async () => {
    const before = (await A.allAuditRows(h.deps)).length
    for (const route of BODY_ROUTES) await send(route, 'application/json', JSON.stringify(route.bad))
    expect((await A.allAuditRows(h.deps)).length).toBe(before)
  })

  // The OAuth endpoints take application/x-www-form-urlencoded bodies (formBody) and answer in RFC 6749 §5.2 JSON.
  describe.each([
    { path: '/v1/oauth/token', auth: 'none' as Auth, bad: 'resource=x&grant_type=', at: 'grant_type' },
    { path: '/v1/oauth/introspect', auth: 'rp' as Auth, bad: 'token_type_hint=x', at: 'token' },
    { path: '/v1/oauth/revoke', auth: 'none' as Auth, bad: 'token=&x=1', at: 'token' },
  ])('oauth form: POST $path', (route) => {
    const post = async (contentType: string | undefined, body: string) => {
      const r = await app.request(route.path, { method: 'POST', headers: { ...headers[route.auth], ...(contentType ? { 'content-type': contentType } : {}) }, body })
      return { status: r.status, body: (await r.json()) as Record<string, unknown> }
    }
    it('refuses another media type: 400 invalid_request, ERR_UNSUPPORTED_MEDIA_TYPE', async () => {
      for (const ct of [undefined, 'application/json', 'multipart/form-data; boundary=x', 'text/plain']) {
        expect(await post(ct, 'token=a')).toEqual({
          status: 400,
          body: { error: 'invalid_request', error_description: 'content-type must be application/x-www-form-urlencoded', keyward_code: 'ERR_UNSUPPORTED_MEDIA_TYPE' },
        })
      }
    })
    it('refuses a repeated parameter and a form that fails the schema (an empty value counts as omitted)', async () => {
      expect(await post('application/x-www-form-urlencoded', 'token=a&token=b&grant_type=x')).toEqual({
        status: 400,
        body: { error: 'invalid_request', error_description: 'parameter token repeated', keyward_code: 'ERR_BAD_REQUEST' },
      })
      const r = await post('Application/X-WWW-Form-Urlencoded; charset=utf-8', route.bad)
      expect([r.status, r.body.error, r.body.keyward_code]).toEqual([400, 'invalid_request', 'ERR_BAD_REQUEST'])
      expect(r.body.error_description).toMatch(new RegExp(`^invalid request at ${route.at}: `))
    })
  })

  it('oauth introspect checks the relying-party credential before the form', async () => {
    const r = await app.request('/v1/oauth/introspect', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'garbage' })
    expect([r.status, ((await r.json()) as { keyward_code: string }).keyward_code]).toEqual([401, 'ERR_UNAUTHORIZED'])
  })

  it('an oauth form that passes validation reaches client authentication', async () => {
    const r = await app.request('/v1/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&scope=' })
    expect([r.status, ((await r.json()) as { error: string }).error]).toEqual([401, 'invalid_client'])
  })

  it('routes without a body: health, discovery, challenge, secrets, credentials, admin', async () => {
    expect(await (await app.request('/healthz')).json()).toEqual({ status: 'ok' })
    expect(await (await app.request('/readyz')).json()).toEqual({ status: 'ready' })
    expect((await app.request('/metrics')).headers.get('content-type')).toMatch(/^text\/plain/)
    expect(((await (await app.request('/openapi.json')).json()) as { openapi: string }).openapi).toBe('3.1.0')
    expect(((await (await app.request('/.well-known/jwks.json')).json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0)
    const ch = await app.request('/v1/challenge', { method: 'POST' })
    expect(W.ChallengeResponse.parse(await ch.json()).nonce).toHaveLength(43)

    expect(await errorOf(await app.request('/v1/secrets/bad%20name'))).toEqual({ status: 400, code: 'ERR_BAD_REQUEST', message: 'invalid secret name' })
    const noToken = await app.request('/v1/secrets/db-password')
    expect(await errorOf(noToken)).toMatchObject({ status: 401, code: 'ERR_UNAUTHORIZED' })
    expect(noToken.headers.get('www-authenticate')).toMatch(/^DPoP algs="/)
    expect(await errorOf(await app.request(`/v1/credentials/${'t'.repeat(200)}`, { method: 'POST' }))).toMatchObject({ status: 400, code: 'ERR_BAD_REQUEST' })
    expect((await errorOf(await app.request('/v1/credentials/github', { method: 'POST' }))).code).toBe('ERR_UNAUTHORIZED')
    expect((await errorOf(await app.request('/v1/admin/secrets'))).code).toBe('ERR_UNAUTHORIZED')
    expect(await (await app.request('/v1/admin/secrets', { headers: headers.admin })).json()).toMatchObject({ secrets: expect.any(Array) })
  })

  it('unknown routes and methods are 404 ERR_NOT_FOUND, also under a mounted module and behind the admin credential', async () => {
    for (const [method, path, auth] of [
      ['GET', '/nope', 'none'],
      ['POST', '/v1/nope', 'none'],
      ['GET', '/v1/challenge', 'none'],
      ['GET', '/v1/secrets', 'none'],
      ['POST', '/v1/vault/token/extra', 'none'],
      ['POST', '/v1/tpm/unknown', 'none'],
      ['GET', '/v1/admin/nope', 'admin'],
    ] as const) {
      expect(await errorOf(await app.request(path, { method, headers: headers[auth] }))).toEqual({ status: 404, code: 'ERR_NOT_FOUND', message: 'no such endpoint' })
    }
  })

  it('a body over maxBodyBytes is 413 ERR_BODY_TOO_LARGE, with or without a Content-Length', async () => {
    const small = createApp({ ...h.deps, config: { ...h.deps.config, maxBodyBytes: 1024 } })
    const big = JSON.stringify({ tee: 'nitro', evidence: { document: 'A'.repeat(2000) } })
    const declared = await small.request('/v1/attest', { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(big.length) }, body: big })
    expect(await errorOf(declared)).toEqual({ status: 413, code: 'ERR_BODY_TOO_LARGE', message: 'request body exceeds 1024 bytes' })
    const chunks = new ReadableStream<Uint8Array>({
      start(ctl) {
        for (let i = 0; i < 4; i++) ctl.enqueue(new TextEncoder().encode(big.slice(i * 500, (i + 1) * 500)))
        ctl.close()
      },
    })
    const streamed = await small.request('/v1/admin/policies', { method: 'POST', headers: { ...headers.admin, 'content-type': 'application/json' }, body: chunks, duplex: 'half' } as RequestInit)
    expect(await errorOf(streamed)).toMatchObject({ status: 413, code: 'ERR_BODY_TOO_LARGE' })
  })

  it('every ERR_ code keeps the HTTP status it had before the table moved', () => {
    expect(ERROR_STATUS).toEqual(STATUS_BEFORE_THE_MOVE)
  })

  it('the error handler answers each code with its status and stable body; anything else is an opaque 500', async () => {
    const t = new Hono<Env>()
    t.use('*', async (c, next) => {
      c.set('requestId', 'test')
      await next()
    })
    t.onError(errorHandler(pino({ level: 'silent' })))
    t.notFound(notFound)
    t.get('/throw/:code', (c) => {
      throw new KeywardError(c.req.param('code') as ErrorCode, `message of ${c.req.param('code')}`, { detail: { retryAfterSeconds: 7, secretish: 'never-shown' } })
    })
    t.get('/crash', () => {
      throw new TypeError('Cannot read properties of undefined (reading db-password)')
    })
    for (const code of ERROR_CODES) {
      const r = await t.request(`/throw/${code}`)
      expect([r.status, await r.json()]).toEqual([STATUS_BEFORE_THE_MOVE[code], { error: { code, message: `message of ${code}` } }])
      expect(r.headers.get('retry-after')).toBe('7')
    }
    const crash = await t.request('/crash')
    expect([crash.status, await crash.text()]).toEqual([500, JSON.stringify({ error: { code: 'ERR_INTERNAL', message: 'internal error' } })])
  })
})
