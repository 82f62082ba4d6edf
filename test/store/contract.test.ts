// The Store contract, run against both backends: every method, the exactly-once and ordering
// guarantees under concurrency, tamper detection on the audit chain, and restart.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { randomBytes } from 'node:crypto'
import { createLocation, type Backend, type TestLocation } from './helpers.js'
import { verifyAuditChain } from '../../src/audit/chain.js'
import type {
  AttestationRow, ReferenceValueRow, SecretVersionRow, Store, VaultLeaseRow,
} from '../../src/store/types.js'
import { errorCodeOf } from '../helpers/errors.js'

const T0 = 1_790_000_000_000

function secretRow(name: string, version: number, extra: Partial<SecretVersionRow> = {}): SecretVersionRow {
  return {
    name,
    version,
    ciphertext: new Uint8Array(randomBytes(40)),
    iv: new Uint8Array(randomBytes(12)),
    wrappedKey: new Uint8Array(randomBytes(60)),
    kekId: 'local:1',
    source: null,
    createdAt: T0 + version,
    createdBy: 'admin:test',
    ...extra,
  }
}

function attestation(jti: string, policy: string, refs: string[]): AttestationRow {
  return {
    jti, jkt: `jkt-${jti}`, tee: 'tpm', policy, policyVersion: 1, measurement: 'ab'.repeat(32),
    referenceIds: JSON.stringify(refs), workload: 'w1', issuedAt: T0, expiresAt: T0 + 300_000, revokedAt: null, akName: null,
  }
}

function lease(accessor: string, jkt: string, policy: string, refs: string[]): VaultLeaseRow {
  return {
    accessor, jti: `jti-${accessor}`, jkt, policy, referenceIds: JSON.stringify(refs), role: 'db',
    createdAt: T0, expiresAt: T0 + 3_600_000, revokedAt: null,
  }
}

function refValue(id: string, set: string): ReferenceValueRow {
  return {
    id, set, tee: 'sev-snp', value: 'cd'.repeat(48), source: 'test', createdBy: 'admin:test', createdAt: T0,
    expiresAt: null, revokedAt: null, revokedBy: null, note: null,
  }
}


