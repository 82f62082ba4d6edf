// DPoP at the release endpoints (RFC 9449), through the real HTTP server on SQLite and
// PostgreSQL: every proof check refuses its own forgery with ERR_DPOP_INVALID and a
// WWW-Authenticate challenge; a captured request opens nothing a second time, on this broker or
// another one sharing the store; htu is the configured public origin, and forwarded headers
// count only from configured proxies.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHash, randomUUID } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, calculateJwkThumbprint, type JWK, type JWTPayload, type CryptoKey } from 'jose'
import { startHarness, testOnlyNitroCollector, type Harness } from './harness.js'
import { bindingDigest, thumbprintBytes } from '../../src/protocol/binding.js'
import { buildDeps, startServer, type RunningServer } from '../../src/broker/server.js'
import { createLogger } from '../../src/broker/logger.js'
import { loadConfig } from '../../src/broker/config.js'
import type { BrokerDeps } from '../../src/broker/deps.js'
import { createClient } from '../../enclave-client/src/index.js'

interface Holder {
  token: string
  publicJwk: JWK
  privateJwk: JWK
  privateKey: CryptoKey
}

/** Attests a fresh ES256 key by hand, so that tests hold its private half. */
async function attestKey(h: Harness, base = h.url): Promise<Holder> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
  const full = await exportJWK(publicKey)
  const publicJwk: JWK = { kty: 'EC', crv: full.crv, x: full.x, y: full.y }
  const privateJwk = await exportJWK(privateKey)
  const jkt = await calculateJwkThumbprint(publicJwk, 'sha256')
  const post = async (path: string, body: unknown) => (await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<Record<string, any>>
  const { nonce } = await post('/v1/challenge', {})
  const n = Buffer.from(nonce as string, 'base64url')
  const evidence = await testOnlyNitroCollector(h.pki).collect({ binding: bindingDigest(n, thumbprintBytes(jkt)), nonce: n })
  const r = await post('/v1/attest', { tee: 'nitro', nonce, key: publicJwk, evidence })
  if (typeof r.token !== 'string') throw new Error(`attest failed: ${JSON.stringify(r)}`)
  return { token: r.token, publicJwk, privateJwk, privateKey: privateKey }
}

const athOf = (token: string) => createHash('sha256').update(token).digest('base64url')

/** A proof over (method, url, token) with any field overridden or removed (undefined). */
async function proof(k: Holder, method: string, url: string, over: { header?: Record<string, unknown>; payload?: JWTPayload } = {}): Promise<string> {
  const payload: JWTPayload = { htm: method, htu: url, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ath: athOf(k.token), ...over.payload }
  for (const [key, v] of Object.entries(payload)) if (v === undefined) delete payload[key]
  return new SignJWT(payload).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: k.publicJwk, ...over.header } as never).sign(k.privateKey)
}

/** A JWS with any header at all (alg none / HS256), which jose would not sign. */
function rawJws(header: Record<string, unknown>, payload: JWTPayload, sig = 'c2ln'): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
  return `${b(header)}.${b(payload)}.${sig}`
}

async function release(url: string, headers: Record<string, string>) {
  const r = await fetch(url, { headers })
  return { status: r.status, challenge: r.headers.get('www-authenticate'), body: (await r.json()) as Record<string, any> }
}

