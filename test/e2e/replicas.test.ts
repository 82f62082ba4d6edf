// Several `keyward serve` processes on one PostgreSQL act as one broker: an AK registered through
// one replica is trusted by the other, one nonce sent to both at once is admitted exactly once,
// a token issued by one replica is honoured by the other, and audit stays one valid chain. With
// three replicas taken in turn: a signing-key rotation or a policy change made through one is
// enforced by the others once their change notification arrives (no waiting on a TTL), and a
// replica killed with SIGKILL right after acknowledging a write loses nothing.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { keywardAdminInProcess } from '../helpers/cli.js'
import { PG_ADMIN_URL } from '../store/helpers.js'
import { startSwtpm, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { createClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import { decodeProtectedHeader } from 'jose'
import { waitFor } from '../helpers/durability.js'
import { errorCodeOf } from '../helpers/errors.js'

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
let adminToken: string
const brokers: BrokerProcess[] = []
const urls: string[] = []

async function startBroker(config: string): Promise<string> {
  const b = await startBrokerProcess(config, { DATABASE_URL: dbUrl })
  brokers.push(b)
  return b.url
}

const admin = (...args: string[]): Promise<string> => keywardAdminInProcess(join(dir, 'data'), args, { DATABASE_URL: dbUrl })

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
  // The first start applies the migrations; the other two start side by side.
  urls.push(await startBroker(config))
  urls.push(...(await Promise.all([startBroker(config), startBroker(config)])))
  adminToken = (await admin('credential', 'create', 'admin', 'replicas')).trim()
  await writeFile(join(dir, 'policy.yaml'), POLICY)
  await admin('policy', 'apply', join(dir, 'policy.yaml'))
  await admin('secret', 'put', 'shared-secret', '--text', 'testOnly-replicated-secret')
}, 180_000)

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

/** An admin API call through one replica. */
async function adminApi(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${url}/v1/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: r.status, body: (await r.json()) as Record<string, unknown> }
}

/** A replica's count of change notifications about `topic` (keyward_cache_invalidations_total). */
async function invalidations(url: string, topic: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const m = new RegExp(`^keyward_cache_invalidations_total\\{topic="${topic.replace('*', '\\*')}"\\} (\\d+)`, 'm').exec(text)
  return m ? Number(m[1]) : 0
}

/** Resolves once every replica in `urls` has received one more notification about `topic` than in `before`. */
async function notified(targets: string[], topic: string, before: number[]): Promise<void> {
  await waitFor(async () => (await Promise.all(targets.map((u) => invalidations(u, topic)))).every((n, i) => n > before[i]!))
}

describe('three replicas on one PostgreSQL, requests taken in turn', () => {
  it('run the full flow through each; a key rotation and a policy change made through one hold on the others; SIGKILL loses no acknowledged write', async () => {
    const collector = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state') })
    const via = (i: number) => createClient({ broker: urls[i % 3]!, collector, retries: 0 })
    const clients = [0, 1, 2].map(via)
    // Full flow on each replica in turn (the AK was enrolled through replica 0 above).
    for (const c of clients) expect(new TextDecoder().decode(await c.getSecret('shared-secret'))).toBe('testOnly-replicated-secret')

    // Rotation through replica 0: replicas 1 and 2 sign with the new key as soon as they are told,
    // not after their 30 s key-cache backstop.
    const keysBefore = await Promise.all([urls[1]!, urls[2]!].map((u) => invalidations(u, 'signing_keys')))
    const rotated = await adminApi(urls[0]!, 'POST', '/keys/rotate')
    expect(rotated.status).toBe(200)
    await notified([urls[1]!, urls[2]!], 'signing_keys', keysBefore)
    for (const i of [1, 2]) {
      const fresh = via(i)
      expect(decodeProtectedHeader((await fresh.attest()).token).kid).toBe(rotated.body.kid)
      await fresh.close()
    }

    // A policy change through replica 1 (the condition can no longer hold) is enforced by 0 and 2.
    const polBefore = await Promise.all([urls[0]!, urls[2]!].map((u) => invalidations(u, 'policies')))
    const strict = POLICY.replace('akAttributesVerified == true', 'akAttributesVerified == false')
    expect((await adminApi(urls[1]!, 'POST', '/policies', { source: strict })).status).toBe(201)
    await notified([urls[0]!, urls[2]!], 'policies', polBefore)
    for (const i of [0, 2]) {
      const fresh = via(i)
      expect(await errorCodeOf(fresh.attest())).toBe('ERR_POLICY_DENIED')
      await fresh.close()
    }
    expect((await adminApi(urls[2]!, 'POST', '/policies', { source: POLICY })).status).toBe(201)

    // A write acknowledged by replica 2, which then dies without a chance to flush anything.
    const put = await adminApi(urls[2]!, 'PUT', '/secrets/shared-secret', { text: 'testOnly-after-kill' })
    expect(put.status).toBe(201)
    const victim = brokers[2]!
    const exited = new Promise((r) => victim.process.once('exit', r))
    victim.process.kill('SIGKILL')
    await exited
    const after = via(0)
    expect(new TextDecoder().decode(await after.getSecret('shared-secret'))).toBe('testOnly-after-kill')
    await Promise.all([...clients, after].map((c) => c.close()))
    expect((JSON.parse(await admin('audit', 'verify')) as { ok: boolean }).ok).toBe(true)
  }, 90_000)
})
