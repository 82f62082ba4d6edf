// The imported-key cache (src/broker/jwk-cache.ts): a hit must never hand one key's import or
// thumbprint to another key, whatever else the JWKs carry, and a private JWK is never imported.
import { describe, expect, it } from 'vitest'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, jwtVerify, type JWK } from 'jose'
import { cachedPublicKey, cachedThumbprint } from '../../src/broker/jwk-cache.js'

async function keyPair(alg: 'ES256' | 'ES384' | 'PS256' = 'ES256') {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  return { publicKey, privateKey, jwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) }
}

describe('jwk cache', () => {
  it('gives each key its own thumbprint, as jose computes it, on misses and on hits', async () => {
    const a = await keyPair()
    const b = await keyPair()
    for (let i = 0; i < 2; i++) {
      expect(await cachedThumbprint(a.jwk)).toBe(await calculateJwkThumbprint(a.jwk, 'sha256'))
      expect(await cachedThumbprint(b.jwk)).toBe(await calculateJwkThumbprint(b.jwk, 'sha256'))
    }
    expect(await cachedThumbprint(a.jwk)).not.toBe(await cachedThumbprint(b.jwk))
    // Members outside the key (kid, use, alg) change neither the thumbprint nor the entry.
    expect(await cachedThumbprint({ ...a.jwk, kid: 'x', use: 'sig' })).toBe(await cachedThumbprint(a.jwk))
  })

  it('imports a key that verifies only its own signatures, on a hit too', async () => {
    const a = await keyPair()
    const b = await keyPair()
    const signedByB = await new SignJWT({ n: 1 }).setProtectedHeader({ alg: 'ES256' }).sign(b.privateKey)
    await cachedPublicKey(a.jwk, 'ES256') // miss
    const hit = await cachedPublicKey({ ...a.jwk, kid: 'other' }, 'ES256')
    await expect(jwtVerify(signedByB, hit)).rejects.toThrow()
    await expect(jwtVerify(signedByB, await cachedPublicKey(b.jwk, 'ES256'))).resolves.toBeTruthy()
  })

  it('keeps keys apart by algorithm: an ES256 import is not reused for another algorithm', async () => {
    const a = await keyPair()
    await cachedPublicKey(a.jwk, 'ES256')
    await expect(cachedPublicKey(a.jwk, 'ES384')).rejects.toThrow()
  })

  it('refuses a private JWK and a symmetric one, even after the public half was cached', async () => {
    const a = await keyPair()
    await cachedPublicKey(a.jwk, 'ES256')
    await expect(cachedPublicKey(a.privateJwk, 'ES256')).rejects.toMatchObject({ code: 'ERR_KEY_UNSUPPORTED' })
    await expect(cachedPublicKey({ kty: 'oct', k: 'AAAA' } as JWK, 'HS256')).rejects.toMatchObject({ code: 'ERR_KEY_UNSUPPORTED' })
  })

  it('never caches symmetric thumbprints (two oct keys differ only in their secret member)', async () => {
    const t1 = await cachedThumbprint({ kty: 'oct', k: 'AAAA' })
    const t2 = await cachedThumbprint({ kty: 'oct', k: 'BBBB' })
    expect(t1).not.toBe(t2)
  })

  it('does not remember a failed import: a malformed key fails every time', async () => {
    const bad = { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' } as JWK
    await expect(cachedPublicKey(bad, 'ES256')).rejects.toThrow()
    await expect(cachedPublicKey(bad, 'ES256')).rejects.toThrow()
  })
})
