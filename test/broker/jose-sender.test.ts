// keyward's own JOSE sender side (src/broker/jwe.ts, src/broker/jws.ts): everything it writes
// must open or verify with jose, only for the key it was meant for, and with the header members
// keyward sets, whatever a caller passes beside them. The release encrypts to the KeyObject of
// the CryptoKey that verified the DPoP proof (dpop.ts), which is what these tests use too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPairSync, KeyObject } from 'node:crypto'
import { compactDecrypt, createLocalJWKSet, decodeProtectedHeader, exportJWK, flattenedDecrypt, generateKeyPair, jwtVerify, type JWK } from 'jose'
import { compactJwe, encryptJwe } from '../../src/broker/jwe.js'
import { signEs256 } from '../../src/broker/jws.js'
import { cachedPublicKey } from '../../src/broker/jwk-cache.js'
import { startHarness, type Harness } from './harness.js'

const text = (b: Uint8Array) => new TextDecoder().decode(b)
const plaintext = new TextEncoder().encode('a secret ü \u0000 with every byte kind')

async function recipient(alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256', crv?: 'P-256' | 'P-384' | 'P-521') {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(crv ? { crv } : {}) })
  return { privateKey, jwk: await exportJWK(publicKey) }
}

/** As the release path gets it: the DPoP proof's key (imported for its signature algorithm), as a KeyObject. */
async function proofKey(jwk: JWK): Promise<KeyObject> {
  const alg = jwk.kty === 'RSA' ? 'PS256' : jwk.crv === 'P-256' ? 'ES256' : jwk.crv === 'P-384' ? 'ES384' : 'ES512'
  return KeyObject.from(await cachedPublicKey(jwk, alg))
}

const encryptToKey = async (jwk: JWK, pt: Uint8Array, headers?: Record<string, string>) => compactJwe(encryptJwe(await proofKey(jwk), pt, headers))

describe('JWE to a workload key (jwe.ts)', () => {
  it.each([
    ['ECDH-ES+A256KW', 'P-256'],
    ['ECDH-ES+A256KW', 'P-384'],
    ['ECDH-ES+A256KW', 'P-521'],
    ['RSA-OAEP-256', undefined],
  ] as const)('%s %s: jose decrypts it with the recipient key, and the header says what was used', async (alg, crv) => {
    const r = await recipient(alg, crv)
    const jwe = await encryptToKey(r.jwk, plaintext, { kid: 'the-jkt', cty: 'keyward-release+jwt' })
    const { plaintext: opened, protectedHeader } = await compactDecrypt(jwe, r.privateKey)
    expect(text(opened)).toBe(text(plaintext))
    expect(protectedHeader).toMatchObject({ alg, enc: 'A256GCM', kid: 'the-jkt', cty: 'keyward-release+jwt' })
    if (crv) expect(protectedHeader.epk).toMatchObject({ kty: 'EC', crv })
    else expect(protectedHeader.epk).toBeUndefined()
  })

  it('another key cannot open it, and a fresh ephemeral key and CEK make every message different', async () => {
    const r = await recipient('ECDH-ES+A256KW', 'P-256')
    const other = await recipient('ECDH-ES+A256KW', 'P-256')
    const a = await encryptToKey(r.jwk, plaintext)
    const b = await encryptToKey(r.jwk, plaintext)
    await expect(compactDecrypt(a, other.privateKey)).rejects.toThrow()
    const [ha, eka, iva, cta] = a.split('.')
    const [hb, ekb, ivb, ctb] = b.split('.')
    expect(decodeProtectedHeader(a).epk).not.toEqual(decodeProtectedHeader(b).epk)
    expect([eka, iva, cta]).not.toEqual([ekb, ivb, ctb])
    expect(ha).not.toBe(hb)
  })

  it('the protected header is authenticated: changing one member of it fails decryption', async () => {
    const r = await recipient('ECDH-ES+A256KW', 'P-256')
    const jwe = await encryptToKey(r.jwk, plaintext, { kid: 'mine' })
    const [h, ...rest] = jwe.split('.')
    const header = JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>
    const forged = Buffer.from(JSON.stringify({ ...header, kid: 'theirs' })).toString('base64url')
    await expect(compactDecrypt([forged, ...rest].join('.'), r.privateKey)).rejects.toThrow()
  })

  it('caller headers cannot replace alg, enc or epk', async () => {
    const r = await recipient('ECDH-ES+A256KW', 'P-256')
    const jwe = await encryptToKey(r.jwk, plaintext, { alg: 'dir', enc: 'A128CBC-HS256', epk: 'x' })
    const h = decodeProtectedHeader(jwe)
    expect(h.alg).toBe('ECDH-ES+A256KW')
    expect(h.enc).toBe('A256GCM')
    expect(typeof h.epk).toBe('object')
    expect(text((await compactDecrypt(jwe, r.privateKey)).plaintext)).toBe(text(plaintext))
  })

  it('writes the header as canonical JSON (sorted members, epk as crv, kty, x, y), as KBS clients rebuild it', async () => {
    const r = await recipient('ECDH-ES+A256KW', 'P-256')
    const f = encryptJwe(await proofKey(r.jwk), plaintext, { kid: 'k', cty: 'c' })
    const header = Buffer.from(f.protected, 'base64url').toString()
    expect(header).toMatch(/^\{"alg":"ECDH-ES\+A256KW","cty":"c","enc":"A256GCM","epk":\{"crv":"P-256","kty":"EC","x":"[\w-]+","y":"[\w-]+"\},"kid":"k"\}$/)
    expect(text((await flattenedDecrypt(f, r.privateKey)).plaintext)).toBe(text(plaintext))
    expect(compactJwe(f).split('.')).toEqual([f.protected, f.encrypted_key, f.iv, f.ciphertext, f.tag])
  })

  it('refuses a private key, a curve JOSE has no name for, and a non-EC/RSA key', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    expect(() => encryptJwe(ec.privateKey, plaintext)).toThrow(expect.objectContaining({ code: 'ERR_KEY_UNSUPPORTED' }))
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
    expect(() => encryptJwe(k1.publicKey, plaintext)).toThrow(expect.objectContaining({ code: 'ERR_KEY_UNSUPPORTED' }))
    const ed = generateKeyPairSync('ed25519')
    expect(() => encryptJwe(ed.publicKey, plaintext)).toThrow(expect.objectContaining({ code: 'ERR_KEY_UNSUPPORTED' }))
  })
})

