// Verifying what the broker releases (docs/protocol.md "Signed releases"). The JWE only proves the
// value was encrypted to our key, which is public: anyone between broker and client could make
// one. So the plaintext is a JWS by the broker's token signing key, naming what was asked for, the
// DPoP proof jti of this very request and our key's thumbprint. The trust anchor is a pinned JWKS
// (--broker-jwks) or the broker's /.well-known/jwks.json fetched over verified TLS or loopback.
import { readFileSync } from 'node:fs'
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose'
import { z } from 'zod'
import { RELEASE_TYP, releaseAudience } from '../../src/protocol/binding.js'
import { fromB64url } from '../../src/util/bytes.js'
import { ClientConfigError, ReleaseUnverifiedError } from './errors.js'

export interface ReleaseExpectation {
  kind: 'secret' | 'vault-token' | 'tool-credential' | 'jwt-svid'
  name: string
  /** The jti of the DPoP proof sent with the request this answers. */
  dpopJti: string
  /** Our session key's thumbprint. */
  jkt: string
}

export interface ReleaseVerifier {
  /** The released value, once the JWS is verified and matches `expect`; else ReleaseUnverifiedError. */
  open(jws: string, expect: ReleaseExpectation): Promise<{ value: Uint8Array; version?: number }>
}

const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })
const Payload = z.object({
  keyward_release: z.object({ kind: z.string(), name: z.string(), version: z.number().int().optional() }),
  dpop_jti: z.string(),
  value: z.string(),
})

export function readJwksFile(path: string): JSONWebKeySet {
  let parsed
  try {
    parsed = Jwks.safeParse(JSON.parse(readFileSync(path, 'utf8')))
  } catch (e) {
    throw new ClientConfigError(`cannot read the broker JWKS file ${path}`, { cause: e })
  }
  if (!parsed.success) throw new ClientConfigError(`${path} is not a JWKS with at least one key`)
  return parsed.data as unknown as JSONWebKeySet
}

/** `pinned`: the trusted keys; else `fetchJwks` loads them (again once when a kid is unknown: key rotation). */
export function createReleaseVerifier(o: { pinned?: JSONWebKeySet; fetchJwks: () => Promise<unknown> }): ReleaseVerifier {
  let keys: Promise<ReturnType<typeof createLocalJWKSet>> | undefined
  const load = (): Promise<ReturnType<typeof createLocalJWKSet>> => {
    keys ??= (async () => {
      if (o.pinned) return createLocalJWKSet(o.pinned)
      const j = Jwks.safeParse(await o.fetchJwks())
      if (!j.success) throw new ReleaseUnverifiedError('the broker JWKS is malformed')
      return createLocalJWKSet(j.data as unknown as JSONWebKeySet)
    })().catch((e: unknown) => {
      keys = undefined
      throw e
    })
    return keys
  }

  async function verify(jws: string, expect: ReleaseExpectation, refetched: boolean): Promise<z.infer<typeof Payload>> {
    try {
      const { payload } = await jwtVerify(jws, await load(), { typ: RELEASE_TYP, algorithms: ['ES256'], audience: releaseAudience(expect.jkt) })
      const p = Payload.safeParse(payload)
      if (!p.success) throw new ReleaseUnverifiedError('malformed release claims')
      return p.data
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey && !o.pinned && !refetched) {
        keys = undefined
        return verify(jws, expect, true)
      }
      if (e instanceof ReleaseUnverifiedError) throw e
      throw new ReleaseUnverifiedError(e instanceof joseErrors.JOSEError ? e.code : 'not a signed release', { cause: e })
    }
  }

  return {
    async open(jws, expect) {
      const p = await verify(jws, expect, false)
      const r = p.keyward_release
      if (r.kind !== expect.kind || r.name !== expect.name) throw new ReleaseUnverifiedError(`signed for ${r.kind} ${r.name}`)
      if (p.dpop_jti !== expect.dpopJti) throw new ReleaseUnverifiedError('signed for another request')
      const value = fromB64url(p.value)
      if (!value) throw new ReleaseUnverifiedError('malformed value')
      return { value, version: r.version }
    },
  }
}
