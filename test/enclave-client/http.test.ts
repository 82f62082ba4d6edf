// Retries with backoff and jitter on network errors and 5xx, none on 4xx; per-request timeouts.
import { describe, it, expect, afterEach } from 'vitest'
import { z } from 'zod'
import { createHttpClient, backoffDelay, isRetryable } from '../../enclave-client/src/http.js'
import { BrokerError, ClientConfigError, DeniedError, NetworkError, ProtocolError, TimeoutError } from '../../enclave-client/src/errors.js'
import { startServer, type TestServer } from './helpers/http-server.js'

let srv: TestServer | undefined
afterEach(async () => {
  await srv?.close()
  srv = undefined
})

const Ok = z.object({ ok: z.literal(true) })
const fast = { baseDelayMs: 5, maxDelayMs: 20 }

describe('backoff', () => {
  it('doubles the cap per attempt up to the maximum, with full jitter', () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.999999 }
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, o))).toEqual([99, 199, 399, 799, 999])
    expect(backoffDelay(3, { ...o, random: () => 0 })).toBe(0)
    expect(backoffDelay(2, { ...o, random: () => 0.5 })).toBe(100)
  })

  it('treats only network errors, timeouts and 5xx as retryable', () => {
    expect(isRetryable(new NetworkError('x'))).toBe(true)
    expect(isRetryable(new TimeoutError(5))).toBe(true)
    expect(isRetryable(new BrokerError(503, 'ERR_VAULT_UNAVAILABLE', 'x'))).toBe(true)
    expect(isRetryable(new BrokerError(400, 'ERR_BAD_REQUEST', 'x'))).toBe(false)
    expect(isRetryable(new DeniedError(403, 'ERR_POLICY_DENIED', 'x'))).toBe(false)
    expect(isRetryable(new Error('x'))).toBe(false)
  })
})

