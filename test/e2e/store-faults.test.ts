// The store goes away under a running `keyward serve`: PostgreSQL connections terminated
// (pg_terminate_backend) while the database refuses new ones, and a full disk under SQLite (a
// small tmpfs as the data directory). Writes in flight answer 201 or 503 ERR_STORE_UNAVAILABLE,
// nothing else; /readyz reports the PostgreSQL outage and the full disk; once the resource is back the broker
// recovers by itself; afterwards every acknowledged write is intact and the audit chain verifies.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { createLocation, PG_ADMIN_URL, type TestLocation } from '../store/helpers.js'
import { runKeywardInProcess } from '../helpers/cli.js'
import { verifyStoredAuditChain } from '../../src/audit/verify-store.js'
import { openSqliteStore } from '../../src/store/sqlite.js'
import { checkAllSecrets, seededRng, waitFor, type Expected } from '../helpers/durability.js'

interface Rig {
  broker: BrokerProcess
  token: string
  expected: Expected
  sent: Uint8Array[]
}

async function startRig(dataDir: string, env: NodeJS.ProcessEnv): Promise<Rig> {
  const cred = await runKeywardInProcess(['credential', 'create', 'admin', 'faults', '--data-dir', dataDir], env)
  if (cred.code !== 0) throw new Error(cred.stderr)
  const config = join(dataDir, '..', 'keyward.yaml')
  writeFileSync(config, `host: 127.0.0.1\nport: 0\ndataDir: ${dataDir}\nlogLevel: fatal\nlimits:\n  perAddress: { ratePerSecond: 100000, burst: 100000 }\n  perWorkload: { ratePerSecond: 100000, burst: 100000 }\n`)  // load from one address: above the per-address abuse limit
  return { broker: await startBrokerProcess(config, env), token: cred.stdout.trim(), expected: new Map(), sent: [] }
}

/** PUT a fresh value; records it as acknowledged on 201. Returns the status and error code. */
async function put(rig: Rig, value: Uint8Array): Promise<{ status: number; code?: string }> {
  rig.sent.push(value)
  const r = await fetch(`${rig.broker.url}/v1/admin/secrets/f`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${rig.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ value: Buffer.from(value).toString('base64') }),
  })
  const body = (await r.json()) as { version?: number; error?: { code: string } }
  if (r.status === 201) rig.expected.set(`f@${body.version}`, value)
  return { status: r.status, ...(body.error ? { code: body.error.code } : {}) }
}

const sentWhole = (rig: Rig) => (_key: string, plain: Uint8Array) => rig.sent.some((v) => Buffer.from(v).equals(Buffer.from(plain)))

