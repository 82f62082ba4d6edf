// `keyward backup` of a SQLite broker under write load and `keyward restore` into a fresh data
// directory: every version acknowledged before the backup began is in it with its exact bytes,
// nothing in it is half-written, both files are 0600, and a broker on the restored directory
// releases every granted secret. Restore refuses to overwrite an existing store or keyring.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, type Harness } from '../broker/harness.js'
import { runBin } from '../enclave-client/helpers/proc.js'
import { createClient } from '../../enclave-client/src/index.js'
import { loadConfig } from '../../src/broker/config.js'
import { buildDeps, startServer } from '../../src/broker/server.js'
import { createLogger } from '../../src/broker/logger.js'
import { checkAllSecrets, seededRng, waitFor, type Expected } from '../helpers/durability.js'

/** These tests drive the broker from one address at load: above the per-address abuse limit. */
const LOAD_LIMITS = { limits: { perAddress: { ratePerSecond: 100_000, burst: 100_000 }, perWorkload: { ratePerSecond: 100_000, burst: 100_000 } } }

const LOAD = ['l0', 'l1', 'l2', 'db-password']
const GRANTED = ['db-password', 'api-key', 'l0', 'l1', 'l2']

describe('backup under load and restore into a fresh data directory (SQLite)', () => {
  const rng = seededRng('backup-restore')
  let h: Harness
  let dir: string
  const expected: Expected = new Map()
  const sent: Array<[string, Uint8Array]> = []

  async function admin(method: string, path: string, body: unknown) {
    const r = await fetch(`${h.url}/v1/admin${path}`, { method, headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: r.status, body: (await r.json()) as Record<string, unknown> }
  }
  const keyward = (...args: string[]) => runBin('keyward', args, { env: { DATABASE_URL: '' } })

  beforeAll(async () => {
    h = await startHarness('sqlite', LOAD_LIMITS)
    dir = mkdtempSync(join(tmpdir(), 'kw-backup-'))
    for (const row of await h.deps.store.allSecretVersions()) {
      const v = await h.deps.sealer.unseal(row)
      expected.set(`${row.name}@${row.version}`, v)
      sent.push([row.name, v])
    }
    const p = await admin('POST', '/policies', { source: TEST_POLICY.replace('secrets: [db-password, api-key]', `secrets: [${GRANTED.join(', ')}]`) })
    expect(p.status).toBe(201)
  }, 120_000)
  afterAll(async () => {
    await h?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('backs up while writes continue, restores, and the restored broker releases every secret', async () => {
    let stop = false
    let acks = 0
    const writer = async () => {
      while (!stop) {
        const name = LOAD[rng.int(0, LOAD.length - 1)]!
        const value = rng.bytes(rng.int(1, 4096))
        sent.push([name, value])
        const r = await admin('PUT', `/secrets/${name}`, { value: Buffer.from(value).toString('base64') })
        expect(r.status).toBe(201)
        expected.set(`${name}@${r.body.version}`, value)
        acks++
      }
    }
    const load = Promise.all([writer(), writer()])
    await waitFor(() => acks >= 10)
    const before: Expected = new Map(expected) // acknowledged before the backup began: must all be in it
    const out = join(dir, 'backup.db')
    const b = await keyward('backup', '--out', out, '--include-keyring', '--data-dir', h.config.dataDir)
    const writesDuringBackup = acks
    stop = true
    await load
    expect(b.code, b.stderr).toBe(0)
    expect(statSync(out).mode & 0o777).toBe(0o600)
    expect(statSync(`${out}.keyring`).mode & 0o777).toBe(0o600)
    expect((await keyward('backup', '--out', out, '--data-dir', h.config.dataDir)).stderr).toContain('ERR_CONFLICT')

    const fresh = join(dir, 'restored')
    const r = await keyward('restore', '--from', out, '--keyring', `${out}.keyring`, '--data-dir', fresh)
    expect(r.code, r.stderr).toBe(0)
    expect(statSync(join(fresh, 'keyring.json')).mode & 0o777).toBe(0o600)
    // Restore never overwrites: a second restore into the same directory is refused.
    const again = await keyward('restore', '--from', out, '--keyring', `${out}.keyring`, '--data-dir', fresh)
    expect(again.code).not.toBe(0)
    expect(again.stderr).toContain('ERR_CONFLICT')

    const deps = await buildDeps(loadConfig({ overrides: { dataDir: fresh, port: 0, logLevel: 'silent' } }), createLogger('silent', undefined))
    deps.trust.nitroRoots = [h.pki.root.cert]
    const server = await startServer(deps)
    try {
      // Every version acknowledged before the backup is there, exactly; later ones only whole.
      const rep = await checkAllSecrets(deps.store, fresh, before, (key, plain) => sent.some(([n, v]) => key.startsWith(`${n}@`) && Buffer.from(v).equals(Buffer.from(plain))))
      const client = createClient({ broker: `http://127.0.0.1:${server.port}`, collector: testOnlyNitroCollector(h.pki), retries: 0 })
      await client.attest()
      const rows = await deps.store.allSecretVersions()
      for (const name of GRANTED) {
        const latest = rows.filter((x) => x.name === name).reduce((a, b) => (b.version > a.version ? b : a))
        expect(Buffer.from(await client.getSecret(name)).equals(Buffer.from(await deps.sealer.unseal(latest)))).toBe(true)
      }
      await client.close()
      console.log(`[backup-restore] seed ${rng.seed}: ${writesDuringBackup} writes acknowledged by the end of the backup; restored ${rep.versions} versions, ${rep.bytes} bytes; released ${GRANTED.length} secrets from the restored broker`)
    } finally {
      await server.close()
      await deps.store.close()
    }
  }, 300_000)
})
