// Shared set-up for the SPIFFE tests: one broker per file (test/broker/harness.ts) with a trust
// domain, the test policy granting a SPIFFE identity, and in-process callers attested with the
// testOnly Nitro chain (the real verifier, policy, DPoP and audit), through app.request().
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, TEST_PCR0, type Harness } from '../broker/harness.js'
import { createApp } from '../../src/broker/app.js'
import * as A from '../../src/broker/admin-services.js'
import { createSessionKey, type KeyAlg, type SessionKey } from '../../enclave-client/src/session-key.js'
import { bindingDigest } from '../../src/protocol/binding.js'

export const TRUST_DOMAIN = 'example.org'
/** What {workload} is for the testOnly Nitro documents: the PCR0 prefix of the workload id. */
export const NITRO_WORKLOAD = TEST_PCR0.slice(0, 24)
export const SPIFFE_ID = `spiffe://${TRUST_DOMAIN}/nitro/${NITRO_WORKLOAD}`
export const GRANTED_AUDIENCES = ['spiffe://example.org/db', 'https://api.example.org']

export const SPIFFE_POLICY = TEST_POLICY.replace(
  '    secrets: [db-password, api-key]\n',
  `    secrets: [db-password, api-key]\n    spiffe: { id: "spiffe://${TRUST_DOMAIN}/nitro/{workload}", audiences: [${GRANTED_AUDIENCES.map((a) => `"${a}"`).join(', ')}], jwtTtl: 5m, x509Ttl: 2h }\n`,
)

export type App = ReturnType<typeof createApp>
export const json = { 'content-type': 'application/json' }

export async function startSpiffeHarness(trustDomain = TRUST_DOMAIN): Promise<Harness> {
  const h = await startHarness('sqlite', { spiffe: { trustDomain } })
  await A.applyPolicy(h.deps, SPIFFE_POLICY, 'test')
  return h
}

export interface Caller {
  key: SessionKey
  token: string
}

/** A workload attested in-process with testOnly Nitro evidence bound to a fresh session key. */
export async function attestCaller(app: App, h: Harness, keyAlg: KeyAlg = 'ES256'): Promise<Caller> {
  const key = await createSessionKey(keyAlg, { exportable: true })
  const ch = (await (await app.request('/v1/challenge', { method: 'POST' })).json()) as { nonce: string }
  const nonce = Buffer.from(ch.nonce, 'base64url')
  const evidence = await testOnlyNitroCollector(h.pki).collect({ binding: bindingDigest(nonce, key.jktBytes), nonce })
  const r = await app.request('/v1/attest', { method: 'POST', headers: json, body: JSON.stringify({ tee: 'nitro', nonce: ch.nonce, key: key.publicJwk, evidence }) })
  if (r.status !== 200) throw new Error(`attest failed: ${r.status} ${await r.text()}`)
  return { key, token: ((await r.json()) as { token: string }).token }
}

/** POST to a DPoP-protected SPIFFE route as `caller` (or with no credentials). */
export async function postAs(app: App, caller: Caller | undefined, path: string, body: unknown) {
  const url = `http://localhost${path}`
  const headers: Record<string, string> = { ...json }
  if (caller) {
    headers.authorization = `DPoP ${caller.token}`
    headers.dpop = await caller.key.dpopProof('POST', url, caller.token)
  }
  const r = await app.request(url, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: r.status, body: (await r.json()) as Record<string, any> }
}

export async function x509SvidFor(app: App, caller: Caller, csr?: Uint8Array) {
  return postAs(app, caller, '/v1/spiffe/x509-svid', { csr: Buffer.from(csr ?? (await caller.key.certificationRequest())).toString('base64') })
}

/** The JWT-SVID inside a sealed release (the JWE to the caller's key holds the broker-signed release JWS). */
export async function openJwtSvid(caller: Caller, jwe: string): Promise<string> {
  const inner = new TextDecoder().decode(await caller.key.decrypt(jwe))
  const payload = JSON.parse(Buffer.from(inner.split('.')[1]!, 'base64url').toString('utf8')) as { value: string }
  return Buffer.from(payload.value, 'base64url').toString('utf8')
}

/** A scratch directory for PEM files handed to openssl. */
export function scratch(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-spiffe-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 })
  return dir
}

const run = promisify(execFile)
/** `openssl verify -x509_strict -purpose P` of a leaf with its untrusted chain against the bundle roots. */
export async function opensslVerify(dir: string, purpose: 'sslclient' | 'sslserver', at?: Date): Promise<{ ok: boolean; out: string }> {
  const args = ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', join(dir, 'bundle.pem'), '-untrusted', join(dir, 'chain.pem')]
  if (at) args.push('-attime', String(Math.floor(at.getTime() / 1000)))
  args.push(join(dir, 'leaf.pem'))
  try {
    const { stdout, stderr } = await run('openssl', args)
    return { ok: true, out: stdout + stderr }
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string }
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` }
  }
}

/** Splits a PEM bundle into its certificates. */
export function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []
}

/** The one URI SAN of a peer certificate as node:tls reports it, or undefined. */
export function peerSpiffeId(cert: { subjectaltname?: string } | undefined): string | undefined {
  const uris = (cert?.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:'))
  return uris.length === 1 ? uris[0]!.slice(4) : undefined
}

export interface TlsIdentity {
  key: string
  /** The SVID and its intermediate, PEM. */
  cert: string
  /** The trust bundle, PEM. */
  ca: string
}

/**
 * A real mutual-TLS 1.3 handshake over loopback between two SVID holders, each trusting only its
 * bundle and accepting only the peer SPIFFE ID it expects (as Envoy's SPIFFE validator does).
 * Resolves with the IDs each side saw, or rejects with the TLS error.
 */
export async function mutualTls(server: TlsIdentity, client: TlsIdentity, expect: { server: string; client: string }): Promise<{ serverSaw: string | undefined; clientSaw: string | undefined }> {
  const tls = await import('node:tls')
  let serverSaw: string | undefined
  const srv = tls.createServer({ key: server.key, cert: server.cert, ca: server.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => {
    serverSaw = peerSpiffeId(s.getPeerCertificate())
    if (serverSaw !== expect.client) return s.destroy()
    s.end('hello from the server')
  })
  srv.on('tlsClientError', () => undefined)
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res))
  const port = (srv.address() as { port: number }).port
  try {
    const clientSaw = await new Promise<string | undefined>((res, rej) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port,
        key: client.key,
        cert: client.cert,
        ca: client.ca,
        minVersion: 'TLSv1.3',
        checkServerIdentity: (_host, cert) => (peerSpiffeId(cert) === expect.server ? undefined : new Error(`unexpected server SPIFFE ID ${peerSpiffeId(cert)}`)),
      })
      let data = ''
      sock.on('data', (d: Buffer) => (data += d.toString()))
      sock.on('end', () => (data === 'hello from the server' ? res(peerSpiffeId(sock.getPeerCertificate())) : rej(new Error('the server closed without answering'))))
      sock.on('error', rej)
    })
    return { serverSaw, clientSaw }
  } finally {
    await new Promise<void>((res) => srv.close(() => res()))
  }
}