describe('PostgreSQL goes away mid-request', () => {
  const rng = seededRng('store-faults postgres')
  let loc: TestLocation
  let dir: string
  let rig: Rig
  let admin: pg.Client
  beforeAll(async () => {
    loc = await createLocation('postgres')
    dir = mkdtempSync(join(tmpdir(), 'kw-pgfault-'))
    rig = await startRig(join(dir, 'data'), { DATABASE_URL: loc.where })
    admin = new pg.Client({ connectionString: PG_ADMIN_URL })
    await admin.connect()
  }, 120_000)
  afterAll(async () => {
    await rig?.broker.stop()
    await admin?.end()
    await loc?.cleanup()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('answers 503 ERR_STORE_UNAVAILABLE (and /readyz too) while connections are cut, then recovers by itself', async () => {
    const db = new URL(loc.where).pathname.slice(1)
    const statuses = new Map<string, number>()
    const note = (r: { status: number; code?: string }) => statuses.set(`${r.status} ${r.code ?? ''}`.trim(), (statuses.get(`${r.status} ${r.code ?? ''}`.trim()) ?? 0) + 1)
    expect((await put(rig, rng.bytes(100))).status).toBe(201)

    // Writers keep going while the database stops accepting connections and loses the ones it had.
    let phase: 'up' | 'down' | 'back' = 'up'
    let unavailable = 0
    let okAfter = 0
    const writer = async () => {
      while (phase !== 'back' || okAfter < 3) {
        const r = await put(rig, rng.bytes(rng.int(1, 500)))
        note(r)
        expect([201, 503]).toContain(r.status)
        if (r.status === 503) {
          expect(r.code).toBe('ERR_STORE_UNAVAILABLE')
          unavailable++
        } else if (phase === 'back') okAfter++
      }
    }
    let failure: unknown
    const writers = Promise.all([writer(), writer()]).catch((e: unknown) => void (failure = e))
    const failed = () => failure !== undefined
    await waitFor(() => rig.expected.size >= 4 || failed())
    await admin.query(`ALTER DATABASE ${db} ALLOW_CONNECTIONS false`)
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [db])
    phase = 'down'
    await waitFor(() => unavailable >= 3 || failed())
    if (failed()) throw failure // e.g. the broker died when its connections were cut
    const ready = await fetch(`${rig.broker.url}/readyz`)
    expect(ready.status).toBe(503)
    expect(((await ready.json()) as { error: { code: string } }).error.code).toBe('ERR_STORE_UNAVAILABLE')

    await admin.query(`ALTER DATABASE ${db} ALLOW_CONNECTIONS true`)
    phase = 'back'
    await waitFor(async () => (await fetch(`${rig.broker.url}/readyz`)).status === 200)
    await writers
    if (failed()) throw failure
    console.log(`[store-faults postgres] seed ${rng.seed}: answers ${JSON.stringify(Object.fromEntries(statuses))}`)

    await rig.broker.stop()
    const store = await loc.open()
    try {
      const rep = await checkAllSecrets(store, join(dir, 'data'), rig.expected, sentWhole(rig))
      expect(await verifyStoredAuditChain(store)).toMatchObject({ ok: true })
      console.log(`[store-faults postgres] ${rig.expected.size} acknowledged versions intact (${rep.versions} stored, ${rep.bytes} bytes)`)
    } finally {
      await store.close()
    }
  }, 300_000)
})

describe('a full disk under SQLite', () => {
  const rng = seededRng('store-faults sqlite')
  let dir: string
  let rig: Rig
  let mounted = false
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kw-diskfull-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', dir])
    mounted = true
    rig = await startRig(join(dir, 'data'), { DATABASE_URL: '' })
  }, 120_000)
  afterAll(async () => {
    await rig?.broker.stop()
    if (mounted) execFileSync('umount', [dir])
    rmSync(dir, { recursive: true, force: true })
  })

  it('answers 503 ERR_STORE_UNAVAILABLE when the disk is full, corrupts nothing, and recovers when space returns', async () => {
    expect((await put(rig, rng.bytes(100))).status).toBe(201)
    // Leave about 200 KiB free, then write 96 KiB values until the disk refuses one.
    const filler = join(dir, 'filler')
    const fs = statfsSync(dir)
    execFileSync('fallocate', ['-l', String(Math.max(0, fs.bavail * fs.bsize - 200 * 1024)), filler])
    let refused: { status: number; code?: string } | undefined
    let acceptedWhileFilling = 0
    for (let i = 0; i < 100 && !refused; i++) {
      const r = await put(rig, rng.bytes(96 * 1024))
      if (r.status === 201) acceptedWhileFilling++
      else refused = r
    }
    expect(refused).toEqual({ status: 503, code: 'ERR_STORE_UNAVAILABLE' })
    expect((await put(rig, rng.bytes(96 * 1024))).status).toBe(503) // still full: still refused, not crashed
    // /readyz reports it: under MIN_FREE_BYTES free, writes and audited releases cannot succeed.
    const ready = await fetch(`${rig.broker.url}/readyz`)
    expect(ready.status).toBe(503)
    expect(((await ready.json()) as { error: { code: string } }).error.code).toBe('ERR_STORE_UNAVAILABLE')

    unlinkSync(filler)
    // Space is back: the same process takes writes again, with no restart.
    expect((await put(rig, rng.bytes(96 * 1024))).status).toBe(201)
    expect((await fetch(`${rig.broker.url}/readyz`)).status).toBe(200)
    await rig.broker.stop()

    const store = await openSqliteStore(join(dir, 'data'))
    try {
      const rep = await checkAllSecrets(store, join(dir, 'data'), rig.expected, sentWhole(rig))
      expect(await verifyStoredAuditChain(store)).toMatchObject({ ok: true })
      console.log(`[store-faults sqlite] seed ${rng.seed}: ${acceptedWhileFilling} writes accepted before the disk filled; ${rig.expected.size} acknowledged versions intact (${rep.bytes} bytes)`)
    } finally {
      await store.close()
    }
  }, 300_000)
})
