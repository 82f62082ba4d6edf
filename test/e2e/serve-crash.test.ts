// kill -9 of a real `keyward serve` while it takes a stream of secret writes (new versions of a
// few names), policy applies and attest+release on swtpm (each of which appends audit rows), on
// SQLite and PostgreSQL. The kill lands after a seeded number of acknowledged operations plus a
// seeded delay, so it hits requests in flight. After each kill, before the restart: every
// acknowledged write (HTTP 2xx) is stored with its exact bytes and version; a write in flight is
// either absent or whole; every stored secret and policy version has its audit row and every
// secret.put/policy.apply row its version; every data key unwraps; the audit chain verifies end
// to end. After the restart the broker releases the latest version of each secret. Two kills per
// backend by default (CI budget: each trial starts a broker process); KEYWARD_DURABILITY_TRIALS=N
// for more, with the printed seed to replay one.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { createLocation, type TestLocation } from '../store/helpers.js'
import { startSwtpm, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { runKeywardInProcess } from '../helpers/cli.js'
import { createClient, type KeywardClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import { BrokerError } from '../../enclave-client/src/errors.js'
import type { Collector } from '../../enclave-client/src/collectors/types.js'
import { verifyStoredAuditChain } from '../../src/audit/verify-store.js'
import { sha256, toHex } from '../../src/util/bytes.js'
import { checkAllSecrets, seededRng, trials, waitFor, type Expected } from '../helpers/durability.js'

const NAMES = ['c0', 'c1', 'c2', 'c3']
const policy = (rev: number) => `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: crash
spec:
  tees: [tpm]
  conditions:
    - name: registered-ak
      expr: claims.details.akAttributesVerified == true
  grants:
    secrets: [${NAMES.join(', ')}]
# revision ${rev}
`

describe.each(['sqlite', 'postgres'] as const)('kill -9 of keyward serve on %s', (backend) => {
  const rng = seededRng(`serve-crash ${backend}`)
  let tpm: Swtpm
  let dir: string
  let dataDir: string
  let loc: TestLocation
  let config: string
  let adminToken: string
  let collector: Collector
  const env = (): NodeJS.ProcessEnv => ({ DATABASE_URL: backend === 'postgres' ? loc.where : '' })

  const expected: Expected = new Map()
  /** Values sent for each name whose PUT got no answer (the broker died): may be stored, but only whole. */
  const inFlight = new Map<string, Uint8Array[]>()
  /** Secret versions whose PUT was answered 2xx (each must have its audit row). */
  const ackedPuts = new Set<string>()
  const policies: Array<{ version: number; sha256: string }> = []
  let policyRev = 0

  async function admin(b: BrokerProcess, method: string, path: string, body?: unknown) {
    const r = await fetch(`${b.url}/v1/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: r.status, body: (await r.json()) as Record<string, unknown> }
  }

  beforeAll(async () => {
    loc = await createLocation(backend)
    tpm = await startSwtpm({ ekCert: true })
    dir = await mkdtemp(join(tmpdir(), 'kw-crash-'))
    dataDir = backend === 'sqlite' ? loc.where : join(dir, 'data')
    const ca = join(dir, 'ek-ca.pem')
    await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
    config = join(dir, 'keyward.yaml')
    await writeFile(config, `host: 127.0.0.1\nport: 0\ndataDir: ${dataDir}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\nlimits:\n  perAddress: { ratePerSecond: 100000, burst: 100000 }\n  perWorkload: { ratePerSecond: 100000, burst: 100000 }\n`)  // load from one address: above the per-address abuse limit
    const cred = await runKeywardInProcess(['credential', 'create', 'admin', 'crash', '--data-dir', dataDir], env())
    if (cred.code !== 0) throw new Error(cred.stderr)
    adminToken = cred.stdout.trim()
    collector = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state') })
    const b = await startBrokerProcess(config, env())
    try {
      const p = await admin(b, 'POST', '/policies', { source: policy(policyRev) })
      policies.push({ version: p.body.version as number, sha256: toHex(sha256(new TextEncoder().encode(policy(policyRev)))) })
      for (const name of NAMES) {
        const value = rng.bytes(48)
        const r = await admin(b, 'PUT', `/secrets/${name}`, { value: Buffer.from(value).toString('base64') })
        expected.set(`${name}@${r.body.version}`, value)
      }
      const client = createClient({ broker: b.url, collector, retries: 0 })
      const enrol = await admin(b, 'POST', '/enrolments/tokens', { workload: 'crash-svc' })
      expect(await client.register('crash-svc', { enrolToken: enrol.body.token as string })).toMatchObject({ status: 'enrolled' })
      await client.close()
    } finally {
      await b.stop()
    }
  }, 180_000)

  afterAll(async () => {
    await tpm?.stop()
    await loc?.cleanup()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  /** Latest acknowledged-or-committed version of a name. */
  const latest = (name: string): [number, Uint8Array] => {
    let best: [number, Uint8Array] = [0, new Uint8Array()]
    for (const [k, v] of expected) {
      const [n, ver] = k.split('@') as [string, string]
      if (n === name && Number(ver) > best[0]) best = [Number(ver), v]
    }
    return best
  }

  it('every acknowledged write survives with its exact bytes and version; the audit chain verifies; every data key unwraps', async () => {
    const n = trials(2)
    let acked = 0
    let releases = 0
    let recoveredInFlight = 0
    let policyRaces = 0
    let checkedVersions = 0
    let checkedBytes = 0
    let auditedVersions = 0
    for (let t = 0; t < n; t++) {
      const b = await startBrokerProcess(config, env())
      const killAfter = rng.int(1, 40)
      const extraDelay = rng.int(0, 40)
      let acks = 0
      let dead = false
      const sent = new Map<string, Uint8Array[]>()
      const ack = () => void acks++

      const writer = async (): Promise<void> => {
        while (!dead) {
          const name = NAMES[rng.int(0, NAMES.length - 1)]!
          const value = rng.bytes(rng.int(1, 2048))
          sent.set(name, [...(sent.get(name) ?? []), value])
          let r
          try {
            r = await admin(b, 'PUT', `/secrets/${name}`, { value: Buffer.from(value).toString('base64') })
          } catch {
            return // the broker died with this write in flight
          }
          expect(r.status, JSON.stringify(r.body)).toBe(201)
          expected.set(`${name}@${r.body.version}`, value)
          ackedPuts.add(`${name}@${r.body.version}`)
          sent.set(name, sent.get(name)!.filter((v) => v !== value))
          ack()
        }
      }
      const policyWriter = async (): Promise<void> => {
        while (!dead) {
          // One apply per completed release, so attest+release gets through between applies.
          const at = releases
          await waitFor(() => dead || releases > at)
          if (dead) return
          const rev = ++policyRev
          let r
          try {
            r = await admin(b, 'POST', '/policies', { source: policy(rev) })
          } catch {
            return
          }
          expect(r.status, JSON.stringify(r.body)).toBe(201)
          policies.push({ version: r.body.version as number, sha256: toHex(sha256(new TextEncoder().encode(policy(rev)))) })
          ack()
        }
      }
      const releaser = async (): Promise<void> => {
        const client: KeywardClient = createClient({ broker: b.url, collector, retries: 0 })
        try {
          while (!dead) {
            const name = NAMES[rng.int(0, NAMES.length - 1)]!
            let value: Uint8Array
            try {
              await client.attest()
              value = await client.getSecret(name)
            } catch (e) {
              if (dead) return
              // The one documented failure: a policy apply between attest and release (docs/policy.md).
              if (e instanceof BrokerError && e.brokerCode === 'ERR_NOT_GRANTED' && /no longer active/.test(e.message)) {
                policyRaces++
                continue
              }
              throw e
            }
            // A released value is one that was written for that name, never anything else.
            const known = [...expected].some(([k, v]) => k.startsWith(`${name}@`) && Buffer.compare(Buffer.from(v), Buffer.from(value)) === 0) || (sent.get(name) ?? []).some((v) => Buffer.compare(Buffer.from(v), Buffer.from(value)) === 0)
            expect(known).toBe(true)
            releases++
            ack()
          }
        } finally {
          await client.close().catch(() => {})
        }
      }

      let failure: unknown
      const work = Promise.all([writer(), writer(), policyWriter(), releaser()]).catch((e: unknown) => void (failure = e))
      const hit = await waitFor(() => acks >= killAfter || failure !== undefined)
      await new Promise((r) => setTimeout(r, extraDelay))
      dead = true
      b.process.kill('SIGKILL')
      await new Promise((r) => b.process.once('exit', r))
      await work
      if (failure !== undefined) throw failure
      acked += acks
      for (const [name, values] of sent) inFlight.set(name, [...(inFlight.get(name) ?? []), ...values])

      // With the broker down: the store as the crash left it.
      const store = await loc.open()
      try {
        const rep = await checkAllSecrets(store, dataDir, expected, (key, plain) => {
          const ok = (inFlight.get(key.split('@')[0]!) ?? []).some((v) => Buffer.compare(Buffer.from(v), Buffer.from(plain)) === 0)
          if (ok) {
            expected.set(key, plain)
            recoveredInFlight++
          }
          return ok
        })
        checkedVersions += rep.versions
        checkedBytes += rep.bytes
        for (const p of policies) expect((await store.getPolicy('crash', p.version))?.sha256).toBe(p.sha256)
        const audit = await verifyStoredAuditChain(store)
        expect(audit).toMatchObject({ ok: true })
        const puts = new Set<string>()
        const applies = new Set<string>()
        for (let after = 0; ; ) {
          const page = await store.listAudit({ afterSeq: after, limit: 5000 })
          for (const row of page) {
            if (row.type === 'secret.put') puts.add(`${row.subject}@${String(row.detail.version)}`)
            if (row.type === 'policy.apply') applies.add(`${row.subject}@${String(row.detail.version)}`)
          }
          if (page.length < 5000) break
          after = page[page.length - 1]!.seq
        }
        // Every stored version, acknowledged or found whole after the kill, has its audit row (one
        // transaction: docs/operations.md), and no audit row names a version that is not stored.
        const stored = (await store.allSecretVersions()).map((r) => `${r.name}@${r.version}`)
        for (const key of stored) expect(puts.has(key), `audit row for secret ${key}`).toBe(true)
        for (const key of puts) expect(stored.includes(key), `secret ${key} of an audit row`).toBe(true)
        for (const key of ackedPuts) expect(stored.includes(key), `acknowledged ${key}`).toBe(true)
        const latestPolicy = (await store.getPolicy('crash'))?.version ?? 0
        for (let v = 1; v <= latestPolicy; v++) {
          expect(await store.getPolicy('crash', v), `policy crash@${v}`).not.toBeNull()
          expect(applies.has(`crash@${v}`), `audit row for policy crash@${v}`).toBe(true)
        }
        expect(applies.size).toBe(latestPolicy)
        auditedVersions += stored.length + latestPolicy
        console.log(`[serve-crash ${backend}] trial ${t}: killed after ${acks} acks (target ${killAfter}+${extraDelay}ms, hit ${hit}); ${rep.versions} versions / ${rep.bytes} bytes unsealed; ${stored.length} secret and ${latestPolicy} policy versions each with their audit row; audit ${audit.ok ? audit.count : 'BROKEN'} rows`)
      } finally {
        await store.close()
      }
    }

    // After the last restart the broker serves the latest version of every secret.
    const b = await startBrokerProcess(config, env())
    try {
      expect((await admin(b, 'GET', '/audit/verify')).body).toMatchObject({ ok: true })
      const client = createClient({ broker: b.url, collector, retries: 0 })
      await client.attest()
      for (const name of NAMES) expect(Buffer.from(await client.getSecret(name)).equals(Buffer.from(latest(name)[1]))).toBe(true)
      await client.close()
    } finally {
      await b.stop()
    }
    console.log(`[serve-crash ${backend}] ${n} kills survived; ${acked} acknowledged operations (${releases} attest+release; ${policyRaces} releases refused ERR_NOT_GRANTED after a concurrent policy apply), ${recoveredInFlight} in-flight writes found whole; checked ${checkedVersions} versions, ${checkedBytes} bytes; ${auditedVersions} stored versions matched to their audit rows`)
  }, 600_000)
})
