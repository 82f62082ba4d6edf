// Interrupted rotations beyond the local keyring (that case is kek-rotation-crash.test.ts):
// `keyward keys rotate --kek` with the Vault Transit KEK — the test-only Vault API stand-in, an
// HTTP server in this process that the broker and every CLI process talk to — and `keyward keys
// rotate` (token signing keys), each killed with SIGKILL at seeded points, on SQLite and
// PostgreSQL; then, on PostgreSQL, both rotations twice at once from separate processes while two
// broker replicas release and take writes. After each kill: every secret version opens to its
// exact bytes and every sealed signing key opens (through Vault); no data key names a transit key
// version Vault does not have; tokens signed before the rotation are in the JWKS and verify against
// it until they expire, and still release; the next run exits 0 and moves everything to the newest
// key. Trials: one kill per kind and backend by default (CI budget); KEYWARD_DURABILITY_TRIALS=N for more; the seed is printed.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import { startHarness, testOnlyNitroCollector, type Harness } from '../broker/harness.js'
import { startVaultStandIn, type VaultStandIn } from '../vault/vault-api-stand-in.js'
import { runBin, type ProcResult } from '../enclave-client/helpers/proc.js'
import { createClient, type Attestation, type KeywardClient } from '../../enclave-client/src/index.js'
import { buildDeps, startServer } from '../../src/broker/server.js'
import { createLogger } from '../../src/broker/logger.js'
import { checkAllSecrets, seededRng, trials, waitFor, type Expected } from '../helpers/durability.js'

/** These tests drive the broker from one address at load: above the per-address abuse limit. */
const LOAD_LIMITS = { limits: { perAddress: { ratePerSecond: 100_000, burst: 100_000 }, perWorkload: { ratePerSecond: 100_000, burst: 100_000 } } }
const SEEDED_VERSIONS = 40
const TRANSIT_KEY = 'keyward'