describe.each(['sqlite', 'postgres'] as const)('DPoP proofs on %s', (backend) => {
  let h: Harness
  let k: Holder
  let other: Holder
  let url: string
  beforeAll(async () => {
    h = await startHarness(backend)
    k = await attestKey(h)
    other = await attestKey(h)
    url = `${h.url}/v1/secrets/db-password`
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('a well-formed proof releases the secret; the DPoP scheme is matched case-insensitively', async () => {
    for (const scheme of ['DPoP', 'dpop', 'DPOP']) {
      const r = await release(url, { authorization: `${scheme} ${k.token}`, dpop: await proof(k, 'GET', url) })
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      expect(r.body.name).toBe('db-password')
    }
  })

  const now = () => Math.floor(Date.now() / 1000)
  const cases: Array<[string, (k: Holder, url: string) => Promise<string>, RegExp]> = [
    ['wrong method', (k, u) => proof(k, 'POST', u), /htm/],
    ['stale iat', (k, u) => proof(k, 'GET', u, { payload: { iat: now() - 120 } }), /iat/],
    ['future iat', (k, u) => proof(k, 'GET', u, { payload: { iat: now() + 120 } }), /iat/],
    ['missing iat', (k, u) => proof(k, 'GET', u, { payload: { iat: undefined } }), /iat/],
    ['ath of another token', (k, u) => proof(k, 'GET', u, { payload: { ath: athOf(other.token) } }), /ath/],
    ['missing ath', (k, u) => proof(k, 'GET', u, { payload: { ath: undefined } }), /ath/],
    ['private key in the header', (k, u) => proof(k, 'GET', u, { header: { jwk: k.privateJwk } }), /public|signature/],
    ['wrong typ', (k, u) => proof(k, 'GET', u, { header: { typ: 'JWT' } }), /typ/],
    ['alg none', async (k, u) => rawJws({ typ: 'dpop+jwt', alg: 'none', jwk: k.publicJwk }, { htm: 'GET', htu: u, iat: now(), jti: randomUUID(), ath: athOf(k.token) }, ''), /alg/],
    ['alg HS256', async (k, u) => rawJws({ typ: 'dpop+jwt', alg: 'HS256', jwk: k.publicJwk }, { htm: 'GET', htu: u, iat: now(), jti: randomUUID(), ath: athOf(k.token) }), /alg/],
    ['wrong htu path', (k, u) => proof(k, 'GET', u.replace('db-password', 'api-key')), /htu/],
    ['wrong htu origin', (k, u) => proof(k, 'GET', u.replace('127.0.0.1', 'keyward.example')), /htu/],
    ['wrong htu scheme', (k, u) => proof(k, 'GET', u.replace('http:', 'https:')), /htu/],
    ['missing jti', (k, u) => proof(k, 'GET', u, { payload: { jti: undefined } }), /jti/],
    ['signed by another key than the token is bound to', (k, u) => proof({ ...other, token: k.token }, 'GET', u), /bound/],
    // The bound key's import is cached after the first release (src/broker/jwk-cache.ts): naming it in the header does not make another key's signature pass.
    ['the bound key in the header, signed by another key', (k, u) => proof({ ...other, token: k.token, publicJwk: k.publicJwk }, 'GET', u), /signature/],
    ['not a JWS', async () => 'x.y.z', /JWS/],
  ]
  it.each(cases)('a proof with %s is refused with ERR_DPOP_INVALID and an invalid_dpop_proof challenge', async (_name, make, why) => {
    const r = await release(url, { authorization: `DPoP ${k.token}`, dpop: await make(k, url) })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('ERR_DPOP_INVALID')
    expect(r.body.error.message).toMatch(why)
    expect(r.challenge).toMatch(/^DPoP error="invalid_dpop_proof", error_description="[^"]+", algs="ES256 ES384 PS256 RS256"$/)
  })

  it('a token without a proof, a Bearer token and a forged token get the DPoP challenge', async () => {
    const none = await release(url, { authorization: `DPoP ${k.token}` })
    expect(none.body.error.code).toBe('ERR_DPOP_INVALID')
    expect(none.challenge).toMatch(/^DPoP error="invalid_dpop_proof"/)
    const bearer = await release(url, { authorization: `Bearer ${k.token}`, dpop: await proof(k, 'GET', url) })
    expect(bearer.status).toBe(401)
    expect(bearer.body.error.code).toBe('ERR_UNAUTHORIZED')
    expect(bearer.challenge).toBe('DPoP algs="ES256 ES384 PS256 RS256"')
    const [hd, pl] = k.token.split('.')
    const forged = `${hd}.${pl}.${Buffer.alloc(64).toString('base64url')}`
    const bad = await release(url, { authorization: `DPoP ${forged}`, dpop: await proof({ ...k, token: forged }, 'GET', url) })
    expect(bad.body.error.code).toBe('ERR_TOKEN_INVALID')
    expect(bad.challenge).toMatch(/^DPoP error="invalid_token"/)
  })

  it('a captured request (token + proof) is refused when replayed, here and on a second broker sharing the store', async () => {
    // A second broker process's worth of state: its own deps (no shared memory), the same store.
    const second = await buildDeps(h.config, createLogger('silent'))
    const server2 = await startServer(second)
    try {
      const url1 = url
      const url2 = `http://127.0.0.1:${server2.port}/v1/secrets/db-password`
      // Brokers behind one public origin: the proof names it, both accept it (publicUrl below).
      const p = await proof(k, 'GET', url1)
      expect((await release(url1, { authorization: `DPoP ${k.token}`, dpop: p })).status).toBe(200)
      const again = await release(url1, { authorization: `DPoP ${k.token}`, dpop: p })
      expect(again.body.error).toMatchObject({ code: 'ERR_DPOP_INVALID', message: expect.stringMatching(/replayed/) })
      // The same on the second broker: its own proof works once, and the first broker refuses its replay.
      const p2 = await proof(k, 'GET', url2)
      expect((await release(url2, { authorization: `DPoP ${k.token}`, dpop: p2 })).status).toBe(200)
      expect((await release(url2, { authorization: `DPoP ${k.token}`, dpop: p2 })).body.error.message).toMatch(/replayed/)
      // Concurrent replays of one fresh proof across both brokers: exactly one wins.
      const shared = loadConfig({ overrides: { ...h.config, publicUrl: 'https://keyward.example' } })
      const a = await buildDeps(shared, createLogger('silent'))
      const b = await buildDeps(shared, createLogger('silent'))
      const sa = await startServer(a)
      const sb = await startServer(b)
      try {
        const pub = 'https://keyward.example/v1/secrets/db-password'
        const cap = await proof(k, 'GET', pub)
        const results = await Promise.all([sa, sb, sa, sb].map((s) => release(`http://127.0.0.1:${s.port}/v1/secrets/db-password`, { authorization: `DPoP ${k.token}`, dpop: cap })))
        expect(results.filter((r) => r.status === 200)).toHaveLength(1)
        expect(results.filter((r) => r.body.error?.code === 'ERR_DPOP_INVALID' && /replayed/.test(r.body.error.message))).toHaveLength(3)
      } finally {
        await closeAll([sa, a], [sb, b])
      }
    } finally {
      await closeAll([server2, second])
    }
  })

  it('seen proof ids are pruned once they could no longer pass the iat check', async () => {
    const p = await proof(k, 'GET', url)
    expect((await release(url, { authorization: `DPoP ${k.token}`, dpop: p })).status).toBe(200)
    const later = Date.now() + 121_000
    expect(await h.deps.store.pruneDpopProofs(later)).toBeGreaterThanOrEqual(1)
    // Pruned and past its window: refused for its iat, never accepted again.
    h.advance(121_000)
    try {
      expect((await release(url, { authorization: `DPoP ${k.token}`, dpop: p })).body.error.code).toMatch(/ERR_DPOP_INVALID|ERR_TOKEN_INVALID/)
    } finally {
      h.advance(-121_000)
    }
  })
})

async function closeAll(...pairs: Array<[RunningServer, BrokerDeps]>): Promise<void> {
  for (const [s, d] of pairs) {
    await s.close()
    await d.store.close()
  }
}

describe('the public origin of DPoP htu', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness('sqlite', { publicUrl: 'https://keyward.example/base' })
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('is the configured publicUrl; Host and X-Forwarded-* from an untrusted peer do not change it', async () => {
    const k = await attestKey(h)
    const local = `${h.url}/v1/secrets/db-password`
    const pub = 'https://keyward.example/base/v1/secrets/db-password'
    expect((await release(local, { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', pub) })).status).toBe(200)
    // A proof made for the address the request was sent to is not one for this broker.
    const r = await release(local, { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', local) })
    expect(r.body.error).toMatchObject({ code: 'ERR_DPOP_INVALID', message: expect.stringMatching(/htu/) })
    // An attacker's proof for another origin, with headers claiming it, stays refused.
    const forged = await release(local, {
      authorization: `DPoP ${k.token}`,
      dpop: await proof(k, 'GET', 'http://evil.example/v1/secrets/db-password'),
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil.example',
    })
    expect(forged.body.error).toMatchObject({ code: 'ERR_DPOP_INVALID', message: expect.stringMatching(/htu/) })
  })

  it('a broker listening beyond loopback without publicUrl refuses to start', async () => {
    const { publicUrl: _omit, ...rest } = h.config
    await expect(startServer({ ...h.deps, config: { ...rest, host: '0.0.0.0', port: 0 } })).rejects.toMatchObject({ code: 'ERR_CONFIG' })
  })
})

describe('forwarded headers on a loopback broker without publicUrl', () => {
  it('count only from a configured proxy address', async () => {
    for (const trustedProxies of [[], ['127.0.0.1']]) {
      const h = await startHarness('sqlite', { trustedProxies })
      try {
        const k = await attestKey(h)
        const url = `${h.url}/v1/secrets/db-password`
        const claimed = `https://keyward.example/v1/secrets/db-password`
        const headers = async () => ({ authorization: `DPoP ${k.token}`, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'keyward.example', dpop: await proof(k, 'GET', claimed) })
        const viaHeaders = await release(url, await headers())
        const direct = await release(url, { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', url), 'x-forwarded-proto': 'https', 'x-forwarded-host': 'keyward.example' })
        if (trustedProxies.length === 0) {
          expect(viaHeaders.body.error).toMatchObject({ code: 'ERR_DPOP_INVALID', message: expect.stringMatching(/htu/) })
          expect(direct.status).toBe(200)
        } else {
          expect(viaHeaders.status).toBe(200)
          expect(direct.body.error.code).toBe('ERR_DPOP_INVALID')
        }
      } finally {
        await h.stop()
      }
    }
  })
})

describe.each(['sqlite', 'postgres'] as const)('server-provided DPoP nonces (requireDpopNonce) on %s', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend, { requireDpopNonce: true })
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('a proof without a nonce gets use_dpop_nonce and a DPoP-Nonce; that nonce opens the release, an invented or expired one does not', async () => {
    const k = await attestKey(h)
    const url = `${h.url}/v1/secrets/db-password`
    const first = await fetch(url, { headers: { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', url) } })
    expect(first.status).toBe(401)
    expect(((await first.json()) as any).error.code).toBe('ERR_DPOP_NONCE')
    expect(first.headers.get('www-authenticate')).toMatch(/^DPoP error="use_dpop_nonce", /)
    const nonce = first.headers.get('dpop-nonce')!
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{32}$/)
    // The nonce is reusable until it expires, by any replica (it lives in the store).
    for (let i = 0; i < 2; i++) expect((await release(url, { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', url, { payload: { nonce } }) })).status).toBe(200)
    const invented = await release(url, { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', url, { payload: { nonce: 'A'.repeat(32) } }) })
    expect(invented.body.error.code).toBe('ERR_DPOP_NONCE')
    // A challenge nonce is not a DPoP nonce.
    const { nonce: challenge } = (await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
    expect((await release(url, { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', url, { payload: { nonce: challenge } }) })).body.error.code).toBe('ERR_DPOP_NONCE')
    h.advance(61_000)
    try {
      const stale = await release(url, { authorization: `DPoP ${k.token}`, dpop: await proof(k, 'GET', url, { payload: { nonce, iat: Math.floor((Date.now() + 61_000) / 1000) } }) })
      expect(stale.body.error.code).toBe('ERR_DPOP_NONCE')
    } finally {
      h.advance(-61_000)
    }
  })

  it('the enclave client retries once with the nonce the broker sent', async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    expect(new TextDecoder().decode(await client.getSecret('api-key'))).toBe('testOnly-api-key-77aa')
    await client.close()
  })
})
