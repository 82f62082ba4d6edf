// HTTPS with optional mutual TLS for the admin API: with tls.clientCa, admin requests need a
// client certificate from that CA on top of the admin credential; workload endpoints do not.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, fetch as ufetch } from 'undici'
import { startHarness, type Harness } from './harness.js'

let dir: string
let h: Harness

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-tls-'))
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=testOnly CA'])
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=testOnly ${name}`])
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`)
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`])
  }
  h = await startHarness('sqlite', { tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), clientCa: join(dir, 'ca.pem') } })
})

afterAll(async () => {
  await h?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('HTTPS and admin mTLS', () => {
  it('serves HTTPS; the admin API needs a client certificate from the configured CA as well as the credential', async () => {
    const url = `https://127.0.0.1:${h.server.port}`
    const ca = readFileSync(join(dir, 'ca.pem'))
    const anonymous = new Agent({ connect: { ca } })
    const withCert = new Agent({ connect: { ca, cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) } })
    const auth = { authorization: `Bearer ${h.adminToken}` }

    expect((await ufetch(`${url}/healthz`, { dispatcher: anonymous })).status).toBe(200)
    const challenge = await ufetch(`${url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', dispatcher: anonymous })
    expect(challenge.status).toBe(200)

    const noCert = await ufetch(`${url}/v1/admin/secrets`, { headers: auth, dispatcher: anonymous })
    expect(noCert.status).toBe(401)
    expect(((await noCert.json()) as { error: { code: string } }).error.code).toBe('ERR_UNAUTHORIZED')
    expect((await ufetch(`${url}/v1/admin/secrets`, { headers: auth, dispatcher: withCert })).status).toBe(200)
    expect((await ufetch(`${url}/v1/admin/secrets`, { dispatcher: withCert })).status).toBe(401)
    await anonymous.close()
    await withCert.close()
  })
})
