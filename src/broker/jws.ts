// Compact JWS signing with ES256 (RFC 7515, RFC 7518 §3.4) for the tokens keyward issues.
//
// Why not jose's SignJWT: jose 6 signs through WebCrypto, a promise job on the libuv pool per
// signature; on one core that is 0.17 ms per token against 0.05 ms for node:crypto's synchronous
// sign (issue 17's notes). Every attestation and every release signs one token, so that is the
// whole difference. Only signing is written here: every token keyward accepts is verified by
// jose (tokens.ts, dpop.ts), and the tests verify what this signs with jose too.
import { sign, type KeyObject } from 'node:crypto'
import { KeywardError } from '../errors.js'
import { toB64url } from '../util/bytes.js'

const b64json = (v: unknown): string => toB64url(new TextEncoder().encode(JSON.stringify(v)))

/** `header` gets alg: ES256 (it cannot name another); `key` is a P-256 private KeyObject. */
export function signEs256(header: Readonly<Record<string, unknown>>, payload: Readonly<Record<string, unknown>>, key: KeyObject): string {
  if (key.type !== 'private' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new KeywardError('ERR_INTERNAL', 'ES256 needs a P-256 private key')
  }
  const signingInput = `${b64json({ ...header, alg: 'ES256' })}.${b64json(payload)}`
  const signature = sign('sha256', Buffer.from(signingInput, 'ascii'), { key, dsaEncoding: 'ieee-p1363' })
  return `${signingInput}.${toB64url(signature)}`
}
