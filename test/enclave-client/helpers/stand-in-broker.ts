// A protocol-level stand-in for the broker (docs/protocol.md): challenge, attest with the binding
// checked (an echo collector's `binding`, or a TPM quote's TPMS_ATTEST extraData), DPoP-checked
// release of secrets, Vault tokens and tool credentials as JWE to the bound key.
import { expect } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { CompactEncrypt, EmbeddedJWK, SignJWT, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK } from 'jose'
import { RELEASE_TYP, releaseAudience } from '../../../src/protocol/binding.js'
import { bindingDigest, ZERO_STATE } from '../../../src/protocol/binding.js'
import { statementDigest } from '../../../src/protocol/allowlist-state.js'
import { fromB64url, toHex } from '../../../src/util/bytes.js'
import { startServer, type Recorded, type Reply, type TestServer } from './http-server.js'

/** TPM 2.0 Part 2 §10.12.12 TPMS_ATTEST: magic(4) type(2) qualifiedSigner(TPM2B_NAME) extraData(TPM2B_DATA). */
export function quoteExtraData(quoteB64: string): string {
  const q = Buffer.from(quoteB64, 'base64')
  const signerLen = q.readUInt16BE(6)
  const off = 8 + signerLen
  return q.subarray(off + 2, off + 2 + q.readUInt16BE(off)).toString('hex')
}

export interface Broker {
  srv: TestServer
  tokens: string[]
  deny?: { code: string; failures: unknown[] }
  attestFailures: number
  challengeFailures?: number
  ttlMs: number
  revoked: boolean
  /** Forget every issued token once (the broker's ERR_TOKEN_INVALID). */
  forget?: boolean
  /** Requests to this path get no answer (the client waits mid-flow); `arrived` is told when one comes. */
  hold?: { path: string; arrived?: () => void }
}

export const secrets: Record<string, Uint8Array> = { db: new TextEncoder().encode('hunter2\n'), bin: new Uint8Array(randomBytes(64)) }

export async function encrypt(jwk: JWK, plaintext: Uint8Array): Promise<string> {
  const alg = jwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW'
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(await importJWK(jwk, alg))
}

/** The stand-in's release signing key, published at /.well-known/jwks.json. */
const signing = await generateKeyPair('ES256')
export const standInJwks = { keys: [{ ...(await exportJWK(signing.publicKey)), kid: 'stand-in', alg: 'ES256', use: 'sig' }] }

/** As the broker's sealRelease: a JWS naming the release and the request's DPoP jti, encrypted to the key. */
async function seal(jwk: JWK, r: Recorded, label: { kind: string; name: string; version?: number }, value: Uint8Array): Promise<string> {
  const jws = await new SignJWT({ keyward_release: label, dpop_jti: decodeJwt(String(r.headers.dpop)).jti, value: Buffer.from(value).toString('base64url') })
    .setProtectedHeader({ alg: 'ES256', kid: 'stand-in', typ: RELEASE_TYP })
    .setAudience(releaseAudience(await calculateJwkThumbprint(jwk)))
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(signing.privateKey)
  return encrypt(jwk, new TextEncoder().encode(jws))
}

