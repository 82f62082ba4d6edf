// The session key: non-extractable private halves, DPoP proofs a verifier accepts (RFC 9449
// §4.2), and decryption of JWEs made the way the broker makes them (docs/protocol.md step 5).
import { describe, it, expect } from 'vitest'
import { createHash, webcrypto } from 'node:crypto'
import { CompactEncrypt, EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose'
import { createSessionKey, KEY_ALGS } from '../../enclave-client/src/session-key.js'
import { DecryptError } from '../../enclave-client/src/errors.js'

async function encryptTo(jwk: JWK, plaintext: Uint8Array): Promise<string> {
  const alg = jwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW'
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(await importJWK(jwk, alg))
}

describe.each(KEY_ALGS)('session key %s', (keyAlg) => {
  it('exports only public members and a matching thumbprint and SPKI', async () => {
    const k = await createSessionKey(keyAlg)
    expect(Object.keys(k.publicJwk).sort()).toEqual(keyAlg === 'RSA-OAEP-256' ? ['e', 'kty', 'n'] : ['crv', 'kty', 'x', 'y'])
    expect(k.jkt).toBe(await calculateJwkThumbprint(k.publicJwk, 'sha256'))
    expect(Buffer.from(k.jktBytes).toString('base64url')).toBe(k.jkt)
    const fromSpki = await webcrypto.subtle.importKey(
      'spki',
      k.spki,
      keyAlg === 'RSA-OAEP-256' ? { name: 'RSA-OAEP', hash: 'SHA-256' } : { name: 'ECDH', namedCurve: keyAlg === 'ES256' ? 'P-256' : 'P-384' },
      true,
      [],
    )
    const jwk = (await webcrypto.subtle.exportKey('jwk', fromSpki)) as JWK
    expect(await calculateJwkThumbprint(jwk, 'sha256')).toBe(k.jkt)
  })

  it('signs DPoP proofs that verify with the embedded key and carry htm, htu, iat, jti, ath', async () => {
    const k = await createSessionKey(keyAlg)
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJjbmYiOnt9fQ.sig'
    const proof = await k.dpopProof('get', 'https://broker.example:8443/v1/secrets/db?x=1#frag', token)
    const header = decodeProtectedHeader(proof)
    expect(header.typ).toBe('dpop+jwt')
    expect(header.alg).toBe(k.dpopAlg)
    expect(header.jwk).toEqual(k.publicJwk)
    const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [k.dpopAlg] })
    expect(payload.htm).toBe('GET')
    expect(payload.htu).toBe('https://broker.example:8443/v1/secrets/db')
    expect(payload.ath).toBe(createHash('sha256').update(token).digest('base64url'))
    expect(Math.abs((payload.iat as number) - Date.now() / 1000)).toBeLessThan(5)
    expect(typeof payload.jti).toBe('string')
    const again = await k.dpopProof('GET', 'https://broker.example:8443/v1/secrets/db', token)
    const p2 = (await jwtVerify(again, EmbeddedJWK)).payload
    expect(p2.jti).not.toBe(payload.jti)
    // A proof by another key does not carry this key's thumbprint.
    const other = await createSessionKey(keyAlg)
    const h3 = decodeProtectedHeader(await other.dpopProof('GET', 'https://b/x', token))
    expect(await calculateJwkThumbprint(h3.jwk as JWK, 'sha256')).not.toBe(k.jkt)
  })

  it('decrypts JWEs to its public key and refuses others', async () => {
    const k = await createSessionKey(keyAlg)
    const secret = new TextEncoder().encode(`s3cret for ${keyAlg}`)
    expect(await k.decrypt(await encryptTo(k.publicJwk, secret))).toEqual(secret)
    const other = await createSessionKey(keyAlg)
    const err = await k.decrypt(await encryptTo(other.publicJwk, secret)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DecryptError)
    expect((err as DecryptError).code).toBe('ERR_UNSEAL')
    await expect(k.decrypt('not.a.jwe.at.all')).rejects.toBeInstanceOf(DecryptError)
  })
})

describe('session key algorithms', () => {
  it('refuses a JWE with an algorithm outside the allow-list (dir)', async () => {
    const k = await createSessionKey('ES256')
    const jwe = await new CompactEncrypt(new Uint8Array([1])).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(new Uint8Array(32))
    await expect(k.decrypt(jwe)).rejects.toBeInstanceOf(DecryptError)
  })
})
