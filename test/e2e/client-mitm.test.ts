// A man in the middle between the workload and a real broker: a local HTTP proxy that forwards
// everything and rewrites what the broker releases. It can encrypt anything to the client's key
// (the key is public, it saw it in /v1/attest), replay a genuine release to another request, and
// serve its own JWKS: the client must detect each (ERR_RELEASE_UNVERIFIED) and never hand out a
// value. Plain http:// off loopback is refused unless --insecure-http with a pinned JWKS.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, exportJWK, generateKeyPair, calculateJwkThumbprint, decodeJwt, type JWK } from 'jose'
import { startHarness, testOnlyNitroCollector, type Harness } from '../broker/harness.js'
import { createClient } from '../../enclave-client/src/index.js'
import { RELEASE_TYP, releaseAudience } from '../../src/protocol/binding.js'
import { encrypt } from '../enclave-client/helpers/stand-in-broker.js'
import { runBin } from '../enclave-client/helpers/proc.js'

type Rewrite = (path: string, body: Record<string, unknown>, key: JWK, dpop: string) => Promise<Record<string, unknown>>

interface Proxy {
  url: string
  rewrite?: Rewrite
  /** Genuine answers to secret releases, by path, in order. */
  seen: Record<string, unknown>[]
  close(): Promise<void>
}

async function startProxy(upstream: string): Promise<Proxy> {
  let key: JWK | undefined
  const p: Proxy = { url: '', seen: [], close: async () => undefined }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks)
        if (req.url === '/v1/attest') key = (JSON.parse(body.toString()) as { key: JWK }).key
        // node:http keeps the client's Host: the DPoP proof names the URL the client believes it
        // talks to (this proxy), as behind a transparent interceptor.
        const up = await new Promise<{ status: number; text: string }>((resolve, reject) => {
          const u = new URL(upstream)
          const out = request({ host: u.hostname, port: u.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
            const got: Buffer[] = []
            r.on('data', (c: Buffer) => got.push(c))
            r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(got).toString() }))
          })
          out.on('error', reject)
          out.end(body)
        })
        const ok = up.status >= 200 && up.status < 300
        let text = up.text
        if (ok && req.url?.startsWith('/v1/secrets/')) {
          const answer = JSON.parse(text) as Record<string, unknown>
          p.seen.push(answer)
          if (p.rewrite && key) text = JSON.stringify(await p.rewrite(req.url, answer, key, String(req.headers.dpop)))
        }
        res.writeHead(up.status, { 'content-type': 'application/json' })
        res.end(text)
      })().catch((e: unknown) => {
        res.writeHead(599)
        res.end(String(e))
      })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  p.close = () => new Promise<void>((r) => server.close(() => r()))
  return p
}

describe.each(['sqlite', 'postgres'] as const)('a man in the middle against the client (%s)', (backend) => {
  let h: Harness
  let proxy: Proxy
  let jwksFile: string
  let dir: string

  beforeAll(async () => {
    h = await startHarness(backend)
    dir = await mkdtemp(join(tmpdir(), 'kw-mitm-'))
    // The pinned trust anchor, taken from the broker directly (not through the proxy).
    jwksFile = join(dir, 'broker-jwks.json')
    await writeFile(jwksFile, await (await fetch(`${h.url}/.well-known/jwks.json`)).text())
  })
  afterAll(async () => {
    await proxy?.close()
    await h?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  async function through(rewrite: Rewrite | undefined, opts: { pinned?: boolean } = {}): Promise<{ value?: string; error?: { code: string; message: string } }> {
    await proxy?.close()
    proxy = await startProxy(h.url)
    proxy.rewrite = rewrite
    const client = createClient({ broker: proxy.url, collector: testOnlyNitroCollector(h.pki), retries: 0, ...(opts.pinned ? { brokerJwks: jwksFile } : {}) })
    try {
      // The first release passes untouched (it gives the proxy a genuine answer to replay).
      expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
      return { value: new TextDecoder().decode(await client.getSecret('db-password')) }
    } catch (e) {
      return { error: e as { code: string; message: string } }
    } finally {
      await client.close()
    }
  }

  const second = (f: Rewrite): Rewrite => async (path, body, key, dpop) => (proxy.seen.length === 2 ? f(path, body, key, dpop) : body)

  it('passes the genuine release through when nothing is changed (the proxy itself works)', async () => {
    expect(await through(undefined)).toEqual({ value: 'testOnly-db-password-9f2c' })
  })

  it('detects a value the proxy encrypted to the client key itself', async () => {
    const r = await through(second(async (_p, body, key) => ({ ...body, jwe: await encrypt(key, new TextEncoder().encode('attacker-chosen')) })))
    expect(r.value).toBeUndefined()
    expect(r.error?.code).toBe('ERR_RELEASE_UNVERIFIED')
  })

  it('detects a genuine signed release of the same secret replayed to a later request', async () => {
    const r = await through(second(async (_p, body) => ({ ...body, jwe: proxy.seen[0]!.jwe })))
    expect(r.value).toBeUndefined()
    expect(r.error?.code).toBe('ERR_RELEASE_UNVERIFIED')
  })

  it('with a pinned JWKS, detects a release the proxy signed with a key of its own', async () => {
    const mine = await generateKeyPair('ES256')
    const forge: Rewrite = async (_p, body, key, dpop) => {
      const jws = await new SignJWT({ keyward_release: { kind: 'secret', name: 'db-password', version: body.version }, dpop_jti: decodeJwt(dpop).jti, value: Buffer.from('attacker-chosen').toString('base64url') })
        .setProtectedHeader({ alg: 'ES256', typ: RELEASE_TYP, kid: 'mitm' })
        .setAudience(releaseAudience(await calculateJwkThumbprint(key)))
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(mine.privateKey)
      return { ...body, jwe: await encrypt(key, new TextEncoder().encode(jws)) }
    }
    const r = await through(second(forge), { pinned: true })
    expect(r.value).toBeUndefined()
    expect(r.error?.code).toBe('ERR_RELEASE_UNVERIFIED')
    // The same forgery is accepted by nothing else: pinned and untouched still works.
    expect(await through(undefined, { pinned: true })).toEqual({ value: 'testOnly-db-password-9f2c' })
  })
})

describe('plain HTTP to a broker off loopback', () => {
  const cli = (args: string[]) => runBin('keyward-client', ['--tee', 'tpm', '--retries', '0', '--timeout', '300', ...args])

  it('is refused before any connection, unless --insecure-http with a pinned --broker-jwks', async () => {
    const plain = await cli(['--broker', 'http://192.0.2.1:8080', 'get', 'db'])
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain('ERR_CONFIG: refusing plain http://')
    const noPin = await cli(['--broker', 'http://192.0.2.1:8080', '--insecure-http', 'get', 'db'])
    expect(noPin.code).toBe(2)
    expect(noPin.stderr).toContain('--insecure-http needs --broker-jwks')
    const dir = await mkdtemp(join(tmpdir(), 'kw-insecure-'))
    try {
      const k = await generateKeyPair('ES256')
      await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [await exportJWK(k.publicKey)] }))
      // Accepted as configuration: it goes on to the network (TEST-NET-1, unreachable).
      const pinned = await cli(['--broker', 'http://192.0.2.1:8080', '--insecure-http', '--broker-jwks', join(dir, 'jwks.json'), 'get', 'db'])
      expect(pinned.code).toBe(1)
      expect(pinned.stderr).toContain('ERR_UPSTREAM_UNAVAILABLE')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