describe.each<Backend>(['sqlite', 'postgres'])('Store contract (%s)', (backend) => {
  let loc: TestLocation
  let store: Store

  beforeAll(async () => {
    loc = await createLocation(backend)
    store = await loc.open()
  })
  afterAll(async () => {
    await store?.close()
    await loc?.cleanup()
  })

  it('reports its kind', () => {
    expect(store.kind).toBe(backend)
  })

  describe('nonces', () => {
    it('consumes once and tells unknown, expired and used apart', async () => {
      await store.insertNonce({ id: 'n-ok', createdAt: T0, expiresAt: T0 + 60_000 })
      await store.insertNonce({ id: 'n-old', createdAt: T0, expiresAt: T0 + 60_000 })
      expect(await store.consumeNonce('n-ok', T0 + 1)).toBe('ok')
      expect(await store.consumeNonce('n-ok', T0 + 2)).toBe('used')
      expect(await store.consumeNonce('n-missing', T0)).toBe('unknown')
      expect(await store.consumeNonce('n-old', T0 + 60_000)).toBe('expired')
      // Expiry is judged at `now`; refusing an expired nonce does not consume it.
      expect(await store.consumeNonce('n-old', T0 + 59_999)).toBe('ok')
    })

    it('refuses a duplicate nonce id', async () => {
      await store.insertNonce({ id: 'n-dup', createdAt: T0, expiresAt: T0 + 1 })
      expect(await errorCodeOf(store.insertNonce({ id: 'n-dup', createdAt: T0, expiresAt: T0 + 1 }))).toBe('ERR_CONFLICT')
    })

    it('gives exactly one of 50 concurrent consumers the nonce', async () => {
      await store.insertNonce({ id: 'n-race', createdAt: T0, expiresAt: T0 + 60_000 })
      const results = await Promise.all(Array.from({ length: 50 }, () => store.consumeNonce('n-race', T0 + 5)))
      expect(results.filter((r) => r === 'ok')).toHaveLength(1)
      expect(results.filter((r) => r === 'used')).toHaveLength(49)
    })

    it('prunes nonces that expired before a time', async () => {
      await store.insertNonce({ id: 'p-1', createdAt: 0, expiresAt: 10 })
      await store.insertNonce({ id: 'p-2', createdAt: 0, expiresAt: 20 })
      expect(await store.pruneNonces(15)).toBe(1)
      expect(await store.consumeNonce('p-1', 5)).toBe('unknown')
      expect(await store.consumeNonce('p-2', 5)).toBe('ok')
    })

    it('prunes spent and expired nonces for the cap, and keeps the live unspent ones', async () => {
      await store.insertNonce({ id: 's-spent', createdAt: 0, expiresAt: 1000 })
      await store.insertNonce({ id: 's-live', createdAt: 0, expiresAt: 1000 })
      await store.insertNonce({ id: 's-expired', createdAt: 0, expiresAt: 10 })
      expect(await store.consumeNonce('s-spent', 5)).toBe('ok')
      const before = await store.countNonces()
      expect(await store.pruneSpentNonces(15)).toBeGreaterThanOrEqual(2)
      expect(await store.countNonces()).toBeLessThanOrEqual(before - 2)
      expect(await store.consumeNonce('s-spent', 20)).toBe('unknown')
      expect(await store.consumeNonce('s-expired', 5)).toBe('unknown')
      expect(await store.consumeNonce('s-live', 20)).toBe('ok')
    })

    // The outstanding-challenge cap reads countNonces on every challenge: it must be the exact
    // number of stored rows (PostgreSQL keeps it in a trigger-maintained row) whoever changes them.
    it('counts every stored nonce, spent or not, through concurrent inserts, prunes and SQL run by an operator', async () => {
      const base = await store.countNonces()
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.insertNonce({ id: `c-${i}`, createdAt: 0, expiresAt: i < 5 ? 10 : 1000 })))
      expect(await store.countNonces()).toBe(base + 20)
      expect(await errorCodeOf(store.insertNonce({ id: 'c-0', createdAt: 0, expiresAt: 10 }))).toBe('ERR_CONFLICT')
      expect(await store.consumeNonce('c-10', 5)).toBe('ok')
      expect(await store.countNonces()).toBe(base + 20)
      await loc.exec('DELETE FROM nonces WHERE id = ?', ['c-19'])
      expect(await store.countNonces()).toBe(base + 19)
      const pruned = await store.pruneSpentNonces(15)
      expect(pruned).toBeGreaterThanOrEqual(6) // c-0..c-4 expired, c-10 spent
      expect(await store.countNonces()).toBe(base + 19 - pruned)
      expect(await store.pruneNonces(0)).toBe(0) // a prune that removes nothing changes nothing
      expect(await store.countNonces()).toBe(base + 19 - pruned)
      await loc.exec(backend === 'postgres' ? 'TRUNCATE nonces CASCADE' : 'DELETE FROM nonces')
      expect(await store.countNonces()).toBe(0)
      await store.insertNonce({ id: 'c-after', createdAt: 0, expiresAt: 1000 })
      expect(await store.countNonces()).toBe(1)
    })
  })

  describe('secrets', () => {
    it('stores exact versions, refuses a taken version and returns bytes intact', async () => {
      const v1 = secretRow('db', 1)
      expect(await store.putSecretVersion(v1)).toBe(true)
      expect(await store.putSecretVersion(secretRow('db', 1))).toBe(false)
      const v2 = secretRow('db', 2, { source: '{"vault":"kv/db"}' })
      expect(await store.putSecretVersion(v2)).toBe(true)
      expect(await store.getSecretVersion('db')).toEqual(v2)
      expect(await store.getSecretVersion('db', 1)).toEqual(v1)
      expect(await store.getSecretVersion('db', 3)).toBeNull()
      expect(await store.getSecretVersion('nope')).toBeNull()
    })

    it('summarizes, deletes every version and continues numbering after rm', async () => {
      await store.putSecretVersion(secretRow('api', 1))
      await store.putSecretVersion(secretRow('api', 2))
      const before = (await store.listSecrets()).find((s) => s.name === 'api')
      expect(before).toMatchObject({ latestVersion: 2, versions: 2, deleted: false, updatedAt: T0 + 2 })
      expect(await store.deleteSecret('api', 'admin:test')).toBe(true)
      expect(await store.deleteSecret('api', 'admin:test')).toBe(false)
      expect(await store.getSecretVersion('api')).toBeNull()
      expect(await store.getSecretVersion('api', 1)).toBeNull()
      const after = (await store.listSecrets()).find((s) => s.name === 'api')
      expect(after).toMatchObject({ latestVersion: 2, versions: 2, deleted: true })
      expect((await store.allSecretVersions()).some((r) => r.name === 'api')).toBe(false)
      expect(await store.putSecretVersion(secretRow('api', 2))).toBe(false)
      expect(await store.putSecretVersion(secretRow('api', 3))).toBe(true)
      expect((await store.getSecretVersion('api'))?.version).toBe(3)
      expect((await store.listSecrets()).find((s) => s.name === 'api')).toMatchObject({ deleted: false, latestVersion: 3 })
    })

    it('lists live versions and updates a wrapped key', async () => {
      await store.putSecretVersion(secretRow('wrap', 1))
      const all = await store.allSecretVersions()
      expect(all.map((r) => `${r.name}@${r.version}`)).toContain('wrap@1')
      const wk = new Uint8Array(randomBytes(61))
      await store.updateWrappedKey('wrap', 1, wk, 'local:2')
      const r = await store.getSecretVersion('wrap', 1)
      expect(r?.wrappedKey).toEqual(wk)
      expect(r?.kekId).toBe('local:2')
      expect(await errorCodeOf(store.updateWrappedKey('wrap', 9, wk, 'local:2'))).toBe('ERR_NOT_FOUND')
    })

    it('allocates distinct versions to 20 concurrent writers (retrying on a taken version)', async () => {
      const writer = async (): Promise<number> => {
        for (;;) {
          const latest = (await store.listSecrets()).find((s) => s.name === 'race')?.latestVersion ?? 0
          if (await store.putSecretVersion(secretRow('race', latest + 1))) return latest + 1
        }
      }
      const versions = await Promise.all(Array.from({ length: 20 }, writer))
      expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    })
  })

  describe('policies', () => {
    it('versions by name and keeps one active version', async () => {
      const base = { name: 'p1', source: 'a: 1', sha256: 'aa', createdAt: T0, createdBy: 'admin:test' }
      expect(await store.putPolicy(base)).toBe(1)
      expect(await store.putPolicy({ ...base, source: 'a: 2', sha256: 'bb' })).toBe(2)
      expect(await store.putPolicy({ ...base, name: 'p2' })).toBe(1)
      const active = await store.getActivePolicies()
      expect(active.map((p) => `${p.name}@${p.version}`).sort()).toEqual(['p1@2', 'p2@1'])
      expect(await store.getPolicy('p1')).toMatchObject({ version: 2, source: 'a: 2', active: true })
      expect(await store.getPolicy('p1', 1)).toMatchObject({ version: 1, source: 'a: 1', active: false })
      expect(await store.getPolicy('p1', 7)).toBeNull()
      expect(await store.getPolicy('zz')).toBeNull()
      expect(await store.deactivatePolicy('p1')).toBe(true)
      expect(await store.deactivatePolicy('p1')).toBe(false)
      expect((await store.getActivePolicies()).map((p) => p.name)).toEqual(['p2'])
    })

    it('allocates distinct versions to 20 concurrent applies, exactly one active', async () => {
      const base = { name: 'prace', source: 'x', sha256: 'cc', createdAt: T0, createdBy: 'admin:test' }
      const versions = await Promise.all(Array.from({ length: 20 }, () => store.putPolicy(base)))
      expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      const active = (await store.getActivePolicies()).filter((p) => p.name === 'prace')
      expect(active).toHaveLength(1)
      expect(active[0]?.version).toBe(20)
    })
  })

  describe('reference values', () => {
    it('puts, lists by set and revokes once', async () => {
      await store.putReferenceValue(refValue('r1', 'snp'))
      await store.putReferenceValue({ ...refValue('r2', 'tpm-pcrs'), note: 'n', expiresAt: T0 + 9 })
      expect(await errorCodeOf(store.putReferenceValue(refValue('r1', 'snp')))).toBe('ERR_CONFLICT')
      expect((await store.listReferenceValues()).map((r) => r.id)).toEqual(['r1', 'r2'])
      expect(await store.listReferenceValues('tpm-pcrs')).toEqual([{ ...refValue('r2', 'tpm-pcrs'), note: 'n', expiresAt: T0 + 9 }])
      expect(await store.revokeReferenceValue('r1', 'admin:x', T0 + 5)).toBe(true)
      expect(await store.revokeReferenceValue('r1', 'admin:x', T0 + 6)).toBe(false)
      expect(await store.revokeReferenceValue('none', 'admin:x', T0)).toBe(false)
      expect((await store.listReferenceValues('snp'))[0]).toMatchObject({ revokedAt: T0 + 5, revokedBy: 'admin:x' })
    })
  })

  describe('signing keys', () => {
    it('puts, lists and retires', async () => {
      const k = { kid: 'k1', alg: 'ES256' as const, publicJwk: '{"kty":"EC"}', sealedPrivate: '{"v":1}', createdAt: T0, retiredAt: null }
      await store.putSigningKey(k)
      await store.putSigningKey({ ...k, kid: 'k2', createdAt: T0 + 1 })
      expect(await errorCodeOf(store.putSigningKey(k))).toBe('ERR_CONFLICT')
      await store.retireSigningKey('k1', T0 + 100)
      await store.retireSigningKey('k1', T0 + 200) // first retirement time stands
      expect(await store.listSigningKeys()).toEqual([{ ...k, retiredAt: T0 + 100 }, { ...k, kid: 'k2', createdAt: T0 + 1 }])
      expect(await errorCodeOf(store.retireSigningKey('kx', T0))).toBe('ERR_NOT_FOUND')
    })
  })

  describe('AKs and credential activation', () => {
    it('puts, gets, lists and revokes AKs', async () => {
      const ak = { name: '000b' + 'aa'.repeat(32), publicArea: 'AQID', workload: 'w1', via: 'pinned' as const, ekFingerprint: null, createdAt: T0, revokedAt: null, status: 'enrolled' as const, enrolledBy: 'admin:a', ekPubDigest: null }
      await store.putAk(ak)
      expect(await store.getAk(ak.name)).toEqual(ak)
      expect(await store.getAk('none')).toBeNull()
      expect(await store.listAks()).toEqual([ak])
      expect(await errorCodeOf(store.putAk(ak))).toBe('ERR_CONFLICT')
      expect(await store.revokeAk(ak.name, T0 + 1)).toBe(true)
      expect(await store.revokeAk(ak.name, T0 + 2)).toBe(false)
      expect((await store.getAk(ak.name))?.revokedAt).toBe(T0 + 1)
    })

    it('consumes an activation exactly once, never when expired or unknown', async () => {
      const a = { id: 'act1', akName: 'ak', secretHash: 'ff'.repeat(32), workload: 'w', publicArea: 'AQ', ekFingerprint: 'ek', expiresAt: T0 + 100, usedAt: null, enrolTokenHash: null, ekPubDigest: null }
      await store.insertActivation(a)
      await store.insertActivation({ ...a, id: 'act2' })
      await store.insertActivation({ ...a, id: 'act3' })
      expect(await store.consumeActivation('act1', T0)).toEqual({ ...a, usedAt: T0 })
      expect(await store.consumeActivation('act1', T0)).toBeNull()
      expect(await store.consumeActivation('act2', T0 + 100)).toBeNull()
      expect(await store.consumeActivation('nope', T0)).toBeNull()
      const results = await Promise.all(Array.from({ length: 30 }, () => store.consumeActivation('act3', T0)))
      expect(results.filter((r) => r !== null)).toHaveLength(1)
    })

    it('moves an AK out of pending once, and only out of pending', async () => {
      const ak = { name: '000b' + 'cc'.repeat(32), publicArea: 'AQ', workload: 'svc', via: 'credential-activation' as const, ekFingerprint: 'ee'.repeat(32), createdAt: T0, revokedAt: null, status: 'pending' as const, enrolledBy: null, ekPubDigest: 'dd'.repeat(32) }
      await store.putAk(ak)
      expect(await store.setAkStatus(ak.name, 'enrolled', 'admin:a')).toBe(true)
      expect(await store.getAk(ak.name)).toMatchObject({ status: 'enrolled', enrolledBy: 'admin:a' })
      expect(await store.setAkStatus(ak.name, 'rejected', 'admin:b')).toBe(false)
      expect(await store.setAkStatus('nope', 'enrolled', 'admin:a')).toBe(false)
    })

    it('consumes an enrolment token exactly once, for its name, before it expires', async () => {
      const tok = { id: 'aa'.repeat(32), workload: 'svc', createdAt: T0, createdBy: 'admin:a', expiresAt: T0 + 100, usedAt: null, usedBy: null }
      await store.insertEnrolmentToken(tok)
      await store.insertEnrolmentToken({ ...tok, id: 'bb'.repeat(32) })
      expect(await store.consumeEnrolmentToken(tok.id, 'other', T0, 'ak0')).toBe(false)
      expect(await store.consumeEnrolmentToken(tok.id, 'svc', T0 + 100, 'ak0')).toBe(false)
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.consumeEnrolmentToken(tok.id, 'svc', T0, `ak${i}`)))
      expect(results.filter(Boolean)).toHaveLength(1)
      expect(await store.consumeEnrolmentToken('bb'.repeat(32), 'svc', T0, 'ak')).toBe(true)
      expect(await store.consumeEnrolmentToken('cc'.repeat(32), 'svc', T0, 'ak')).toBe(false)
    })

    it('keeps the EK allow/deny list: lists by digest, removes by id or by kind and digest', async () => {
      const e = { id: 'e1', kind: 'allow' as const, ek: '11'.repeat(32), workload: 'svc', createdAt: T0, createdBy: 'admin:a', note: null }
      await store.putEkEntry(e)
      await store.putEkEntry({ ...e, id: 'e2', kind: 'deny', workload: null })
      await store.putEkEntry({ ...e, id: 'e3', ek: '22'.repeat(32) })
      expect((await store.listEkEntries(['11'.repeat(32)])).map((r) => r.id).sort()).toEqual(['e1', 'e2'])
      expect(await store.listEkEntries([])).toEqual([])
      expect(await store.listEkEntries()).toHaveLength(3)
      expect(await store.removeEkEntries({ kind: 'deny', ek: '11'.repeat(32) })).toBe(1)
      expect(await store.removeEkEntries({ id: 'e3' })).toBe(1)
      expect(await store.removeEkEntries({ id: 'e3' })).toBe(0)
      expect((await store.listEkEntries()).map((r) => r.id)).toEqual(['e1'])
    })
  })

  describe('attestations and workloads', () => {
    it('revokes the live attestations of given AKs', async () => {
      await store.insertAttestation({ ...attestation('ak-j1', 'p-ak', []), akName: 'ak1' })
      await store.insertAttestation({ ...attestation('ak-j2', 'p-ak', []), akName: 'ak2' })
      await store.insertAttestation(attestation('ak-j3', 'p-ak', []))
      expect((await store.revokeAttestationsByAk(['ak1', 'ak9'], T0 + 5)).map((r) => r.jti)).toEqual(['ak-j1'])
      expect(await store.revokeAttestationsByAk(['ak1'], T0 + 6)).toEqual([])
      expect(await store.revokeAttestationsByAk([], T0 + 6)).toEqual([])
      expect((await store.getAttestation('ak-j2'))?.revokedAt).toBeNull()
    })

    it('inserts, gets and revokes by exact reference id or by policy', async () => {
      await store.insertAttestation(attestation('j1', 'pa', ['ref_1', 'ref-2']))
      await store.insertAttestation(attestation('j2', 'pa', ['ref-10']))
      await store.insertAttestation(attestation('j3', 'pb', ['refX1']))
      expect(await store.getAttestation('j1')).toEqual(attestation('j1', 'pa', ['ref_1', 'ref-2']))
      expect(await store.getAttestation('none')).toBeNull()
      expect(await errorCodeOf(store.insertAttestation(attestation('j1', 'pa', [])))).toBe('ERR_CONFLICT')
      // "ref_1" must not match "refX1" (LIKE wildcard) and "ref-1" must not match "ref-10".
      const byRef = await store.revokeAttestationsByReference('ref_1', T0 + 1)
      expect(byRef.map((r) => r.jti)).toEqual(['j1'])
      expect(byRef[0]?.revokedAt).toBe(T0 + 1)
      expect(await store.revokeAttestationsByReference('ref_1', T0 + 2)).toEqual([])
      expect(await store.revokeAttestationsByReference('ref-1', T0 + 2)).toEqual([])
      const byPolicy = await store.revokeAttestationsByPolicy('pa', T0 + 3)
      expect(byPolicy.map((r) => r.jti)).toEqual(['j2'])
      expect((await store.getAttestation('j3'))?.revokedAt).toBeNull()
      expect((await store.getAttestation('j1'))?.revokedAt).toBe(T0 + 1)
    })

    it('revokes by reference ids holding quotes, backslashes and LIKE wildcards', async () => {
      const odd = ['q"u\\ote', '50%_x', 'back\\slash']
      for (const [i, id] of odd.entries()) await store.insertAttestation(attestation(`odd${i}`, 'podd', ['x', id]))
      for (const [i, id] of odd.entries()) {
        expect((await store.revokeAttestationsByReference(id, T0 + 10)).map((r) => r.jti)).toEqual([`odd${i}`])
      }
      expect(await store.revokeAttestationsByReference('50%', T0 + 11)).toEqual([])
    })

    it('records workload decisions: returns the row replaced; an allow sets the baseline and clears divergence, a deny keeps the stored baseline and first divergence', async () => {
      const rec = (id: string, at: number, decision: 'allow' | 'deny', baseline: string | null = null, tee = 'tpm') =>
        store.recordWorkloadDecision({ id, tee, at, decision, actual: `{"at":${at}}`, baseline })
      expect(await rec('w1', T0, 'allow', '{"b":1}')).toBeNull()
      const allowed = { id: 'w1', tee: 'tpm', lastAttestedAt: T0, lastDecision: 'allow', actual: `{"at":${T0}}`, divergedAt: null, baseline: '{"b":1}' }
      expect(await store.getWorkload('w1')).toEqual(allowed)
      // Every column but the key and the kept ones takes the new value.
      expect(await rec('w1', T0 + 5, 'deny', '{"ignored":1}', 'sev-snp')).toEqual(allowed)
      const denied = { id: 'w1', tee: 'sev-snp', lastAttestedAt: T0 + 5, lastDecision: 'deny', actual: `{"at":${T0 + 5}}`, divergedAt: T0 + 5, baseline: '{"b":1}' }
      expect(await store.getWorkload('w1')).toEqual(denied)
      expect(await rec('w1', T0 + 9, 'deny', null, 'sev-snp')).toEqual(denied)
      expect(await store.getWorkload('w1')).toMatchObject({ lastAttestedAt: T0 + 9, divergedAt: T0 + 5, baseline: '{"b":1}' })
      await rec('w1', T0 + 12, 'allow', '{"b":2}')
      expect(await store.getWorkload('w1')).toMatchObject({ lastDecision: 'allow', divergedAt: null, baseline: '{"b":2}' })
      // A workload first seen denied diverged then and has no baseline.
      expect(await rec('w0', T0 + 3, 'deny', '{"ignored":1}')).toBeNull()
      expect(await store.listWorkloads()).toEqual([
        { id: 'w0', tee: 'tpm', lastAttestedAt: T0 + 3, lastDecision: 'deny', actual: `{"at":${T0 + 3}}`, divergedAt: T0 + 3, baseline: null },
        expect.objectContaining({ id: 'w1', baseline: '{"b":2}' }),
      ])
      expect(await store.getWorkload('nope')).toBeNull()
    })
  })

  describe('vault leases', () => {
    it('filters live leases and marks them revoked', async () => {
      await store.insertVaultLease(lease('l1', 'jA', 'pa', ['r1']))
      await store.insertVaultLease(lease('l2', 'jA', 'pb', ['r2', 'r1']))
      await store.insertVaultLease(lease('l3', 'jB', 'pa', ['r3']))
      const ids = async (f: Parameters<Store['listLiveVaultLeases']>[0]) =>
        (await store.listLiveVaultLeases(f)).map((l) => l.accessor).sort()
      expect(await ids({})).toEqual(['l1', 'l2', 'l3'])
      expect(await ids({ jkt: 'jA' })).toEqual(['l1', 'l2'])
      expect(await ids({ policy: 'pa' })).toEqual(['l1', 'l3'])
      expect(await ids({ referenceId: 'r1' })).toEqual(['l1', 'l2'])
      expect(await ids({ jkt: 'jA', referenceId: 'r2' })).toEqual(['l2'])
      await store.markVaultLeaseRevoked('l1', T0 + 1)
      expect(await ids({ referenceId: 'r1' })).toEqual(['l2'])
      expect(await errorCodeOf(store.markVaultLeaseRevoked('lx', T0))).toBe('ERR_NOT_FOUND')
    })
  })

  describe('credentials', () => {
    it('puts (replacing on rotation), gets and lists', async () => {
      const c = { id: 'admin:ops', kind: 'admin' as const, hash: 'scrypt$16384$8$1$AA$BB', createdAt: T0, revokedAt: null }
      await store.putCredential(c)
      await store.putCredential({ ...c, id: 'rp:vault', kind: 'relying-party' })
      await store.putCredential({ ...c, hash: 'scrypt$16384$8$1$CC$DD', createdAt: T0 + 1 })
      expect(await store.getCredential('admin:ops')).toEqual({ ...c, hash: 'scrypt$16384$8$1$CC$DD', createdAt: T0 + 1 })
      expect(await store.getCredential('admin:none')).toBeNull()
      expect((await store.listCredentials()).map((x) => x.id)).toEqual(['admin:ops', 'rp:vault'])
    })
  })

  describe('dashboard sessions', () => {
    it('finds a session until it expires, deletes it once, prunes expired ones', async () => {
      const row = { id: 'a'.repeat(64), credentialId: 'admin:ops', createdAt: T0, expiresAt: T0 + 1000 }
      await store.insertUiSession(row)
      await store.insertUiSession({ ...row, id: 'b'.repeat(64), expiresAt: T0 + 10 })
      expect(await store.getUiSession(row.id, T0 + 999)).toEqual(row)
      expect(await store.getUiSession(row.id, T0 + 1000)).toBeNull()
      expect(await store.getUiSession('c'.repeat(64), T0)).toBeNull()
      expect(await store.pruneUiSessions(T0 + 11)).toBe(1)
      expect(await store.getUiSession('b'.repeat(64), T0)).toBeNull()
      expect(await store.deleteUiSession(row.id)).toBe(true)
      expect(await store.deleteUiSession(row.id)).toBe(false)
      expect(await store.getUiSession(row.id, T0)).toBeNull()
    })
  })

  describe('audit chain', () => {
    it('appends a verifiable chain and pages through it', async () => {
      const r1 = await store.appendAudit({ type: 'challenge', subject: 'n1', decision: 'info', detail: { b: 1, a: [1, { z: 2, y: 1 }] } }, T0)
      expect(r1.seq).toBe(1)
      expect(r1.prevHash).toBe('0'.repeat(64))
      const r2 = await store.appendAudit({ type: 'attest', subject: 'jkt', decision: 'deny', detail: { reasons: ['pcr 7'] } }, T0 + 1)
      expect(r2.prevHash).toBe(r1.hash)
      const rows = await store.listAudit({})
      expect(rows).toEqual([r1, r2])
      expect(verifyAuditChain(rows)).toMatchObject({ ok: true, count: 2 })
      expect(await store.listAudit({ afterSeq: 1, limit: 5 })).toEqual([r2])
      expect(await store.listAudit({ limit: 1 })).toEqual([r1])
    })

    it('refuses detail keys that name secret material', async () => {
      for (const detail of [{ value: 'x' }, { secret: 'x' }, { nested: { privateKey: 'x' } }, { list: [{ access_token: 'x' }] }, { Token: 1 }]) {
        expect(await errorCodeOf(store.appendAudit({ type: 't', subject: 's', decision: 'info', detail }, T0))).toBe('ERR_BAD_REQUEST')
      }
      expect((await store.listAudit({})).length).toBe(2)
    })

    it('stays one valid chain under 40 concurrent writers; a bad entry among them fails alone', async () => {
      const settled = await Promise.allSettled(Array.from({ length: 41 }, (_, i) =>
        store.appendAudit({ type: 'release', subject: `s${i}`, decision: 'allow', detail: i === 20 ? { token: 'x' } : { i } }, T0 + 10 + i)))
      expect(settled.filter((r) => r.status === 'fulfilled')).toHaveLength(40)
      expect(settled[20]).toMatchObject({ status: 'rejected', reason: { code: 'ERR_BAD_REQUEST' } })
      const rows = await store.listAudit({})
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 42 }, (_, i) => i + 1))
      expect(verifyAuditChain(rows)).toMatchObject({ ok: true, count: 42 })
    })

    it('stores subjects and details with quotes, backslashes, braces, commas, NULL and non-ASCII byte for byte when batched', async () => {
      const awkward = ['"quoted"', 'back\\slash', '{a,b}', 'NULL', 'null', '', 'x,y', 'tab\there', 'näïve 🔑', '\\"{}\\,']
      const before = (await store.listAudit({ limit: 1000 })).length
      const written = await Promise.all(awkward.map((s, i) => store.appendAudit({ type: `t${s}`, subject: s, decision: 'info', detail: { s, list: [s, { [s || 'k']: s }] } }, T0 + 60 + i)))
      const rows = (await store.listAudit({ limit: 1000 })).slice(before)
      expect(rows).toEqual(written)
      expect(rows.map((r) => r.subject)).toEqual(awkward)
      expect(verifyAuditChain(await store.listAudit({ limit: 1000 }))).toMatchObject({ ok: true })
    })

    it('lists the rows since a time, oldest first, the newest ones when over the limit', async () => {
      for (let i = 0; i < 5; i++) await store.appendAudit({ type: 'release', subject: 'late', decision: 'allow', detail: { i } }, T0 + 100 + i)
      expect((await store.listAuditSince(T0 + 100, 1000)).map((r) => r.at)).toEqual([T0 + 100, T0 + 101, T0 + 102, T0 + 103, T0 + 104])
      expect((await store.listAuditSince(T0 + 100, 2)).map((r) => r.detail)).toEqual([{ i: 3 }, { i: 4 }])
      expect(await store.listAuditSince(T0 + 1000, 10)).toEqual([])
    })
  })
  // Last in this store: the writes below would show up in the earlier tests' exact lists.
  describe('decision-state version', () => {
    // The broker caches policies, reference values and quarantines under this token
    // (src/broker/decision-state.ts): every change to them, by any path, must change it.
    it('changes with every change to policies, reference values, quarantines, AKs or the EK list, through the store or in SQL, and with nothing else', async () => {
      let last = await store.decisionStateVersion()
      expect(last).toMatch(/^[0-9a-f-]{32,36}$/)
      const changed = async (what: string, f: () => Promise<unknown>): Promise<void> => {
        await f()
        const now = await store.decisionStateVersion()
        expect(now, what).not.toBe(last)
        last = now
      }
      const unchanged = async (what: string, f: () => Promise<unknown>): Promise<void> => {
        await f()
        expect(await store.decisionStateVersion(), what).toBe(last)
      }
      const base = { name: 'pv', source: 'a: 1', sha256: 'aa', createdAt: T0, createdBy: 'admin:test' }
      await changed('putPolicy', () => store.putPolicy(base))
      await changed('deactivatePolicy', () => store.deactivatePolicy('pv'))
      await changed('putReferenceValue', () => store.putReferenceValue(refValue('rv1', 'v')))
      await changed('revokeReferenceValue', () => store.revokeReferenceValue('rv1', 'admin:x', T0 + 1))
      await changed('quarantineWorkload', () => store.quarantineWorkload({ workload: 'wv', at: T0, reason: 'drift' }))
      await changed('clearQuarantine', () => store.clearQuarantine('wv'))
      // An operator's SQL, a restore script: not through the store, still seen.
      await changed('UPDATE policies in SQL', () => loc.exec(`UPDATE policies SET source = 'b: 2' WHERE name = 'pv'`))
      await changed('UPDATE reference_values in SQL', () => loc.exec(`UPDATE reference_values SET value = 'ee' WHERE id = 'rv1'`))
      await changed('DELETE FROM quarantines in SQL', async () => {
        await store.quarantineWorkload({ workload: 'wv2', at: T0, reason: 'drift' })
        await loc.exec(`DELETE FROM quarantines WHERE workload = 'wv2'`)
      })
      // TPM attestation keys and the EK list (cached for the AK lookup of every TPM attestation).
      const ak = { name: '000b' + 'dd'.repeat(32), publicArea: 'AQ', workload: 'svc', via: 'credential-activation' as const, ekFingerprint: null, createdAt: T0, revokedAt: null, status: 'pending' as const, enrolledBy: null, ekPubDigest: '33'.repeat(32) }
      await changed('putAk', () => store.putAk(ak))
      await changed('setAkStatus', () => store.setAkStatus(ak.name, 'enrolled', 'admin:a'))
      await changed('revokeAk', () => store.revokeAk(ak.name, T0 + 1))
      await changed('UPDATE aks in SQL', () => loc.exec(`UPDATE aks SET revoked_at = NULL WHERE name = '${ak.name}'`))
      await changed('putEkEntry', () => store.putEkEntry({ id: 'ev1', kind: 'deny', ek: '33'.repeat(32), workload: null, createdAt: T0, createdBy: 'admin:a', note: null }))
      await changed('removeEkEntries', () => store.removeEkEntries({ id: 'ev1' }))
      await changed('INSERT INTO ek_list in SQL', () =>
        loc.exec(`INSERT INTO ek_list (id, kind, ek, workload, created_at, created_by, note) VALUES ('ev2', 'deny', '${'44'.repeat(32)}', NULL, ${T0}, 'sql', NULL)`))
      await changed('DELETE FROM aks in SQL', () => loc.exec(`DELETE FROM aks WHERE name = '${ak.name}'`))
      // The hot path's own writes leave it alone, or nothing could stay cached.
      await unchanged('attestation, workload, nonce, audit', async () => {
        await store.insertAttestation(attestation('jv1', 'pv', ['rv1']))
        await store.recordWorkloadDecision({ id: 'wv3', tee: 'tpm', at: T0, decision: 'allow', actual: '{}', baseline: null })
        await store.insertNonce({ id: 'nv1', createdAt: T0, expiresAt: T0 + 1000 })
        await store.appendAudit({ type: 'release', subject: 'sv', decision: 'allow', detail: {} }, T0)
      })
    })
  })
})