/** Minimal broker: challenge, attest (binding checked), DPoP-checked release. */
export async function startBroker(): Promise<Broker> {
  const nonces = new Set<string>()
  const bound = new Map<string, JWK>() // token -> key
  const b: Broker = { srv: undefined as unknown as TestServer, tokens: [], attestFailures: 0, ttlMs: 60_000, revoked: false }
  const err = (status: number, code: string, message: string, failures?: unknown[]): Reply => ({ status, body: { error: { code, message, failures } } })
  async function authed(r: Recorded): Promise<{ key: JWK } | { reply: Reply }> {
    const m = /^DPoP (.+)$/.exec(String(r.headers.authorization ?? ''))
    if (b.forget) {
      bound.clear()
      b.forget = false
    }
    const key = m ? bound.get(m[1]!) : undefined
    if (!m || !key) return { reply: err(401, 'ERR_TOKEN_INVALID', 'unknown token') }
    if (b.revoked) return { reply: err(403, 'ERR_REFERENCE_REVOKED', 'reference value revoked') }
    const proof = String(r.headers.dpop ?? '')
    const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256', 'ES384', 'PS256'] })
    const jwk = decodeProtectedHeader(proof).jwk as JWK
    expect(await calculateJwkThumbprint(jwk)).toBe(await calculateJwkThumbprint(key))
    expect(payload.htm).toBe(r.method)
    expect(payload.htu).toBe(r.url.split('?')[0])
    expect(payload.ath).toBe(createHash('sha256').update(m[1]!).digest('base64url'))
    return { key }
  }
  b.srv = await startServer(async (r) => {
    if (b.hold?.path === r.path) {
      b.hold.arrived?.()
      return 'hang'
    }
    if (r.path === '/.well-known/jwks.json') return { status: 200, body: standInJwks }
    if (r.path === '/v1/challenge') {
      if (b.challengeFailures) {
        b.challengeFailures--
        return err(502, 'ERR_STORE', 'database busy')
      }
      const n = randomBytes(32).toString('base64url')
      nonces.add(n)
      return { status: 200, body: { nonce: n, expiresAt: new Date(Date.now() + 60_000).toISOString() } }
    }
    if (r.path === '/v1/attest') {
      const body = r.body as { tee: string; nonce: string; key: JWK; evidence: { binding?: string; quote?: string }; runtimeState?: { allowlist: { records: string[]; statement: string } } }
      if (!nonces.delete(body.nonce)) return err(403, 'ERR_NONCE_USED', 'nonce unknown or used')
      if (b.attestFailures > 0) {
        b.attestFailures--
        return err(503, 'ERR_STORE', 'database busy')
      }
      if (b.deny) return err(403, b.deny.code, 'denied by policy web', b.deny.failures)
      const jkt = fromB64url(await calculateJwkThumbprint(body.key))!
      const st = body.runtimeState?.allowlist.statement
      const state = st ? statementDigest(Buffer.from(st, 'hex')) : ZERO_STATE
      const expected = toHex(bindingDigest(fromB64url(body.nonce)!, jkt, state))
      const got = typeof body.evidence.quote === 'string' ? quoteExtraData(body.evidence.quote) : body.evidence.binding
      if (got !== expected) return err(403, 'ERR_BINDING_MISMATCH', 'binding mismatch')
      const token = `tok-${b.tokens.length + 1}`
      b.tokens.push(token)
      bound.set(token, body.key)
      return { status: 200, body: { token, expiresAt: new Date(Date.now() + b.ttlMs).toISOString(), policy: 'web', claims: { cnf: { jkt: await calculateJwkThumbprint(body.key) } } } }
    }
    const auth = await authed(r)
    if ('reply' in auth) return auth.reply
    const key = auth.key
    const sm = /^\/v1\/secrets\/(.+)$/.exec(r.path)
    if (sm && r.method === 'GET') {
      const v = secrets[sm[1]!]
      if (!v) return err(403, 'ERR_NOT_GRANTED', 'not granted')
      return { status: 200, body: { name: sm[1], version: 3, jwe: await seal(key, r, { kind: 'secret', name: sm[1]!, version: 3 }, v) } }
    }
    if (r.path === '/v1/vault/token') {
      const payload = { token: 'hvs.test', wrapToken: (r.body as { wrap?: boolean }).wrap ? 'hvs.wrap' : undefined, accessor: 'acc', leaseDuration: 300 }
      return { status: 200, body: { jwe: await seal(key, r, { kind: 'vault-token', name: 'vault' }, new TextEncoder().encode(JSON.stringify(payload))), accessor: 'acc', leaseDuration: 300 } }
    }
    const cm = /^\/v1\/credentials\/(.+)$/.exec(r.path)
    if (cm) return { status: 200, body: { tool: cm[1], kind: 'jwt', expiresAt: new Date(Date.now() + 60_000).toISOString(), jwe: await seal(key, r, { kind: 'tool-credential', name: cm[1]! }, new TextEncoder().encode('eyJ.tool.cred')) } }
    return err(404, 'ERR_NOT_FOUND', 'no route')
  })
  return b
}

