// Interrupted KEK rotation: a real `keyward keys rotate --kek` process is killed with SIGKILL at
// each kind of point in turn (right after the new KEK lands, after a seeded k of N data keys were
// re-wrapped, at a seeded delay after the new KEK landed), on SQLite and PostgreSQL: each kind once
// per backend by default, KEYWARD_DURABILITY_TRIALS=N for N trials cycling through the kinds. After each kill every secret version still
// opens to its exact bytes, the keyring is a valid 0600 file, and the next run is not blocked;
// a last run completes. Two rotations from two processes at once, alongside releases and writes
// through a running broker, lose nothing and fail no release.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { startHarness, testOnlyNitroCollector, type Harness } from '../broker/harness.js'
import { runBin, type ProcResult } from '../enclave-client/helpers/proc.js'
import { createClient } from '../../enclave-client/src/index.js'
import { checkAllSecrets, seededRng, trials, waitFor, type Expected } from '../helpers/durability.js'
import { KEYRING_FILE } from '../../src/sealing/keyring.js'

/** These tests drive the broker from one address at load: above the per-address abuse limit. */
const LOAD_LIMITS = { limits: { perAddress: { ratePerSecond: 100_000, burst: 100_000 }, perWorkload: { ratePerSecond: 100_000, burst: 100_000 } } }

const SEEDED_VERSIONS = 120

describe.each(['sqlite', 'postgres'] as const)('KEK rotation under SIGKILL on %s', (backend) => {
  let h: Harness
  const expected: Expected = new Map()
  const rng = seededRng(`kek-rotation-crash ${backend}`)

  async function putSecret(name: string, value: Uint8Array): Promise<void> {
    const r = await fetch(`${h.url}/v1/admin/secrets/${name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value: Buffer.from(value).toString('base64') }),
    })
    if (r.status < 200 || r.status > 299) throw new Error(`put ${name}: ${r.status} ${await r.text()}`)
    const { version } = (await r.json()) as { version: number }
    expected.set(`${name}@${version}`, value)
  }

  function rotate(onSpawn?: (p: ChildProcess) => void): Promise<ProcResult> {
    return runBin('keyward', ['keys', 'rotate', '--kek', '--data-dir', h.config.dataDir], {
      env: backend === 'postgres' ? { DATABASE_URL: h.location.where } : { DATABASE_URL: '' },
      ...(onSpawn ? { onSpawn } : {}),
    })
  }

  const keyringPath = () => join(h.config.dataDir, KEYRING_FILE)
  const keyringIds = (): string[] => (JSON.parse(readFileSync(keyringPath(), 'utf8')) as { keys: { id: string }[] }).keys.map((k) => k.id)

  beforeAll(async () => {
    h = await startHarness(backend, LOAD_LIMITS)
    // The harness's own secrets were written in-process; record their values as the test knows them.
    for (const row of await h.deps.store.allSecretVersions()) expected.set(`${row.name}@${row.version}`, await h.deps.sealer.unseal(row))
    for (let i = 0; i < SEEDED_VERSIONS; i++) await putSecret(`s${i % 40}`, rng.bytes(rng.int(1, 300)))
  }, 120_000)
  afterAll(async () => {
    await h?.stop()
  })

  it('SIGKILL at each kind of point (new KEK landed, k of N moved, a delay after): every secret unseals after each kill, and a re-run completes', async () => {
    const n = trials(3)
    let midRotation = 0
    let bytes = 0
    let versions = 0
    for (let t = 0; t < n; t++) {
      const before = keyringIds()
      const rowsBefore = await h.deps.store.allSecretVersions()
      const kekBefore = new Map(rowsBefore.map((r) => [`${r.name}@${r.version}`, r.kekId]))
      // Where to kill, in turn: 0 = as soon as the new KEK is in the keyring, 1 = after k data keys moved, 2 = at a seeded delay after it landed.
      const mode = t % 3
      const k = rng.int(1, rowsBefore.length - 1)
      const delayMs = rng.int(0, 400)
      let child: ChildProcess | undefined
      const run = rotate((p) => (child = p))
      const moved = async () => (await h.deps.store.allSecretVersions()).filter((r) => kekBefore.get(`${r.name}@${r.version}`) !== r.kekId).length
      let hit: boolean
      if (mode === 0) hit = await waitFor(() => keyringIds().length > before.length, child)
      else if (mode === 1) hit = await waitFor(async () => (await moved()) >= k, child)
      else hit = await waitFor(() => keyringIds().length > before.length, child).then(async (ok) => (ok && (await new Promise((r) => setTimeout(r, delayMs))), ok))
      child!.kill('SIGKILL')
      const r = await run
      const m = await moved()
      if (r.code === null && m > 0 && m < rowsBefore.length) midRotation++
      console.log(`[kek-rotation-crash ${backend}] trial ${t}: mode ${mode} k ${k} delay ${delayMs} hit ${hit} exit ${r.code ?? 'SIGKILL'}; ${m}/${rowsBefore.length} data keys moved; keyring ${keyringIds().join(',')}`)

      expect(statSync(keyringPath()).mode & 0o777).toBe(0o600)
      const after = keyringIds()
      // No KEK is ever dropped: an interrupted rotation leaves every old version in place.
      expect(after.slice(0, before.length)).toEqual(before)
      const rep = await checkAllSecrets(h.deps.store, h.config.dataDir, expected)
      bytes += rep.bytes
      versions += rep.versions
      // A new version written between kills opens too, under whichever KEK is newest.
      await putSecret(`after-kill-${t}`, rng.bytes(64))
    }

    // The re-run is not blocked by the killed run's lock and re-wraps everything left behind.
    const done = await rotate()
    expect(done.code, done.stderr).toBe(0)
    const result = JSON.parse(done.stdout) as { kekId: string; failed: string[]; total: number }
    expect(result.failed).toEqual([])
    const rep = await checkAllSecrets(h.deps.store, h.config.dataDir, expected)
    expect([...rep.kekIds]).toEqual([result.kekId])
    console.log(`[kek-rotation-crash ${backend}] ${n} kills survived (${midRotation} mid-rotation); checked ${versions + rep.versions} versions, ${bytes + rep.bytes} bytes`)
  }, 600_000)

  it('two rotations at once, alongside releases and new versions: no release fails, every secret unseals', async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const rotations = Promise.all([rotate(), rotate()])
    let done = false
    void rotations.then(() => (done = true))
    let releases = 0
    let writes = 0
    const failures: string[] = []
    while (!done || releases < 5) {
      try {
        if (releases % 7 === 0) await client.attest()
        expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
        releases++
        await putSecret(`during-rotation-${writes++ % 5}`, rng.bytes(32))
      } catch (e) {
        failures.push(String(e))
        if (failures.length > 20) break
      }
    }
    const [a, b] = await rotations
    expect(failures).toEqual([])
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    const rep = await checkAllSecrets(h.deps.store, h.config.dataDir, expected)
    console.log(`[kek-rotation-crash ${backend}] concurrent: ${releases} releases, ${writes} writes during two rotations; ${rep.versions} versions under ${[...rep.kekIds].join(',')}`)
    await client.close()
  }, 300_000)
})
