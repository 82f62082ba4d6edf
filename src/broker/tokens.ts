// Attestation-result tokens: EAR (draft-ietf-rats-ear) claims in a JWT signed with ES256.
// Signing keys live in the store with their private half sealed, so every replica signs with
// the same key and serves the same JWKS. A rotated key stays published until every token it
// signed has expired.
import { createPrivateKey, randomUUID, type JsonWebKey, type KeyObject } from 'node:crypto'
import {
  jwtVerify,
  generateKeyPair,
  exportJWK,
  importJWK,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWK,
  type JWTPayload,
} from 'jose'
import { KeywardError } from '../errors.js'
import type { SigningKeyRow, Store } from '../store/types.js'
import { SIGNING_KEY_LABEL } from '../sealing/sealer.js'
import { isSpiffeKeyRow } from '../spiffe/authority.js'
import { EAR_PROFILE_DRAFT, EAR_PROFILE_VERAISON } from './ear.js'
import { signEs256 } from './jws.js'

/**
 * Explicit JWT types (RFC 8725 §3.11), so that no kind of token passes where another is
 * expected: attestation results are EAT (RFC 9711 application/eat+jwt); tool credentials are
 * keyward's own kind (docs/ear.md §Tool credentials), not RFC 9068 access tokens (at+jwt), which
 * carry `client_id` and come from the OAuth token endpoint.
 */
export const ATTESTATION_TYP = 'eat+jwt'
export const TOOL_CREDENTIAL_TYP = 'keyward-tool+jwt'

/**
 * An attestation result keyward issued, in either EAR form (src/broker/ear.ts): what the release
 * path relies on is the key binding; the rest is read through parseEar().
 */
export interface EarClaims extends JWTPayload {
  eat_profile: string
  cnf: { jkt: string }
  submods: Record<string, Record<string, unknown>>
}

/** Seals and unseals the private JWK at rest (implemented by src/sealing). */
export interface JsonSealer {
  sealJson(purpose: string, value: unknown): Promise<string>
  unsealJson<T>(purpose: string, sealed: string): Promise<T>
}

type JoseKey = Awaited<ReturnType<typeof importJWK>>

interface LoadedKey {
  kid: string
  publicJwk: JWK
  verifyKey: JoseKey
  /** node:crypto, for the synchronous signer in jws.ts. */
  signKey?: KeyObject
  createdAt: number
  retiredAt: number | null
}

export interface TokenIssuerOptions {
  store: Store
  sealer: JsonSealer
  issuer: string
  /** The audience of attestation tokens keyward itself accepts; issue() may name another for a token that leaves keyward. */
  audience: string
  ttlSeconds: number
  /** The longest lifetime signJwt grants (tool credentials); a retired key stays published this long. */
  maxTtlSeconds?: number
  clock: () => Date
}

export interface TokenIssuer {
  issue(claims: Record<string, unknown>, opts?: { audience?: string; ttlSeconds?: number }): Promise<{ token: string; jti: string; expiresAt: number }>
  verify(token: string, opts?: { audience?: string }): Promise<EarClaims>
  jwks(): Promise<{ keys: JWK[] }>
  rotate(): Promise<string>
  /** Forgets the loaded key list (another process rotated or retired a key): the next use reloads it. */
  invalidate(): void
  /** Signs an arbitrary JWT with the current key (tool credentials). */
  signJwt(payload: JWTPayload, opts: { audience: string; ttlSeconds: number; subject?: string; typ: string; issuer?: string }): Promise<{ token: string; jti: string; expiresAt: number }>
}

const SEAL_PURPOSE = SIGNING_KEY_LABEL
/** The longest a process signs with a key list it loaded, when no change notification arrives. */
export const KEY_CACHE_TTL_MS = 30_000

