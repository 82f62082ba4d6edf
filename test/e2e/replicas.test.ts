// Several `keyward serve` processes on one PostgreSQL act as one broker: an AK registered through
// one replica is trusted by the other, one nonce sent to both at once is admitted exactly once,
// a token issued by one replica is honoured by the other, and audit stays one valid chain.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { keywardAdmin, startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { PG_ADMIN_URL } from '../store/helpers.js'
import { startSwtpm, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { createClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: replicated
spec:
  tees: [tpm]
  conditions:
    - name: registered-ak
      expr: claims.details.akAttributesVerified == true
  grants:
    secrets: [shared-secret]
`

let tpm: Swtpm
let dir: string
let dbName: string
let dbUrl: string
const brokers: BrokerProcess[] = []
const urls: string[] = []

async function startBroker(config: string): Promise<string> {
  const b = await startBrokerProcess(config, { DATABASE_URL: dbUrl })
  brokers.push(b)
  return b.url
}

const admin = (...args: string[]): Promise<string> => keywardAdmin(join(dir, 'data'), args, { DATABASE_URL: dbUrl })

beforeAll(async () => {
  dbName = `keyward_replicas_${randomBytes(5).toString('hex')}`
  const c = new pg.Client({ connectionString: PG_ADMIN_URL })
  await c.connect()
  await c.query(`CREATE DATABASE ${dbName}`)
  await c.end()
  const u = new URL(PG_ADMIN_URL)
  u.pathname = `/${dbName}`
  dbUrl = u.toString()
  tpm = await startSwtpm({ ekCert: true })
  dir = await mkdtemp(join(tmpdir(), 'kw-replicas-'))
  const ca = join(dir, 'ek-ca.pem')
  await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
  const config = join(dir, 'keyward.yaml')
  // One data dir holds the shared local keyring (replicas on other hosts would share it, or use Vault Transit).
  await writeFile(config, `host: 127.0.0.1\nport: 0\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\n`)
  urls.push(await startBroker(config))
  urls.push(await startBroker(config))
  await writeFile(join(dir, 'policy.yaml'), POLICY)
  await admin('policy', 'apply', join(dir, 'policy.yaml'))
  await admin('secret', 'put', 'shared-secret', '--text', 'testOnly-replicated-secret')
}, 120_000)

afterAll(async () => {
  for (const b of brokers) await b.stop()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
  const c = new pg.Client({ connectionString: PG_ADMIN_URL })
  await c.connect()
  await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  await c.end()
})

describe('two broker processes on one PostgreSQL', () => {
  it('share AK registration, nonces (exactly one wins), tokens and the audit chain', async () => {
    const collector = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state') })
    // Register through replica A; attest through replica B.
    const viaA = createClient({ broker: urls[0]!, collector, retries: 0 })
    const enrolToken = (JSON.parse(await admin('enrol', 'token', '--workload', 'replicated-svc')) as { token: string }).token
    expect(await viaA.register('replicated-svc', { enrolToken })).toMatchObject({ workload: 'replicated-svc', status: 'enrolled' })
    const viaB = createClient({ broker: urls[1]!, collector, retries: 0 })
    expect((await viaB.attest()).policy).toBe('replicated')

    // One nonce from A, one evidence body, sent to both replicas at the same time.
    const { nonce } = (await (await fetch(`${urls[0]}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
    const body = JSON.stringify(await viaB.evidence(Buffer.from(nonce, 'base64url')))
    const results = await Promise.all(
      [urls[0]!, urls[1]!, urls[0]!, urls[1]!].map(async (u) => {
        const r = await fetch(`${u}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        return { status: r.status, body: (await r.json()) as { token?: string; error?: { code: string } } }
      }),
    )
    expect(results.filter((r) => r.status === 200)).toHaveLength(1)
    expect(results.filter((r) => r.body.error?.code === 'ERR_NONCE_USED')).toHaveLength(3)

    // A token issued by B opens a secret on A (shared signing keys and attestations).
    expect(new TextDecoder().decode(await viaB.getSecret('shared-secret'))).toBe('testOnly-replicated-secret')
    const crossA = createClient({ broker: urls[0]!, collector, retries: 0 })
    expect(new TextDecoder().decode(await crossA.getSecret('shared-secret'))).toBe('testOnly-replicated-secret')

    // Both replicas appended to one audit chain, and it verifies.
    const v = JSON.parse(await admin('audit', 'verify')) as { ok: boolean; count?: number }
    expect(v.ok).toBe(true)
    await Promise.all([viaA.close(), viaB.close(), crossA.close()])
  })
})