describe('HTTP client against a local server', () => {
  it('retries 5xx N times and then succeeds', async () => {
    srv = await startServer((_r, n) => (n <= 2 ? { status: 503, body: { error: { code: 'ERR_STORE', message: 'busy' } } } : { status: 200, body: { ok: true } }))
    const retries: number[] = []
    const h = createHttpClient({ broker: srv.url, retries: 3, ...fast, onRetry: (i) => retries.push(i.attempt) })
    await expect(h.request({ method: 'POST', path: '/v1/challenge', body: {} }, Ok)).resolves.toEqual({ ok: true })
    expect(srv.requests).toHaveLength(3)
    expect(retries).toEqual([1, 2])
    await h.close()
  })

  it('a request that must not run twice is retried after 503 ERR_OVERLOADED (refused unread), not after another 5xx', async () => {
    srv = await startServer((_r, n) => (n === 1 ? { status: 503, body: { error: { code: 'ERR_OVERLOADED', message: 'at its limit' } } } : { status: 200, body: { ok: true } }))
    const h = createHttpClient({ broker: srv.url, retries: 3, ...fast })
    await expect(h.request({ method: 'POST', path: '/token', body: {}, idempotent: false }, Ok)).resolves.toEqual({ ok: true })
    expect(srv.requests).toHaveLength(2)
    await h.close()
    await srv.close()
    srv = await startServer(() => ({ status: 503, body: { error: { code: 'ERR_STORE_UNAVAILABLE', message: 'store down' } } }))
    const h2 = createHttpClient({ broker: srv.url, retries: 3, ...fast })
    await expect(h2.request({ method: 'POST', path: '/token', body: {}, idempotent: false }, Ok)).rejects.toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' })
    expect(srv.requests, 'it may have run: not sent again').toHaveLength(1)
    await h2.close()
  })

  it('gives up after the configured retries with the broker error', async () => {
    srv = await startServer(() => ({ status: 502, body: { error: { code: 'ERR_VAULT_ERROR', message: 'vault said no' } } }))
    const h = createHttpClient({ broker: srv.url, retries: 2, ...fast })
    const err = await h.request({ method: 'GET', path: '/x' }, Ok).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BrokerError)
    expect(err).toMatchObject({ code: 'ERR_VAULT_ERROR', httpStatus: 502, message: 'vault said no' })
    expect(srv.requests).toHaveLength(3)
    await h.close()
  })

  it('never retries a 403 denial and carries the failures list', async () => {
    const failures = [{ rule: 'measurement in reference values', got: 'ab' }, { rule: 'debug == false' }]
    srv = await startServer(() => ({ status: 403, body: { error: { code: 'ERR_POLICY_DENIED', message: 'denied by policy web', failures } } }))
    const h = createHttpClient({ broker: srv.url, retries: 5, ...fast })
    const err = await h.request({ method: 'POST', path: '/v1/attest', body: {} }, Ok).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DeniedError)
    expect(err).toMatchObject({ code: 'ERR_POLICY_DENIED', brokerCode: 'ERR_POLICY_DENIED', httpStatus: 403, failures })
    expect(srv.requests).toHaveLength(1)
    await h.close()
  })

  it('maps other 4xx to BrokerError without retry, and unknown codes to a stable one', async () => {
    srv = await startServer((_r, n) =>
      n === 1 ? { status: 400, body: { error: { code: 'ERR_FROM_THE_FUTURE', message: 'new' } } } : { status: 401, body: 'not json at all' },
    )
    const h = createHttpClient({ broker: srv.url, retries: 5, ...fast })
    const e1 = await h.request({ method: 'GET', path: '/a' }, Ok).catch((e: unknown) => e)
    expect(e1).toBeInstanceOf(BrokerError)
    expect(e1).not.toBeInstanceOf(DeniedError)
    expect(e1).toMatchObject({ code: 'ERR_BAD_REQUEST', brokerCode: 'ERR_FROM_THE_FUTURE' })
    const e2 = await h.request({ method: 'GET', path: '/b' }, Ok).catch((e: unknown) => e)
    expect(e2).toBeInstanceOf(DeniedError)
    expect(e2).toMatchObject({ code: 'ERR_UNAUTHORIZED', brokerCode: 'HTTP_401' })
    expect(srv.requests).toHaveLength(2)
    await h.close()
  })

  it('times out a hanging request and retries it', async () => {
    srv = await startServer((_r, n) => (n === 1 ? 'hang' : { status: 200, body: { ok: true } }))
    const h = createHttpClient({ broker: srv.url, retries: 1, timeoutMs: 150, ...fast })
    await expect(h.request({ method: 'GET', path: '/t' }, Ok)).resolves.toEqual({ ok: true })
    expect(srv.requests).toHaveLength(2)
    await h.close()
  })

  it('reports TimeoutError when every attempt hangs', async () => {
    srv = await startServer(() => 'hang')
    const h = createHttpClient({ broker: srv.url, retries: 1, timeoutMs: 100, ...fast })
    const err = await h.request({ method: 'GET', path: '/t' }, Ok).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', timeoutMs: 100 })
    expect(srv.requests).toHaveLength(2)
    await h.close()
  })

  it('retries dropped connections and reports NetworkError when the broker is gone', async () => {
    srv = await startServer((_r, n) => (n === 1 ? 'drop' : { status: 200, body: { ok: true } }))
    const h = createHttpClient({ broker: srv.url, retries: 2, ...fast })
    await expect(h.request({ method: 'GET', path: '/d' }, Ok)).resolves.toEqual({ ok: true })
    const url = srv.url
    await srv.close()
    srv = undefined
    const gone = createHttpClient({ broker: url, retries: 1, ...fast })
    const err = await gone.request({ method: 'GET', path: '/d' }, Ok).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NetworkError)
    await h.close()
    await gone.close()
  })

  it('computes headers per attempt and reports malformed answers as ProtocolError', async () => {
    srv = await startServer((_r, n) => (n === 1 ? { status: 500 } : { status: 200, body: { ok: 'yes' } }))
    const h = createHttpClient({ broker: `${srv.url}/base/`, retries: 1, ...fast })
    let calls = 0
    const err = await h
      .request({ method: 'GET', path: '/v1/secrets/a', headers: (url) => ({ 'x-n': String(++calls), 'x-url': url }) }, Ok)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ProtocolError)
    expect(srv.requests.map((r) => r.headers['x-n'])).toEqual(['1', '2'])
    expect(srv.requests[0]!.path).toBe('/base/v1/secrets/a')
    expect(srv.requests[0]!.headers['x-url']).toBe(`${srv.url}/base/v1/secrets/a`)
    await h.close()
  })

  it('rejects bad configuration before any request', () => {
    expect(() => createHttpClient({ broker: 'not a url' })).toThrow(ClientConfigError)
    expect(() => createHttpClient({ broker: 'ftp://x' })).toThrow(ClientConfigError)
    expect(() => createHttpClient({ broker: 'https://x', tls: { cert: '-----BEGIN CERTIFICATE-----' } })).toThrow(ClientConfigError)
    expect(() => createHttpClient({ broker: 'https://x', tls: { ca: '/nonexistent/ca.pem' } })).toThrow(ClientConfigError)
  })
})
