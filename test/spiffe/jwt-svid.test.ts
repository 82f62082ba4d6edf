// JWT-SVIDs and the bundle endpoint through the public API (spiffe/spiffe standards/JWT-SVID.md
// and SPIFFE_Trust_Domain_and_Bundle.md, each test named after its section), judged by the rules
// go-spiffe applies (./go-spiffe-rules.ts, written from go-spiffe's code).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import type { Harness } from '../broker/harness.js'
import { createApp } from '../../src/broker/app.js'
import * as A from '../../src/broker/admin-services.js'
import { createSessionKey } from '../../enclave-client/src/session-key.js'
import { attestCaller, openJwtSvid, postAs, startSpiffeHarness, GRANTED_AUDIENCES, SPIFFE_ID, TRUST_DOMAIN, type App, type Caller } from './helpers.js'
import { goParseAndValidateJwtSvid, goParseBundle, GoSpiffeError, type GoBundle } from './go-spiffe-rules.js'

describe('JWT-SVIDs and the SPIFFE bundle', () => {
  let h: Harness
  let app: App
  let caller: Caller
  let token: string
  let released: Record<string, any>
  const bundleText = async () => (await app.request('/v1/spiffe/bundle')).text()
  const bundles = async (): Promise<Map<string, GoBundle>> => new Map([[TRUST_DOMAIN, goParseBundle(await bundleText())]])
  const jwtSvid = (audience: unknown, who: Caller | null = caller) => postAs(app, who ?? undefined, '/v1/spiffe/jwt-svid', { audience })

  beforeAll(async () => {
    h = await startSpiffeHarness()
    app = createApp(h.deps)
    caller = await attestCaller(app, h)
    const r = await jwtSvid([GRANTED_AUDIENCES[0]])
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    released = r.body
    token = await openJwtSvid(caller, r.body.jwe)
  })
  afterAll(async () => {
    await h?.stop()
  })

  describe('JWT-SVID.md', () => {
    it('§2 JOSE header: alg ES256 (§2.1), the kid of a jwt-svid bundle key (§2.2), typ JWT (§2.3), and no other header', async () => {
      const header = decodeProtectedHeader(token)
      expect(Object.keys(header).sort()).toEqual(['alg', 'kid', 'typ'])
      expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT' })
      const b = JSON.parse(await bundleText()) as { keys: Array<{ use: string; kid?: string }> }
      expect(b.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid)).toContain(header.kid)
    })

    it('§3.1 subject: sub is the SPIFFE ID the grant yields; §5.1 compact serialization', () => {
      expect(token.split('.')).toHaveLength(3)
      expect(decodeJwt(token).sub).toBe(SPIFFE_ID)
      expect(released.spiffeId).toBe(SPIFFE_ID)
    })

    it('§3.2 audience: present, exactly as requested (one value, or several all within the grant)', async () => {
      expect(decodeJwt(token).aud).toBe(GRANTED_AUDIENCES[0])
      const two = await jwtSvid(GRANTED_AUDIENCES)
      expect(two.status).toBe(200)
      expect(decodeJwt(await openJwtSvid(caller, two.body.jwe)).aud).toEqual(GRANTED_AUDIENCES)
    })

    it('§3.3 expiration: exp set, short: the grant’s 5 minutes', () => {
      const c = decodeJwt(token)
      expect(c.exp! - c.iat!).toBe(300)
      expect(new Date(released.expiresAt).getTime()).toBe(c.exp! * 1000)
    })

    it('§4 validation as go-spiffe jwtsvid.ParseAndValidate: accepted with the published bundle for its audience', async () => {
      const svid = await goParseAndValidateJwtSvid(token, await bundles(), [GRANTED_AUDIENCES[0]!], h.deps.clock())
      expect(svid.id).toBe(SPIFFE_ID)
    })

    it('§4 validation: refused for another audience, after exp plus leeway, with another trust domain’s bundle, or signed by another key', async () => {
      const b = await bundles()
      const now = h.deps.clock()
      await expect(goParseAndValidateJwtSvid(token, b, ['spiffe://example.org/other'], now)).rejects.toThrow(/expected audience/)
      await expect(goParseAndValidateJwtSvid(token, b, [GRANTED_AUDIENCES[0]!], new Date(now.getTime() + 361_000))).rejects.toThrow(/expired/)
      await expect(goParseAndValidateJwtSvid(token, new Map([['other.org', b.get(TRUST_DOMAIN)!]]), [GRANTED_AUDIENCES[0]!], now)).rejects.toThrow(/no bundle/)
      // keyward's attestation token, shaped as a JWT, is no JWT-SVID: its sub is no SPIFFE ID and its typ is eat+jwt.
      await expect(goParseAndValidateJwtSvid(caller.token, b, ['keyward'], now)).rejects.toBeInstanceOf(GoSpiffeError)
    })

    it('a JWT-SVID is no keyward attestation token: its key is not a token-signing key, and no SPIFFE key is in /.well-known/jwks.json', async () => {
      await expect(h.deps.tokens.verify(token)).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' })
      const jwks = (await (await app.request('/.well-known/jwks.json')).json()) as { keys: Array<{ x: string }> }
      const spiffe = (JSON.parse(await bundleText()) as { keys: Array<{ x: string }> }).keys.map((k) => k.x)
      expect(jwks.keys.length).toBeGreaterThan(0)
      expect(jwks.keys.filter((k) => spiffe.includes(k.x))).toEqual([])
      expect(decodeProtectedHeader(caller.token).kid).not.toBe(decodeProtectedHeader(token).kid)
    })

    it('abuse: an audience outside the grant is refused (ERR_NOT_GRANTED) and the denial audited with the audience', async () => {
      const r = await jwtSvid(['https://bank.example'])
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('ERR_NOT_GRANTED')
      const row = (await A.allAuditRows(h.deps)).at(-1)!
      expect(row).toMatchObject({ type: 'release:spiffe-jwt-svid', decision: 'deny', subject: caller.key.jkt, detail: { code: 'ERR_NOT_GRANTED' } })
      expect(row.detail.message).toContain('https://bank.example')
      const mixed = await jwtSvid([GRANTED_AUDIENCES[0], 'https://bank.example'])
      expect(mixed.body.error.code).toBe('ERR_NOT_GRANTED')
      expect((await jwtSvid([])).status).toBe(400)
    })

    it('abuse: an unattested caller gets nothing (401, not audited); the token without its key gets nothing', async () => {
      const before = (await A.allAuditRows(h.deps)).length
      expect((await jwtSvid([GRANTED_AUDIENCES[0]], null)).status).toBe(401)
      const thief = { key: await createSessionKey('ES256'), token: caller.token }
      const r = await jwtSvid([GRANTED_AUDIENCES[0]], thief)
      expect(r.status).toBe(401)
      expect(r.body.error.code).toBe('ERR_DPOP_INVALID')
      expect((await A.allAuditRows(h.deps)).length).toBe(before)
    })

    it('an issuance is audited with the SPIFFE ID, audience and jti, never the token', async () => {
      const r = await jwtSvid([GRANTED_AUDIENCES[1]])
      const t = await openJwtSvid(caller, r.body.jwe)
      const row = (await A.allAuditRows(h.deps)).at(-1)!
      expect(row).toMatchObject({ type: 'release:spiffe-jwt-svid', decision: 'allow', detail: { spiffeId: SPIFFE_ID, audience: [GRANTED_AUDIENCES[1]], jti: decodeJwt(t).jti } })
      expect(JSON.stringify(row)).not.toContain(t.split('.')[2])
    })
  })

  describe('SPIFFE_Trust_Domain_and_Bundle.md', () => {
    it('§4.1.3 keys and §4.2 elements: every key has kty and use x509-svid or jwt-svid; go-spiffe spiffebundle.Parse accepts the bundle', async () => {
      const b = JSON.parse(await bundleText()) as { keys: Array<Record<string, unknown>> }
      expect(b.keys.length).toBeGreaterThanOrEqual(2)
      for (const k of b.keys) {
        expect(k.kty).toBe('EC')
        expect(['x509-svid', 'jwt-svid']).toContain(k.use)
        expect(k.d).toBeUndefined()
      }
      const parsed = goParseBundle(JSON.stringify(b))
      expect(parsed.x509Authorities).toHaveLength(1)
      expect(parsed.jwtAuthorities.size).toBe(1)
    })

    it('X509-SVID.md §6.1: x509-svid entries have no kid and exactly one self-signed CA certificate in x5c; JWT-SVID.md §6.1: jwt-svid entries have a kid', async () => {
      const b = JSON.parse(await bundleText()) as { keys: Array<{ use: string; kid?: string; x5c?: string[] }> }
      for (const k of b.keys.filter((x) => x.use === 'x509-svid')) {
        expect(k.kid).toBeUndefined()
        expect(k.x5c).toHaveLength(1)
        const c = new X509Certificate(Buffer.from(k.x5c![0]!, 'base64'))
        expect(c.ca).toBe(true)
        expect(c.checkIssued(c) && c.verify(c.publicKey)).toBe(true)
      }
      for (const k of b.keys.filter((x) => x.use === 'jwt-svid')) expect(k.kid).toMatch(/^[A-Za-z0-9_-]{43}$/)
    })

    it('§4.1.1 spiffe_sequence and §4.1.2 spiffe_refresh_hint: integers; the sequence is stable while nothing changes and grows when keys rotate; a retired JWT key stays until its tokens expired', async () => {
      const first = JSON.parse(await bundleText()) as { spiffe_sequence: number; spiffe_refresh_hint: number }
      expect(Number.isSafeInteger(first.spiffe_sequence)).toBe(true)
      expect(first.spiffe_refresh_hint).toBe(h.deps.config.spiffe!.refreshHintSeconds)
      expect((JSON.parse(await bundleText()) as typeof first).spiffe_sequence).toBe(first.spiffe_sequence)
      h.advance(1000)
      await A.rotateSigningKey(h.deps)
      const after = JSON.parse(await bundleText()) as { spiffe_sequence: number; keys: Array<{ use: string }> }
      expect(after.spiffe_sequence).toBeGreaterThan(first.spiffe_sequence)
      // The token issued before the rotation still validates: its key is still published.
      expect(after.keys.filter((k) => k.use === 'jwt-svid')).toHaveLength(2)
      await expect(goParseAndValidateJwtSvid(token, await bundles(), [GRANTED_AUDIENCES[0]!], h.deps.clock())).resolves.toBeTruthy()
      // New JWT-SVIDs carry the new key's kid.
      const fresh = await openJwtSvid(caller, (await jwtSvid([GRANTED_AUDIENCES[0]])).body.jwe)
      expect(decodeProtectedHeader(fresh).kid).not.toBe(decodeProtectedHeader(token).kid)
      // Past the longest JWT-SVID lifetime the retired key leaves the bundle, and the sequence moves again.
      h.advance(3661_000)
      const later = JSON.parse(await bundleText()) as typeof after
      expect(later.keys.filter((k) => k.use === 'jwt-svid')).toHaveLength(1)
      expect(later.spiffe_sequence).toBeGreaterThan(after.spiffe_sequence)
      h.advance(-3662_000)
    })

    it('§5.2.1 https_web: the bundle is served to anyone, without credentials; a broker without a trust domain has no SPIFFE endpoints', async () => {
      const r = await app.request('/v1/spiffe/bundle')
      expect(r.status).toBe(200)
      expect(r.headers.get('content-type')).toContain('application/json')
      const bare = createApp({ ...h.deps, spiffe: undefined })
      const none = await bare.request('/v1/spiffe/bundle')
      expect(none.status).toBe(404)
      expect(((await none.json()) as { error: { code: string } }).error.code).toBe('ERR_NOT_FOUND')
    })
  })
})