describe.each(['sqlite', 'postgres'] as const)('Vault Transit KEK and signing-key rotation under SIGKILL on %s', (backend) => {
  let vault: VaultStandIn
  let h: Harness
  let dir: string
  let cliConfig: string
  let client: KeywardClient
  const expected: Expected = new Map()
  const rng = seededRng(`transit-signing-rotation-crash ${backend}`)
  /** Attestation tokens issued before some rotation: each must verify against the JWKS until it expires. */
  const oldTokens: Attestation[] = []

  async function putSecret(url: string, name: string, value: Uint8Array): Promise<void> {
    const r = await fetch(`${url}/v1/admin/secrets/${name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value: Buffer.from(value).toString('base64') }),
    })
    if (r.status !== 201) throw new Error(`put ${name}: ${r.status} ${await r.text()}`)
    expected.set(`${name}@${((await r.json()) as { version: number }).version}`, value)
  }

  function rotate(args: string[], onSpawn?: (p: ChildProcess) => void): Promise<ProcResult> {
    return runBin('keyward', ['keys', 'rotate', ...args, '--config', cliConfig, '--data-dir', h.config.dataDir], {
      env: { DATABASE_URL: backend === 'postgres' ? h.location.where : '' },
      ...(onSpawn ? { onSpawn } : {}),
    })
  }

  async function transitLatest(): Promise<number> {
    const r = await fetch(`${vault.addr}/v1/transit/keys/${TRANSIT_KEY}`, { headers: { 'x-vault-token': vault.rootToken } })
    return ((await r.json()) as { data: { latest_version: number } }).data.latest_version
  }

  /** Every secret and signing key opens through Vault; every data key names a transit version Vault has. */
  async function checkKeys() {
    const rep = await checkAllSecrets(h.deps.store, h.deps.sealer, expected)
    const latest = await transitLatest()
    for (const id of rep.kekIds) {
      const m = /^transit:keyward:(\d+)$/.exec(id)
      expect(m && Number(m[1]) >= 1 && Number(m[1]) <= latest, `kek id ${id} (Vault latest v${latest})`).toBe(true)
    }
    return rep
  }

  async function jwks(url = h.url): Promise<JSONWebKeySet> {
    return (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as JSONWebKeySet
  }

  /** The token is in the JWKS and verifies against it up to its last second; the broker still publishes its key then. */
  async function checkTokenUntilExpiry(a: Attestation): Promise<void> {
    const kid = decodeProtectedHeader(a.token).kid
    const exp = decodeJwt(a.token).exp!
    const opts = { issuer: h.config.issuer, audience: h.config.audience, currentDate: new Date(exp * 1000 - 1000) }
    await jwtVerify(a.token, createLocalJWKSet(await jwks()), opts)
    const ahead = exp * 1000 - 1000 - Date.now()
    h.advance(ahead) // the broker's clock, one second before the token expires
    try {
      expect((await jwks()).keys.map((k) => k.kid), `kid ${kid} published until the token expires`).toContain(kid)
    } finally {
      h.advance(-ahead)
    }
    await expect(jwtVerify(a.token, createLocalJWKSet(await jwks()), { ...opts, currentDate: new Date(exp * 1000 + 1000) })).rejects.toThrow()
  }

  beforeAll(async () => {
    vault = await startVaultStandIn()
    vault.createTransitKey(TRANSIT_KEY, { derived: true })
    dir = mkdtempSync(join(tmpdir(), 'kw-rotation-'))
    const tokenFile = join(dir, 'vault-token')
    writeFileSync(tokenFile, vault.rootToken, { mode: 0o600 })
    const vaultConfig = { vault: { addr: vault.addr, tokenFile, timeoutMs: 5000 }, kek: { provider: 'vault-transit', key: TRANSIT_KEY } }
    h = await startHarness(backend, { ...LOAD_LIMITS, ...vaultConfig })
    cliConfig = join(dir, 'keyward.yaml')
    writeFileSync(cliConfig, JSON.stringify(vaultConfig)) // JSON is YAML
    for (const row of await h.deps.store.allSecretVersions()) expected.set(`${row.name}@${row.version}`, await h.deps.sealer.unseal(row))
    for (let i = 0; i < SEEDED_VERSIONS; i++) await putSecret(h.url, `s${i % 15}`, rng.bytes(rng.int(1, 300)))
    client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
  }, 120_000)
  afterAll(async () => {
    await client?.close()
    await h?.stop()
    await vault?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('keys rotate --kek on Vault Transit, SIGKILLed at seeded points: every secret unseals after each kill; a re-run completes', async () => {
    const n = trials(1)
    let versions = 0
    let bytes = 0
    for (let t = 0; t < n; t++) {
      const rowsBefore = await h.deps.store.allSecretVersions()
      const kekBefore = new Map(rowsBefore.map((r) => [`${r.name}@${r.version}`, r.kekId]))
      const logFrom = vault.log.length
      // 0: as soon as Vault has the new key version; 1: after k data keys moved; 2: a random delay after the Vault rotation.
      const mode = rng.int(0, 2)
      const k = rng.int(1, rowsBefore.length - 1)
      const delayMs = rng.int(0, 300)
      const rotated = () => vault.log.slice(logFrom).some((e) => e.method === 'POST' && e.path === `transit/keys/${TRANSIT_KEY}/rotate`)
      const moved = async () => (await h.deps.store.allSecretVersions()).filter((r) => kekBefore.get(`${r.name}@${r.version}`) !== r.kekId).length
      let child: ChildProcess | undefined
      const run = rotate(['--kek'], (p) => (child = p))
      let hit: boolean
      if (mode === 1) hit = await waitFor(async () => (await moved()) >= k, child)
      else hit = await waitFor(rotated, child)
      if (mode === 2 && hit) await new Promise((r) => setTimeout(r, delayMs))
      child!.kill('SIGKILL')
      const r = await run
      const m = await moved()
      console.log(`[transit-rotation-crash ${backend}] trial ${t}: mode ${mode} k ${k} delay ${delayMs} hit ${hit} exit ${r.code ?? 'SIGKILL'}; ${m}/${rowsBefore.length} data keys moved; Vault key at v${await transitLatest()}`)
      const rep = await checkKeys()
      versions += rep.versions
      bytes += rep.bytes
      expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
      await putSecret(h.url, `after-kek-kill-${t}`, rng.bytes(64))
    }
    const done = await rotate(['--kek'])
    expect(done.code, done.stderr).toBe(0)
    const result = JSON.parse(done.stdout) as { kekId: string; failed: string[] }
    expect(result.failed).toEqual([])
    expect(result.kekId).toBe(`transit:${TRANSIT_KEY}:${await transitLatest()}`)
    const rep = await checkKeys()
    expect([...rep.kekIds]).toEqual([result.kekId])
    for (const key of await h.deps.store.listSigningKeys()) expect(JSON.parse(key.sealedPrivate)).toMatchObject({ kekId: result.kekId })
    console.log(`[transit-rotation-crash ${backend}] ${n} kills survived; checked ${versions + rep.versions} versions, ${bytes + rep.bytes} bytes, ${rep.signingKeys} signing keys`)
  }, 300_000)

  it('keys rotate (signing key), SIGKILLed at seeded points: earlier tokens verify against the JWKS until they expire and still release; a re-run completes', async () => {
    const n = trials(1)
    for (let t = 0; t < n; t++) {
      const before = await h.deps.store.listSigningKeys()
      const old = await client.attest()
      oldTokens.push(old)
      // 0: as soon as the new key is stored (before the old one is retired); 1: a random delay after the start.
      const mode = rng.int(0, 1)
      const delayMs = rng.int(0, 1500)
      let child: ChildProcess | undefined
      const run = rotate([], (p) => (child = p))
      const hit = mode === 0
        ? await waitFor(async () => (await h.deps.store.listSigningKeys()).length > before.length, child)
        : await new Promise<boolean>((r) => setTimeout(() => r(true), delayMs))
      child!.kill('SIGKILL')
      const r = await run
      const after = await h.deps.store.listSigningKeys()
      console.log(`[signing-rotation-crash ${backend}] trial ${t}: mode ${mode} delay ${delayMs} hit ${hit} exit ${r.code ?? 'SIGKILL'}; ${after.length - before.length} new keys, ${after.filter((k) => k.retiredAt === null).length} unretired`)
      // Nothing is lost: every earlier key is still there, and some key signs.
      expect(after.map((k) => k.kid)).toEqual(expect.arrayContaining(before.map((k) => k.kid)))
      expect(after.some((k) => k.retiredAt === null)).toBe(true)
      await checkKeys()
      for (const a of oldTokens) await checkTokenUntilExpiry(a)
      expect(new TextDecoder().decode(await client.getSecret('api-key'))).toBe('testOnly-api-key-77aa') // still on the token from before the kill
      await checkTokenUntilExpiry(await client.attest())
    }
    const done = await rotate([])
    expect(done.code, done.stderr).toBe(0)
    const { kid } = JSON.parse(done.stdout) as { kid: string }
    const keys = await h.deps.store.listSigningKeys()
    expect(keys.filter((k) => k.retiredAt === null).map((k) => k.kid)).toEqual([kid])
    for (const a of oldTokens) await checkTokenUntilExpiry(a)
    const fresh = await client.attest()
    // The broker picks up the new key: on its periodic reload at the latest (30 s of its clock).
    h.advance(31_000)
    try {
      const next = await client.attest()
      expect(decodeProtectedHeader(next.token).kid).toBe(kid)
    } finally {
      h.advance(-31_000)
    }
    await checkTokenUntilExpiry(fresh)
    const rep = await checkKeys()
    console.log(`[signing-rotation-crash ${backend}] ${n} kills survived; ${oldTokens.length} earlier tokens verified against the JWKS until expiry; ${rep.signingKeys} signing keys unseal`)
  }, 300_000)

  // Registered only on PostgreSQL (replicas share it), so no backend reports a skip.
  if (backend === 'postgres') it('two replicas: two KEK rotations and two signing-key rotations at once, beside releases and writes on both', async () => {
    const second = await buildDeps(h.config, createLogger('warn', undefined))
    second.trust.nitroRoots = [h.pki.root.cert]
    const server2 = await startServer(second)
    const url2 = `http://127.0.0.1:${server2.port}`
    const clients = [client, createClient({ broker: url2, collector: testOnlyNitroCollector(h.pki), retries: 0 })]
    try {
      const earlier = await clients[1]!.attest()
      const rowsBefore = new Set((await h.deps.store.allSecretVersions()).map((r) => `${r.name}@${r.version}`))
      const keysBefore = (await h.deps.store.listSigningKeys()).map((k) => k.kid)
      const rotations = Promise.all([rotate(['--kek']), rotate(['--kek']), rotate([]), rotate([])])
      let done = false
      void rotations.then(() => (done = true))
      let releases = 0
      let writes = 0
      const failures: string[] = []
      for (let i = 0; !done || releases < 6; i++) {
        const c = clients[i % 2]!
        try {
          if (i % 5 === 0) await c.attest()
          expect(new TextDecoder().decode(await c.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
          releases++
          await putSecret(i % 2 ? url2 : h.url, `during-rotations-${writes++ % 5}`, rng.bytes(32))
        } catch (e) {
          failures.push(String(e))
          if (failures.length > 20) break
        }
      }
      const results = await rotations
      expect(failures).toEqual([])
      for (const r of results) expect(r.code, r.stderr).toBe(0)
      const kekIds = results.slice(0, 2).map((r) => (JSON.parse(r.stdout) as { kekId: string }).kekId)
      const kids = results.slice(2).map((r) => (JSON.parse(r.stdout) as { kid: string }).kid)
      const rep = await checkKeys()
      // Every version that existed before is under one of the two new KEK versions (a write racing
      // a rotation may stay under the version it was sealed with, which Vault still has).
      for (const row of await h.deps.store.allSecretVersions()) if (rowsBefore.has(`${row.name}@${row.version}`)) expect(kekIds).toContain(row.kekId)
      const keys = await h.deps.store.listSigningKeys()
      for (const kid of keysBefore) expect(keys.find((k) => k.kid === kid)?.retiredAt).not.toBeNull()
      const live = keys.filter((k) => k.retiredAt === null).map((k) => k.kid)
      expect(live.length).toBeGreaterThan(0)
      for (const kid of live) expect(kids).toContain(kid)
      await checkTokenUntilExpiry(earlier)
      expect(new TextDecoder().decode(await clients[1]!.getSecret('api-key'))).toBe('testOnly-api-key-77aa')
      console.log(`[rotation-replicas postgres] ${releases} releases and ${writes} writes on two replicas during 2 KEK + 2 signing-key rotations; ${rep.versions} versions under ${[...rep.kekIds].join(',')}; live signing keys ${live.length}`)
    } finally {
      await clients[1]!.close()
      await server2.close()
      await second.store.close()
    }
  }, 300_000)
})
