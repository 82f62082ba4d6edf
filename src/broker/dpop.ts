// DPoP proof verification (RFC 9449 §4.3): the caller proves possession of the key an
// attestation token is bound to (cnf.jkt). A stolen token without the key gets nothing, and a
// captured request (token + proof) opens nothing a second time on any replica: proof ids are
// consumed in the shared store.
import { createHash, KeyObject, randomBytes } from 'node:crypto'
import { jwtVerify, decodeProtectedHeader, type JWK } from 'jose'
import { cachedPublicKey, cachedThumbprint } from './jwk-cache.js'
import { KeywardError } from '../errors.js'
import type { BrokerConfig } from './config.js'
import type { Store } from '../store/types.js'

export const DPOP_ALGS = ['ES256', 'ES384', 'PS256', 'RS256']
/** Proofs older or newer than this are refused (RFC 9449 §11.1 suggests a short window). */
export const IAT_WINDOW_S = 60

export interface DpopCheck {
  proof: string
  method: string
  /** The request URL as the client addressed it (see publicRequestUrl in http/request.ts); query and fragment are ignored (§4.3 item 9). */
  url: string
  /** Absent for a proof over a request that carries no access token (POST /v1/attest). */
  accessToken?: string
  /** The `nonce` claim the proof must carry (RFC 9449 §8), when the server gave one. */
  nonce?: string
  /** The thumbprint the token is bound to. */
  jkt: string
  now: Date
  /** With server nonces required: whether the proof's nonce claim is one this broker issued and still honours. */
  nonceValid?: (nonce: unknown) => Promise<boolean>
}

/** The key a valid proof was signed with: its JWK, and the same key for node:crypto (the release JWE is encrypted to it). */
export interface ProofKey {
  jwk: JWK
  publicKey: KeyObject
}

/** Records a proof id until expiresAt; false when it was seen before (anywhere the store is shared). */
export type UseProofId = (id: string, expiresAt: number) => Promise<boolean>

const fail = (m: string): never => {
  throw new KeywardError('ERR_DPOP_INVALID', m)
}

export async function verifyDpopProof(c: DpopCheck, useProofId: UseProofId): Promise<ProofKey> {
  let header
  try {
    header = decodeProtectedHeader(c.proof)
  } catch {
    return fail('DPoP proof is not a JWS')
  }
  if (header.typ !== 'dpop+jwt') fail('DPoP proof typ must be dpop+jwt')
  if (!header.alg || !DPOP_ALGS.includes(header.alg)) fail('DPoP proof alg not allowed')
  const jwk = header.jwk as JWK | undefined
  if (jwk !== undefined && (jwk.d !== undefined || jwk.p !== undefined || jwk.k !== undefined)) fail('DPoP proof jwk must be public')
  let payload
  let key
  try {
    // The embedded key, as jose's EmbeddedJWK takes it, imported once per key (src/broker/jwk-cache.ts).
    if (jwk === undefined || typeof jwk !== 'object') throw new TypeError('no jwk')
    key = await cachedPublicKey(jwk, header.alg!)
    ;({ payload } = await jwtVerify(c.proof, key, { algorithms: DPOP_ALGS, typ: 'dpop+jwt', currentDate: c.now }))
  } catch {
    return fail('DPoP proof signature invalid')
  }
  if (payload.htm !== c.method) fail('DPoP htm does not match the request method')
  if (typeof payload.htu !== 'string') return fail('DPoP htu missing')
  let proofHtu: URL
  try {
    proofHtu = new URL(payload.htu)
  } catch {
    return fail('DPoP htu is not a URL')
  }
  if (withoutQuery(proofHtu) !== withoutQuery(new URL(c.url))) fail('DPoP htu does not match the request URL')
  const now = Math.floor(c.now.getTime() / 1000)
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > IAT_WINDOW_S) fail('DPoP proof iat outside the accepted window')
  if (typeof payload.jti !== 'string' || payload.jti.length < 8 || payload.jti.length > 256) fail('DPoP jti missing')
  const ath = c.accessToken === undefined ? undefined : createHash('sha256').update(c.accessToken).digest('base64url')
  if (payload.ath !== ath) fail('DPoP ath does not match the access token')
  if (c.nonce !== undefined && payload.nonce !== c.nonce) fail('DPoP nonce does not match')
  if ((await cachedThumbprint(jwk!)) !== c.jkt) fail('DPoP key is not the key the token is bound to')
  if (c.nonceValid && !(await c.nonceValid(payload.nonce))) throw new KeywardError('ERR_DPOP_NONCE', 'a DPoP proof with the nonce from the DPoP-Nonce header is required')
  // Kept until the proof's iat can no longer pass on any replica (window plus the same again for skew).
  const id = createHash('sha256').update(`${c.jkt}:${payload.jti as string}`).digest('hex')
  if (!(await useProofId(id, ((payload.iat as number) + 2 * IAT_WINDOW_S) * 1000))) fail('DPoP proof replayed')
  // The CryptoKey's own KeyObject: no second import, no second copy of the key.
  return { jwk: jwk!, publicKey: KeyObject.from(key) }
}

/**
 * Server nonces (RFC 9449 §8) live in the challenge-nonce table under their own id space (a DPoP
 * nonce is never an attestation challenge), are reusable until they expire, and are shared by
 * every replica.
 */
export function dpopNonces(store: Store, ttlMs: number, clock: () => Date) {
  const id = (nonce: string) => createHash('sha256').update(`keyward-dpop-nonce:${nonce}`).digest('hex')
  return {
    async issue(): Promise<string> {
      const nonce = randomBytes(24).toString('base64url')
      const now = clock().getTime()
      await store.insertNonce({ id: id(nonce), createdAt: now, expiresAt: now + ttlMs })
      return nonce
    },
    valid: async (nonce: unknown): Promise<boolean> =>
      typeof nonce === 'string' && nonce.length <= 128 && (await store.nonceLive(id(nonce), clock().getTime())),
  }
}

/** RFC 9449 §4.3 item 9: scheme and authority compared normalised (URL does that), path exact. */
function withoutQuery(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])
const isLoopbackHost = (host: string): boolean => LOOPBACK.has(host) || host.startsWith('127.')

/**
 * Refuses a configuration where the public origin would come from request headers a remote
 * client chooses: a broker listening beyond loopback must be told its publicUrl.
 */
export function checkPublicOrigin(config: Pick<BrokerConfig, 'host' | 'publicUrl'>): void {
  if (config.publicUrl === undefined && !isLoopbackHost(config.host)) {
    throw new KeywardError('ERR_CONFIG', `publicUrl is required when listening on ${config.host} (DPoP proofs are checked against it)`)
  }
}
