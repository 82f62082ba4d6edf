// createClient against a protocol-level stand-in broker on 127.0.0.1: the binding the client
// commits to equals src/broker/binding.ts over (nonce, jkt, state); releases carry valid DPoP
// proofs and decrypt; denials surface as DeniedError without retry; 5xx restarts the flow.
import { describe, it, expect, afterEach } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CompactEncrypt, EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose'
import { createClient, type KeywardClient } from '../../enclave-client/src/client.js'
import type { Collector, CollectRequest } from '../../enclave-client/src/collectors/types.js'
import { ClientClosedError, ClientConfigError, DeniedError, ProtocolError } from '../../enclave-client/src/errors.js'
import { bindingDigest, ZERO_STATE } from '../../src/broker/binding.js'
import { encodeAllowlistState, stateDigest } from '../../src/policy/allowlist-state.js'
import { fromB64url, toHex } from '../../src/util/bytes.js'
import { startServer, type Recorded, type Reply, type TestServer } from './helpers/http-server.js'

/** A collector that puts the binding in its evidence, so the stand-in can check it. */
function echoCollector(): Collector & { requests: CollectRequest[] } {
  const requests: CollectRequest[] = []
  return {
    tee: 'tpm',
    requests,
    async available() {
      return true
    },
    async collect(req) {
      requests.push(req)
      return { binding: toHex(req.binding) }
    },
  }
}

interface Broker {
  srv: TestServer
  tokens: string[]
  deny?: { code: string; failures: unknown[] }
  attestFailures: number
  ttlMs: number
  revoked: boolean
}

const secrets: Record<string, Uint8Array> = { db: new TextEncoder().encode('hunter2\n'), bin: new Uint8Array(randomBytes(64)) }

async function encrypt(jwk: JWK, plaintext: Uint8Array): Promise<string> {
  const alg = jwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW'
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(await importJWK(jwk, alg))
}

/** Minimal broker: challenge, attest (binding checked), DPoP-checked release. */
async function startBroker(): Promise<Broker> {
  const nonces = new Set<string>()
  const bound = new Map<string, JWK>() // token -> key
  const b: Broker = { srv: undefined as unknown as TestServer, tokens: [], attestFailures: 0, ttlMs: 60_000, revoked: false }
  const err = (status: number, code: string, message: string, failures?: unknown[]): Reply => ({ status, body: { error: { code, message, failures } } })
  async function authed(r: Recorded): Promise<{ key: JWK } | { reply: Reply }> {
    const m = /^DPoP (.+)$/.exec(String(r.headers.authorization ?? ''))
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
    if (r.path === '/v1/challenge') {
      const n = randomBytes(32).toString('base64url')
      nonces.add(n)
      return { status: 200, body: { nonce: n, expiresAt: new Date(Date.now() + 60_000).toISOString() } }
    }
    if (r.path === '/v1/attest') {
      const body = r.body as { tee: string; nonce: string; key: JWK; evidence: { binding: string }; runtimeState?: { allowlist: { records: string[] } } }
      if (!nonces.delete(body.nonce)) return err(403, 'ERR_NONCE_USED', 'nonce unknown or used')
      if (b.attestFailures > 0) {
        b.attestFailures--
        return err(503, 'ERR_STORE', 'database busy')
      }
      if (b.deny) return err(403, b.deny.code, 'denied by policy web', b.deny.failures)
      const jkt = fromB64url(await calculateJwkThumbprint(body.key))!
      const last = body.runtimeState?.allowlist.records.at(-1)
      const state = last ? stateDigest(Buffer.from(last, 'hex')) : ZERO_STATE
      const expected = toHex(bindingDigest(fromB64url(body.nonce)!, jkt, state))
      if (body.evidence.binding !== expected) return err(403, 'ERR_BINDING_MISMATCH', 'binding mismatch')
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
      return { status: 200, body: { name: sm[1], version: 3, jwe: await encrypt(key, v) } }
    }
    if (r.path === '/v1/vault/token') {
      const payload = { token: 'hvs.test', wrapToken: (r.body as { wrap?: boolean }).wrap ? 'hvs.wrap' : undefined, accessor: 'acc', leaseDuration: 300 }
      return { status: 200, body: { jwe: await encrypt(key, new TextEncoder().encode(JSON.stringify(payload))), accessor: 'acc', leaseDuration: 300 } }
    }
    const cm = /^\/v1\/credentials\/(.+)$/.exec(r.path)
    if (cm) return { status: 200, body: { tool: cm[1], expiresAt: new Date(Date.now() + 60_000).toISOString(), jwe: await encrypt(key, new TextEncoder().encode('eyJ.tool.cred')) } }
    return err(404, 'ERR_NOT_FOUND', 'no route')
  })
  return b
}

let broker: Broker | undefined
let client: KeywardClient | undefined
afterEach(async () => {
  await client?.close()
  await broker?.srv.close()
  client = undefined
  broker = undefined
})

