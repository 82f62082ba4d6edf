// DPoP proof verification (RFC 9449 §4.3): the caller proves possession of the key an
// attestation token is bound to (cnf.jkt). A stolen token without the key gets nothing.
import { createHash } from 'node:crypto'
import { jwtVerify, EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, type JWK } from 'jose'
import { KeywardError } from '../errors.js'

const DPOP_ALGS = ['ES256', 'ES384', 'PS256', 'RS256']
/** Proofs older or newer than this are refused (RFC 9449 §11.1 suggests a short window). */
const IAT_WINDOW_S = 60

export interface DpopCheck {
  proof: string
  method: string
  /** The request URL; query and fragment are ignored (RFC 9449 §4.3 item 9). */
  url: string
  /** Absent for a proof over a request that carries no access token (POST /v1/attest). */
  accessToken?: string
  /** The `nonce` claim the proof must carry (RFC 9449 §8), when the server gave one. */
  nonce?: string
  /** The thumbprint the token is bound to. */
  jkt: string
  now: Date
}

/** Remembers seen proof ids for the iat window, so a captured proof cannot be replayed on this replica. */
export function createReplayCache(max = 100_000): { seen(jti: string, now: number): boolean } {
  const m = new Map<string, number>()
  return {
    seen(jti, now) {
      for (const [k, exp] of m) {
        if (exp > now && m.size < max) break
        m.delete(k)
      }
      if (m.has(jti)) return true
      m.set(jti, now + IAT_WINDOW_S * 2000)
      return false
    },
  }
}

export async function verifyDpopProof(c: DpopCheck, replay: ReturnType<typeof createReplayCache>): Promise<JWK> {
  const fail = (m: string): never => {
    throw new KeywardError('ERR_DPOP_INVALID', m)
  }
  let header
  try {
    header = decodeProtectedHeader(c.proof)
  } catch {
    return fail('DPoP proof is not a JWS')
  }
  if (header.typ !== 'dpop+jwt') fail('DPoP proof typ must be dpop+jwt')
  if (!header.alg || !DPOP_ALGS.includes(header.alg)) fail('DPoP proof alg not allowed')
  let payload
  try {
    ;({ payload } = await jwtVerify(c.proof, EmbeddedJWK, { algorithms: DPOP_ALGS, typ: 'dpop+jwt', currentDate: c.now }))
  } catch {
    return fail('DPoP proof signature invalid')
  }
  const jwk = header.jwk as JWK
  if (jwk.d !== undefined || jwk.p !== undefined) fail('DPoP proof jwk must be public')
  const u = new URL(c.url)
  const htu = `${u.protocol}//${u.host}${u.pathname}`
  if (payload.htm !== c.method) fail('DPoP htm does not match the request method')
  if (typeof payload.htu !== 'string') return fail('DPoP htu missing')
  let proofHtu: URL
  try {
    proofHtu = new URL(payload.htu)
  } catch {
    return fail('DPoP htu is not a URL')
  }
  if (`${proofHtu.protocol}//${proofHtu.host}${proofHtu.pathname}` !== htu) fail('DPoP htu does not match the request URL')
  const now = Math.floor(c.now.getTime() / 1000)
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > IAT_WINDOW_S) fail('DPoP proof iat outside the accepted window')
  if (typeof payload.jti !== 'string' || payload.jti.length < 8 || payload.jti.length > 256) fail('DPoP jti missing')
  const ath = c.accessToken === undefined ? undefined : createHash('sha256').update(c.accessToken).digest('base64url')
  if (payload.ath !== ath) fail('DPoP ath does not match the access token')
  if (c.nonce !== undefined && payload.nonce !== c.nonce) fail('DPoP nonce does not match')
  if ((await calculateJwkThumbprint(jwk, 'sha256')) !== c.jkt) fail('DPoP key is not the key the token is bound to')
  if (replay.seen(`${c.jkt}:${payload.jti as string}`, c.now.getTime())) fail('DPoP proof replayed')
  return jwk
}
