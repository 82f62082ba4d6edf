// Workload public keys, imported once. A workload presents the same JWK in its attest request,
// in every DPoP proof and as the recipient of every release; importing it (a WebCrypto importKey)
// and hashing its thumbprint (a WebCrypto digest) each time cost a threadpool round trip apiece,
// more than the signature check they serve. Both are cached by the key's public members only, so
// whatever else a JWK carries cannot make two keys share an entry. jose still does the work on a
// miss (RFC 7638 members and their validation, the import); a CryptoKey is immutable, so sharing
// one between requests changes nothing but the cost. Bounded: the oldest entries are dropped.
import { calculateJwkThumbprint, importJWK, type JWK } from 'jose'
import { KeywardError } from '../errors.js'
import { remember } from '../util/bounded-map.js'

const MAX_ENTRIES = 4096
type PublicKey = Exclude<Awaited<ReturnType<typeof importJWK>>, Uint8Array>

const thumbprints = new Map<string, Promise<string>>()
const keys = new Map<string, Promise<PublicKey>>()

/** The members that define a public key (RFC 7638 §3.2 plus the kty), as a cache key. */
function publicMembers(jwk: JWK): string {
  return JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.n, jwk.e])
}

function cached<V>(m: Map<string, Promise<V>>, k: string, make: () => Promise<V>): Promise<V> {
  const hit = m.get(k)
  if (hit) return hit
  const p = make()
  // A failure is not remembered: the next call retries (and fails the same way, with its own error).
  p.catch(() => m.delete(k))
  return remember(m, k, p, MAX_ENTRIES)
}

/** The RFC 7638 SHA-256 thumbprint (base64url), as protocol/binding.ts jwkThumbprint computes it. */
export function cachedThumbprint(jwk: JWK): Promise<string> {
  // Other key types (oct's member is its secret) are never cached.
  if (jwk.kty !== 'EC' && jwk.kty !== 'RSA') return calculateJwkThumbprint(jwk, 'sha256')
  return cached(thumbprints, publicMembers(jwk), () => calculateJwkThumbprint(jwk, 'sha256'))
}

const refusePrivate = (jwk: JWK): void => {
  if (jwk.d !== undefined || jwk.p !== undefined || jwk.k !== undefined) throw new KeywardError('ERR_KEY_UNSUPPORTED', 'a public key was expected')
  if (jwk.kty !== 'EC' && jwk.kty !== 'RSA') throw new KeywardError('ERR_KEY_UNSUPPORTED', 'an EC or RSA public key was expected')
}

/** The JWK imported as a public key for `alg`; a private JWK is refused before any lookup. */
export function cachedPublicKey(jwk: JWK, alg: string): Promise<PublicKey> {
  try {
    refusePrivate(jwk)
  } catch (e) {
    return Promise.reject(e)
  }
  return cached(keys, `${alg}:${publicMembers(jwk)}`, async () => {
    const key = await importJWK({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, n: jwk.n, e: jwk.e, ext: true } as JWK, alg)
    if (key instanceof Uint8Array || key.type !== 'public') throw new KeywardError('ERR_KEY_UNSUPPORTED', 'a public key was expected')
    return key
  })
}