describe('createClient', () => {
  it.each(['ES256', 'ES384', 'RSA-OAEP-256'] as const)('attests with the binding over nonce and key, then releases (%s)', async (keyAlg) => {
    broker = await startBroker()
    const col = echoCollector()
    client = createClient({ broker: broker.srv.url, collector: col, keyAlg, retries: 0 })
    const a = await client.attest()
    expect(a.token).toBe('tok-1')
    expect(a.policy).toBe('web')
    expect(a.expiresAt.getTime()).toBeGreaterThan(Date.now())
    expect(col.requests).toHaveLength(1)
    expect(col.requests[0]!.nonce).toHaveLength(32)
    expect(await client.getSecret('db')).toEqual(secrets.db)
    expect(await client.getSecret('bin')).toEqual(secrets.bin)
    expect(await client.vaultToken({ wrap: true })).toEqual({ token: 'hvs.test', wrapToken: 'hvs.wrap', accessor: 'acc', leaseDuration: 300 })
    const cred = await client.credential('github')
    expect(cred.tool).toBe('github')
    expect(cred.token).toBe('eyJ.tool.cred')
    // One attestation served every release.
    expect(broker.tokens).toEqual(['tok-1'])
  })

  it('binds the runtime state: the last allowlist record digest is the binding state', async () => {
    broker = await startBroker()
    const rec = (denials: bigint): string =>
      toHex(encodeAllowlistState({ allowlistDigest: new Uint8Array(32).fill(9), mode: 'enforce', progTag: new Uint8Array(8).fill(1), denials, loadTime: 77n }))
    const dir = await mkdtemp(join(tmpdir(), 'kw-rs-'))
    const log = join(dir, 'allowlist.log')
    await writeFile(log, `{"seq":0,"record":"${rec(0n)}"}\n{"seq":1,"record":"${rec(2n)}"}\n`)
    const col = echoCollector()
    client = createClient({ broker: broker.srv.url, collector: col, runtimeState: log, retries: 0 })
    await client.attest()
    const body = broker.srv.requests.find((r) => r.path === '/v1/attest')!.body as { runtimeState: { allowlist: { records: string[] } } }
    expect(body.runtimeState.allowlist.records).toEqual([rec(0n), rec(2n)])
    const ev = await client.evidence(new Uint8Array(32).fill(5))
    const expected = bindingDigest(new Uint8Array(32).fill(5), fromB64url(await calculateJwkThumbprint(ev.key as JWK))!, stateDigest(Buffer.from(rec(2n), 'hex')))
    expect(col.requests.at(-1)!.binding).toEqual(expected)
    await writeFile(log, '{"seq":0,"record":"00"}\n')
    await expect(client.attest()).rejects.toBeInstanceOf(ClientConfigError)
    await rm(dir, { recursive: true, force: true })
  })

  it('surfaces a denial with the broker reasons, without retrying', async () => {
    broker = await startBroker()
    const failures = [{ rule: 'claims.measurement in refs("web")', message: 'measurement not in reference values' }]
    broker.deny = { code: 'ERR_POLICY_DENIED', failures }
    client = createClient({ broker: broker.srv.url, collector: echoCollector(), retries: 4, baseDelayMs: 1 })
    const err = await client.getSecret('db').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DeniedError)
    expect(err).toMatchObject({ code: 'ERR_POLICY_DENIED', failures })
    expect(broker.srv.requests.filter((r) => r.path === '/v1/attest')).toHaveLength(1)
  })

  it('restarts from a fresh challenge when attest fails with 5xx', async () => {
    broker = await startBroker()
    broker.attestFailures = 2
    const col = echoCollector()
    client = createClient({ broker: broker.srv.url, collector: col, retries: 3, baseDelayMs: 1 })
    await client.attest()
    expect(broker.srv.requests.map((r) => r.path)).toEqual(['/v1/challenge', '/v1/attest', '/v1/challenge', '/v1/attest', '/v1/challenge', '/v1/attest'])
    expect(new Set(col.requests.map((r) => toHex(r.nonce))).size).toBe(3)
  })

  it('re-attests before expiry and reports a failed renewal', async () => {
    broker = await startBroker()
    broker.ttlMs = 1500 // renewal margin is 1 s: renews about 0.5 s after each attestation
    client = createClient({ broker: broker.srv.url, collector: echoCollector(), retries: 0 })
    await client.attest()
    const renewed: string[] = []
    const errors: Error[] = []
    const r = client.startRenewal(60_000, (e) => errors.push(e), (a) => renewed.push(a.token))
    await new Promise((res) => setTimeout(res, 1300))
    expect(renewed.length).toBeGreaterThanOrEqual(1)
    expect(renewed[0]).toBe('tok-2')
    broker.deny = { code: 'ERR_REFERENCE_REVOKED', failures: [{ message: 'reference value revoked' }] }
    await new Promise((res) => setTimeout(res, 1300))
    r.stop()
    expect(errors.length).toBeGreaterThanOrEqual(1)
    expect(errors[0]).toBeInstanceOf(DeniedError)
    expect((errors[0] as DeniedError).code).toBe('ERR_REFERENCE_REVOKED')
  })

  it('re-attests for a release when the token has expired', async () => {
    broker = await startBroker()
    broker.ttlMs = 1000
    client = createClient({ broker: broker.srv.url, collector: echoCollector(), retries: 0 })
    await client.getSecret('db')
    await client.getSecret('db')
    expect(broker.tokens).toEqual(['tok-1', 'tok-2'])
  })

  it('rejects malformed broker answers and use after close', async () => {
    const srv = await startServer(() => ({ status: 200, body: { nonce: 'short', expiresAt: 'x' } }))
    client = createClient({ broker: srv.url, collector: echoCollector(), retries: 0 })
    await expect(client.attest()).rejects.toBeInstanceOf(ProtocolError)
    await client.close()
    await expect(client.attest()).rejects.toBeInstanceOf(ClientClosedError)
    await srv.close()
  })
})
