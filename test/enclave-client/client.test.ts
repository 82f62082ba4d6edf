// createClient against a protocol-level stand-in broker on 127.0.0.1: the binding the client
// commits to equals src/protocol/binding.ts over (nonce, jkt, state); releases carry valid DPoP
// proofs and decrypt; denials surface as DeniedError without retry; 5xx restarts the flow.
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { createClient, type KeywardClient } from '../../enclave-client/src/client.js'
import type { Collector, CollectRequest } from '../../enclave-client/src/collectors/types.js'
import { ClientClosedError, ClientConfigError, DeniedError, ProtocolError } from '../../enclave-client/src/errors.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import { decodeStatement, statementDigest } from '../../src/protocol/allowlist-state.js'
import { makeAgent, serveAgent } from '../helpers/allowlist-agent.js'
import { fromB64url, toHex } from '../../src/util/bytes.js'
import { startServer } from './helpers/http-server.js'
import { secrets, startBroker, type Broker } from './helpers/stand-in-broker.js'

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

  it('asks the agent for a fresh statement per attestation and binds its digest', async () => {
    broker = await startBroker()
    const agent = makeAgent({ allowlistDigest: new Uint8Array(32).fill(9), mode: 'enforce', progTag: new Uint8Array(8).fill(1), loadTime: 77n })
    const dir = await mkdtemp(join(tmpdir(), 'kw-rs-'))
    const sock = join(dir, 'agent.sock')
    let denials = 0n
    const srv = await serveAgent(agent, sock, () => ({ denials }))
    const col = echoCollector()
    client = createClient({ broker: broker.srv.url, collector: col, runtimeState: sock, retries: 0 })
    await client.attest()
    const body = broker.srv.requests.find((r) => r.path === '/v1/attest')!.body as { nonce: string; runtimeState: { allowlist: { records: string[]; statement: string } } }
    expect(body.runtimeState.allowlist.records).toEqual(agent.records.map(toHex))
    const st = decodeStatement(Buffer.from(body.runtimeState.allowlist.statement, 'hex')).body
    expect(toHex(st.nonce)).toBe(toHex(fromB64url(body.nonce)!))
    // A denial after the first attestation is in the very next statement, with no manual step.
    denials = 3n
    const ev = await client.evidence(new Uint8Array(32).fill(5))
    const jkt = fromB64url(await calculateJwkThumbprint(ev.key as JWK))!
    const sent = (ev as { runtimeState: { allowlist: { statement: string } } }).runtimeState.allowlist.statement
    expect(decodeStatement(Buffer.from(sent, 'hex')).body.denials).toBe(3n)
    expect(col.requests.at(-1)!.binding).toEqual(bindingDigest(new Uint8Array(32).fill(5), jkt, statementDigest(Buffer.from(sent, 'hex'))))
    await new Promise((r) => srv.close(r))
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

  it('retries a failing challenge within the flow, not nested (retries + 1 attempts in all)', async () => {
    broker = await startBroker()
    broker.challengeFailures = 3
    client = createClient({ broker: broker.srv.url, collector: echoCollector(), retries: 3, baseDelayMs: 1 })
    await client.attest()
    expect(broker.srv.requests.map((r) => r.path)).toEqual(['/v1/challenge', '/v1/challenge', '/v1/challenge', '/v1/challenge', '/v1/attest'])
    broker.challengeFailures = 4
    await expect(client.attest()).rejects.toMatchObject({ httpStatus: 502, code: 'ERR_STORE' })
    expect(broker.srv.requests).toHaveLength(9)
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

  it('re-attests once when the broker refuses a token it issued (ERR_TOKEN_INVALID), not for other denials', async () => {
    broker = await startBroker()
    client = createClient({ broker: broker.srv.url, collector: echoCollector(), retries: 0 })
    await client.attest()
    broker.revoked = true
    const err = await client.getSecret('db').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DeniedError)
    expect((err as DeniedError).code).toBe('ERR_REFERENCE_REVOKED')
    expect(broker.tokens).toEqual(['tok-1'])
    broker.revoked = false
    broker.forget = true
    expect(await client.getSecret('db')).toEqual(secrets.db)
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
