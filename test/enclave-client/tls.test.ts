// TLS to the broker through the undici Agent: a private CA bundle and a client certificate
// (mutual TLS). Certificates are made with openssl for a local HTTPS server on 127.0.0.1.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { z } from 'zod'
import { createHttpClient } from '../../enclave-client/src/http.js'
import { NetworkError } from '../../enclave-client/src/errors.js'

const openssl = (args: string[], cwd: string) => promisify(execFile)('openssl', args, { cwd })

let dir: string
let server: Server
let url: string
const seen: string[] = []

async function issue(cwd: string, name: string, subj: string, ext: string): Promise<void> {
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], cwd)
  await writeFile(join(cwd, `${name}.ext`), ext)
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`], cwd)
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kw-tls-'))
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=testOnly keyward CA'], dir)
  await issue(dir, 'server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  await issue(dir, 'client', '/CN=testOnly-workload', 'extendedKeyUsage=clientAuth\n')
  const r = (f: string) => readFile(join(dir, f))
  server = createServer({ key: await r('server.key'), cert: await r('server.pem'), ca: await r('ca.pem'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate()
    seen.push(String(peer.subject?.CN))
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ ok: true }))
  })
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise((r) => server?.close(r))
  if (dir) await rm(dir, { recursive: true, force: true })
})

const Ok = z.object({ ok: z.literal(true) })

describe('TLS options', () => {
  it('trusts the CA bundle and presents the client certificate (files or PEM text)', async () => {
    const h = createHttpClient({ broker: url, retries: 0, tls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key') } })
    await expect(h.request({ method: 'GET', path: '/x' }, Ok)).resolves.toEqual({ ok: true })
    await h.close()
    const pem = await readFile(join(dir, 'ca.pem'), 'utf8')
    const h2 = createHttpClient({ broker: url, retries: 0, tls: { ca: pem, cert: await readFile(join(dir, 'client.pem')), key: await readFile(join(dir, 'client.key')) } })
    await expect(h2.request({ method: 'GET', path: '/x' }, Ok)).resolves.toEqual({ ok: true })
    await h2.close()
    expect(seen).toEqual(['testOnly-workload', 'testOnly-workload'])
  })

  it('refuses a broker whose certificate is not from the CA bundle', async () => {
    const h = createHttpClient({ broker: url, retries: 0, tls: { cert: join(dir, 'client.pem'), key: join(dir, 'client.key') } })
    await expect(h.request({ method: 'GET', path: '/x' }, Ok)).rejects.toBeInstanceOf(NetworkError)
    await h.close()
  })

  it('fails without a client certificate when the broker requires one', async () => {
    const h = createHttpClient({ broker: url, retries: 0, tls: { ca: join(dir, 'ca.pem') } })
    await expect(h.request({ method: 'GET', path: '/x' }, Ok)).rejects.toBeInstanceOf(NetworkError)
    await h.close()
  })
})