describe('workload keys (jwk-cache.ts)', () => {
  it('a point off its curve is refused before any key agreement could use it', async () => {
    const { jwk } = await recipient('ECDH-ES+A256KW', 'P-256')
    // The same x with y + 1: no longer on P-256 (an invalid-curve point must never reach ECDH).
    const y = Buffer.from(jwk.y!, 'base64url')
    y[y.length - 1] = (y[y.length - 1]! + 1) & 0xff
    await expect(proofKey({ ...jwk, y: y.toString('base64url') })).rejects.toThrow()
  })
})

describe('ES256 signing (jws.ts)', () => {
  it('jose verifies what it signs with the public key, and not with another', async () => {
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const token = signEs256({ kid: 'k1', typ: 'eat+jwt' }, { sub: 'w', n: 1, s: 'ü' }, k.privateKey)
    const { payload, protectedHeader } = await jwtVerify(token, k.publicKey, { algorithms: ['ES256'], typ: 'eat+jwt' })
    expect(payload).toEqual({ sub: 'w', n: 1, s: 'ü' })
    expect(protectedHeader).toEqual({ alg: 'ES256', kid: 'k1', typ: 'eat+jwt' })
    await expect(jwtVerify(token, other.publicKey)).rejects.toThrow()
  })

  it('the header cannot name another algorithm', async () => {
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const token = signEs256({ alg: 'none' }, {}, k.privateKey)
    expect(decodeProtectedHeader(token).alg).toBe('ES256')
    await expect(jwtVerify(token, k.publicKey, { algorithms: ['ES256'] })).resolves.toBeTruthy()
  })

  it('refuses a public key and a key that is not P-256', () => {
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    expect(() => signEs256({}, {}, k.publicKey)).toThrow(expect.objectContaining({ code: 'ERR_INTERNAL' }))
    expect(() => signEs256({}, {}, p384.privateKey)).toThrow(expect.objectContaining({ code: 'ERR_INTERNAL' }))
  })
})

describe('tokens the issuer signs (tokens.ts over jws.ts)', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness('sqlite')
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('a payload cannot replace the registered claims the issuer sets, and the JWKS verifies the result', async () => {
    const now = Math.floor(h.deps.clock().getTime() / 1000)
    const forged = { iss: 'https://evil.example', aud: 'anyone', exp: now + 10 ** 8, iat: now - 1000, jti: 'chosen', extra: 'kept' }
    const t = await h.deps.tokens.signJwt(forged, { audience: 'the-rp', ttlSeconds: 60, typ: 'keyward-tool+jwt' })
    const jwks = createLocalJWKSet(await h.deps.tokens.jwks())
    const { payload, protectedHeader } = await jwtVerify(t.token, jwks, { algorithms: ['ES256'], typ: 'keyward-tool+jwt', currentDate: h.deps.clock() })
    expect(payload).toMatchObject({ iss: h.deps.config.issuer, aud: 'the-rp', iat: now, exp: now + 60, jti: t.jti, extra: 'kept' })
    expect(t.jti).not.toBe('chosen')
    expect(protectedHeader.kid).toBe((await h.deps.tokens.jwks()).keys[0]!.kid)
    // The attestation-token verifier takes only its own kind: this signed tool credential is refused there.
    await expect(h.deps.tokens.verify(t.token, { audience: 'the-rp' })).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' })
  })
})