// Direct edits of the database, as an attacker with write access would make them.
describe.each<Backend>(['sqlite', 'postgres'])('audit tamper detection and restart (%s)', (backend) => {
  let loc: TestLocation
  beforeAll(async () => {
    loc = await createLocation(backend)
  })
  afterAll(async () => {
    await loc?.cleanup()
  })

  async function seed(): Promise<void> {
    const s = await loc.open()
    try {
      await loc.exec('DELETE FROM audit_log')
      for (let i = 1; i <= 5; i++) {
        await s.appendAudit({ type: 'attest', subject: `w${i}`, decision: i % 2 ? 'allow' : 'deny', detail: { i } }, T0 + i)
      }
    } finally {
      await s.close()
    }
  }
  async function verify() {
    const s = await loc.open()
    try {
      return verifyAuditChain(await s.listAudit({}))
    } finally {
      await s.close()
    }
  }

  it('two stores on one database appending in turns and at once keep one chain: a head another writer moved is re-read, never forked', async () => {
    const a = await loc.open()
    const b = await loc.open()
    try {
      await loc.exec('DELETE FROM audit_log')
      // A, A, B, A, A, B: A's appends start from its own last row, then from one B added.
      for (let i = 0; i < 6; i++) await (i % 3 === 2 ? b : a).appendAudit({ type: 'attest', subject: `t${i}`, decision: 'info', detail: { i } }, T0 + i)
      await Promise.all(Array.from({ length: 10 }, (_, i) => [a, b].map((s, j) => s.appendAudit({ type: 'release', subject: `c${i}-${j}`, decision: 'allow', detail: { i, j } }, T0 + 100 + i))).flat())
      const rows = await a.listAudit({})
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1))
      expect(verifyAuditChain(rows)).toMatchObject({ ok: true, count: 26 })
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('an append after the log was cut back (restored to an earlier point) chains onto the row now last, leaving no gap', async () => {
    const s = await loc.open()
    try {
      await loc.exec('DELETE FROM audit_log')
      for (let i = 1; i <= 4; i++) await s.appendAudit({ type: 'attest', subject: `r${i}`, decision: 'info', detail: { i } }, T0 + i)
      await loc.exec('DELETE FROM audit_log WHERE seq > ?', [2])
      const row = await s.appendAudit({ type: 'attest', subject: 'after-restore', decision: 'info', detail: {} }, T0 + 10)
      expect(row.seq).toBe(3)
      expect(verifyAuditChain(await s.listAudit({}))).toMatchObject({ ok: true, count: 3 })
    } finally {
      await s.close()
    }
  })

  it('detects an edited row', async () => {
    await seed()
    expect(await verify()).toMatchObject({ ok: true, count: 5 })
    await loc.exec('UPDATE audit_log SET detail = ? WHERE seq = ?', ['{"i":99}', 3])
    expect(await verify()).toMatchObject({ ok: false, seq: 3 })
    await seed()
    await loc.exec('UPDATE audit_log SET decision = ? WHERE seq = ?', ['allow', 4])
    expect(await verify()).toMatchObject({ ok: false, seq: 4 })
  })

  it('detects a removed row', async () => {
    await seed()
    await loc.exec('DELETE FROM audit_log WHERE seq = ?', [2])
    expect(await verify()).toMatchObject({ ok: false, seq: 3 })
    await seed()
    await loc.exec('DELETE FROM audit_log WHERE seq = ?', [1])
    expect(await verify()).toMatchObject({ ok: false, seq: 2 })
  })

  it('detects two swapped rows', async () => {
    await seed()
    const s = await loc.open()
    const rows = await s.listAudit({})
    await s.close()
    const [a, b] = [rows[1]!, rows[2]!]
    const set = 'UPDATE audit_log SET at = ?, type = ?, subject = ?, decision = ?, detail = ?, prev_hash = ?, hash = ? WHERE seq = ?'
    await loc.exec(set, [b.at, b.type, b.subject, b.decision, JSON.stringify(b.detail), b.prevHash, b.hash, a.seq])
    await loc.exec(set, [a.at, a.type, a.subject, a.decision, JSON.stringify(a.detail), a.prevHash, a.hash, b.seq])
    expect(await verify()).toMatchObject({ ok: false, seq: 2 })
  })

  it('writes the appends it accepted before closing (queued for group commit, not yet awaited)', async () => {
    await seed()
    const s = await loc.open()
    const pending = Array.from({ length: 3 }, (_, i) => s.appendAudit({ type: 'late', subject: `l${i}`, decision: 'info', detail: { i } }, T0 + 50 + i))
    await s.close()
    expect((await Promise.all(pending)).map((r) => r.seq)).toEqual([6, 7, 8])
    expect(await verify()).toMatchObject({ ok: true, count: 8 })
  })

  it('keeps every kind of state across close and reopen', async () => {
    await seed()
    let s = await loc.open()
    await s.insertNonce({ id: 'keep-n', createdAt: T0, expiresAt: T0 + 60_000 })
    await s.insertNonce({ id: 'keep-used', createdAt: T0, expiresAt: T0 + 60_000 })
    expect(await s.consumeNonce('keep-used', T0)).toBe('ok')
    const sec = secretRow('keep', 1)
    await s.putSecretVersion(sec)
    await s.putPolicy({ name: 'keep', source: 's', sha256: 'h', createdAt: T0, createdBy: 'a' })
    await s.putCredential({ id: 'admin:keep', kind: 'admin', hash: 'h', createdAt: T0, revokedAt: null })
    await s.close()

    s = await loc.open()
    try {
      expect(await s.consumeNonce('keep-used', T0)).toBe('used')
      expect(await s.consumeNonce('keep-n', T0)).toBe('ok')
      expect(await s.getSecretVersion('keep')).toEqual(sec)
      expect((await s.getActivePolicies()).map((p) => p.name)).toEqual(['keep'])
      expect(await s.getCredential('admin:keep')).not.toBeNull()
      const next = await s.appendAudit({ type: 'restart', subject: 'x', decision: 'info', detail: {} }, T0 + 100)
      expect(next.seq).toBe(6)
      expect(verifyAuditChain(await s.listAudit({}))).toMatchObject({ ok: true, count: 6 })
    } finally {
      await s.close()
    }
  })
})

// putSecretVersion and putPolicy with an audit entry: the change and its audit row are one
// transaction, so a crash (or a failing append) leaves both or neither.
describe.each<Backend>(['sqlite', 'postgres'])('a change and its audit row commit together (%s)', (backend) => {
  let loc: TestLocation
  let store: Store
  beforeAll(async () => {
    loc = await createLocation(backend)
    store = await loc.open()
  })
  afterAll(async () => {
    await store?.close()
    await loc?.cleanup()
  })

  const putAudit = (name: string) => ({ at: T0, entry: (version: number) => ({ type: 'secret.put', subject: name, decision: 'info' as const, detail: { version } }) })
  const applyAudit = (name: string) => ({ at: T0, entry: (version: number) => ({ type: 'policy.apply', subject: name, decision: 'info' as const, detail: { version } }) })
  const auditOf = async (type: string) => (await store.listAudit({})).filter((r) => r.type === type).map((r) => `${r.subject}@${String(r.detail.version)}`)

  it('appends the entry with the version stored, and nothing for a taken version', async () => {
    expect(await store.putSecretVersion(secretRow('a', 1), putAudit('a'))).toBe(true)
    expect(await store.putSecretVersion(secretRow('a', 1), putAudit('a'))).toBe(false)
    expect(await store.putPolicy({ name: 'pa', source: 's', sha256: 'h', createdAt: T0, createdBy: 'a' }, applyAudit('pa'))).toBe(1)
    expect(await store.putPolicy({ name: 'pa', source: 's2', sha256: 'h2', createdAt: T0, createdBy: 'a' }, applyAudit('pa'))).toBe(2)
    expect(await auditOf('secret.put')).toEqual(['a@1'])
    expect(await auditOf('policy.apply')).toEqual(['pa@1', 'pa@2'])
  })

  it('an audit append that fails rolls the change back', async () => {
    const bad = { at: T0, entry: () => ({ type: 'secret.put', subject: 'b', decision: 'info' as const, detail: { secret: 'x' } }) }
    expect(await errorCodeOf(store.putSecretVersion(secretRow('b', 1), bad))).toBe('ERR_BAD_REQUEST')
    expect(await store.getSecretVersion('b', 1)).toBeNull()
    expect(await errorCodeOf(store.putPolicy({ name: 'pb', source: 's', sha256: 'h', createdAt: T0, createdBy: 'a' }, bad))).toBe('ERR_BAD_REQUEST')
    expect(await store.getPolicy('pb')).toBeNull()
    expect((await store.getPolicy('pa'))?.active).toBe(true)
  })

  it('concurrent audited puts, applies and plain appends keep one chain, one row per version', async () => {
    const writer = async (): Promise<number> => {
      for (;;) {
        const latest = (await store.listSecrets()).find((s) => s.name === 'race')?.latestVersion ?? 0
        if (await store.putSecretVersion(secretRow('race', latest + 1), putAudit('race'))) return latest + 1
      }
    }
    await Promise.all([
      ...Array.from({ length: 10 }, writer),
      ...Array.from({ length: 10 }, () => store.putPolicy({ name: 'prace', source: 'x', sha256: 'cc', createdAt: T0, createdBy: 'a' }, applyAudit('prace'))),
      ...Array.from({ length: 10 }, (_, i) => store.appendAudit({ type: 'release', subject: `s${i}`, decision: 'allow', detail: { i } }, T0)),
    ])
    const rows = await store.listAudit({})
    expect(verifyAuditChain(rows)).toMatchObject({ ok: true, count: rows.length })
    expect((await auditOf('secret.put')).filter((k) => k.startsWith('race@')).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `race@${i + 1}`).sort())
    expect((await auditOf('policy.apply')).filter((k) => k.startsWith('prace@')).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `prace@${i + 1}`).sort())
  })
})