export async function createTokenIssuer(opts: TokenIssuerOptions): Promise<TokenIssuer> {
  let keys: LoadedKey[] = []
  let loadedAt = 0

  async function load(): Promise<void> {
    // The same table holds the SPIFFE authority's keys (src/spiffe/authority.ts): never token keys.
    const rows = (await opts.store.listSigningKeys()).filter((r) => !isSpiffeKeyRow(r))
    const next: LoadedKey[] = []
    for (const row of rows) next.push(await loadRow(row, keys.find((k) => k.kid === row.kid)))
    next.sort((a, b) => b.createdAt - a.createdAt)
    keys = next
    loadedAt = opts.clock().getTime()
  }

  async function loadRow(row: SigningKeyRow, cached: LoadedKey | undefined): Promise<LoadedKey> {
    if (cached) return { ...cached, retiredAt: row.retiredAt }
    const publicJwk = JSON.parse(row.publicJwk) as JWK
    return {
      kid: row.kid,
      publicJwk,
      verifyKey: await importJWK(publicJwk, 'ES256'),
      createdAt: row.createdAt,
      retiredAt: row.retiredAt,
    }
  }

  async function active(): Promise<LoadedKey> {
    // Other replicas may have rotated: their change notification invalidates the list at once
    // (src/store/changes.ts); reloading at least every 30 s is the backstop without one.
    if (loadedAt === 0 || opts.clock().getTime() - loadedAt > KEY_CACHE_TTL_MS) await load()
    let k = keys.find((x) => x.retiredAt === null)
    if (!k) {
      await createKey()
      await load()
      k = keys.find((x) => x.retiredAt === null)
      if (!k) throw new KeywardError('ERR_INTERNAL', 'no active signing key')
    }
    if (!k.signKey) {
      const row = (await opts.store.listSigningKeys()).find((r) => r.kid === k!.kid && !isSpiffeKeyRow(r))
      if (!row) throw new KeywardError('ERR_INTERNAL', 'signing key vanished')
      const priv = await opts.sealer.unsealJson<JWK>(SEAL_PURPOSE, row.sealedPrivate)
      k.signKey = createPrivateKey({ key: priv as JsonWebKey, format: 'jwk' })
    }
    return k
  }

  async function createKey(): Promise<string> {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
    const pub = await exportJWK(publicKey)
    const kid = await calculateJwkThumbprint(pub, 'sha256')
    const publicJwk = { ...pub, kid, alg: 'ES256', use: 'sig' }
    const priv = await exportJWK(privateKey)
    await opts.store.putSigningKey({
      kid,
      alg: 'ES256',
      publicJwk: JSON.stringify(publicJwk),
      sealedPrivate: await opts.sealer.sealJson(SEAL_PURPOSE, priv),
      createdAt: opts.clock().getTime(),
      retiredAt: null,
    })
    return kid
  }

  async function sign(payload: JWTPayload, audience: string | string[], ttlSeconds: number, typ: string, subject?: string, issuer = opts.issuer) {
    const k = await active()
    const now = Math.floor(opts.clock().getTime() / 1000)
    const jti = randomUUID()
    // The registered claims are set last, as jose's SignJWT setters did: a payload cannot override them.
    const claims: Record<string, unknown> = { ...payload, iss: issuer, aud: audience, iat: now, exp: now + ttlSeconds, jti }
    if (subject) claims.sub = subject
    return { token: signEs256({ kid: k.kid, typ }, claims, k.signKey!), jti, expiresAt: (now + ttlSeconds) * 1000 }
  }

  const maxTtl = Math.max(opts.maxTtlSeconds ?? opts.ttlSeconds, opts.ttlSeconds)
  await load()
  if (!keys.some((k) => k.retiredAt === null)) {
    await createKey()
    await load()
  }

  return {
    invalidate() {
      loadedAt = 0
    },
    async issue(claims, o = {}) {
      return sign(claims, o.audience ?? opts.audience, o.ttlSeconds ?? opts.ttlSeconds, ATTESTATION_TYP)
    },
    async signJwt(payload, o) {
      // An OAuth authorization server's tokens carry its RFC 8414 issuer URL (docs/agents.md).
      return sign(payload, o.audience, Math.min(o.ttlSeconds, maxTtl), o.typ, o.subject, o.issuer)
    },
    async verify(token, o = {}) {
      let kid: string | undefined
      try {
        kid = decodeProtectedHeader(token).kid
      } catch {
        throw new KeywardError('ERR_TOKEN_INVALID', 'token is not a JWS')
      }
      let k = keys.find((x) => x.kid === kid)
      if (!k) {
        await load()
        k = keys.find((x) => x.kid === kid)
      }
      if (!k) throw new KeywardError('ERR_TOKEN_INVALID', 'token signed by an unknown key')
      try {
        const { payload } = await jwtVerify(token, k.verifyKey, {
          issuer: opts.issuer,
          audience: o.audience ?? opts.audience,
          algorithms: ['ES256'],
          typ: ATTESTATION_TYP,
          currentDate: opts.clock(),
          requiredClaims: ['exp', 'iat', 'jti'],
        })
        // Either form keyward issues (a deployment may switch forms while tokens of the other live).
        if ((payload.eat_profile !== EAR_PROFILE_DRAFT && payload.eat_profile !== EAR_PROFILE_VERAISON) || typeof (payload.cnf as { jkt?: unknown } | undefined)?.jkt !== 'string') {
          throw new KeywardError('ERR_TOKEN_INVALID', 'token is not a keyward attestation result')
        }
        return payload as EarClaims
      } catch (e) {
        if (e instanceof KeywardError) throw e
        if (e instanceof joseErrors.JWTExpired) throw new KeywardError('ERR_TOKEN_INVALID', 'token expired')
        if (e instanceof joseErrors.JWTClaimValidationFailed && e.claim === 'typ') throw new KeywardError('ERR_TOKEN_INVALID', `token is not of type ${ATTESTATION_TYP}`)
        throw new KeywardError('ERR_TOKEN_INVALID', 'token verification failed', { cause: e })
      }
    },
    async jwks() {
      await load()
      const now = opts.clock().getTime()
      // A retired key stays published while anything it signed may still be valid.
      const grace = maxTtl * 1000 + 60_000
      return {
        keys: keys.filter((k) => k.retiredAt === null || now - k.retiredAt < grace).map((k) => k.publicJwk),
      }
    },
    async rotate() {
      await load()
      const kid = await createKey()
      const at = opts.clock().getTime()
      for (const k of keys) if (k.retiredAt === null) await opts.store.retireSigningKey(k.kid, at)
      await load()
      return kid
    },
  }
}
