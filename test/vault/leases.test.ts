import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import type { AuditInput } from '../../src/store/types.js'
import { createLeaseManager, type AttestedWorkload, type LeaseManager, type VaultGrant } from '../../src/vault/leases.js'
import { startRig, type Rig } from './helpers.js'
import { createMemoryLeaseStore, type MemoryLeaseStore } from './memory-lease-store.js'
import { rejectionOf } from '../helpers/errors.js'

let rig: Rig
let store: MemoryLeaseStore
let audit: AuditInput[]
let failAudit: boolean
let leases: LeaseManager
const T0 = 1_800_000_000_000

const workload = (jkt: string, over: Partial<AttestedWorkload> = {}): AttestedWorkload => ({
  jti: `jti-${jkt}-${Math.random()}`,
  jkt,
  tee: 'sev-snp',
  measurement: 'a1'.repeat(48),
  policy: 'prod-db',
  referenceIds: ['ref-1', 'ref-2'],
  workload: `wl-${jkt}`,
  ...over,
})
const grant: VaultGrant = { role: 'keyward-workload', policies: ['app-read'], ttl: '10m', num_uses: 0 }

beforeEach(async () => {
  rig = await startRig()
  rig.vault.addTokenRole('keyward-workload', { allowed_policies: ['app-read'], orphan: true })
  store = createMemoryLeaseStore()
  audit = []
  failAudit = false
  leases = createLeaseManager({
    client: rig.client({ retries: 1 }),
    store,
    audit: (e) => {
      if (failAudit) throw new Error('audit down')
      audit.push(e)
    },
    now: () => T0,
  })
})
afterEach(async () => {
  await rig.close()
})


describe('minting Vault tokens for attested workloads', () => {
  it('mints through the role with keyward metadata, records the lease and audits it', async () => {
    const w = workload('jkt-A')
    const m = await leases.mintForAttestation(w, grant)
    expect(m.token).toMatch(/^hvs\./)
    expect(m.leaseDuration).toBe(600)
    expect(m.expiresAt).toBe(T0 + 600_000)
    const t = rig.vault.tokenByAccessor(m.accessor)
    expect(t?.id).toBe(m.token)
    expect(t?.meta).toEqual({ keyward_jkt: 'jkt-A', keyward_tee: 'sev-snp', keyward_measurement: w.measurement, keyward_policy: 'prod-db' })
    expect(store.rows).toEqual([{ accessor: m.accessor, jti: w.jti, jkt: 'jkt-A', policy: 'prod-db', referenceIds: '["ref-1","ref-2"]', role: 'keyward-workload', createdAt: T0, expiresAt: T0 + 600_000, revokedAt: null }])
    expect(audit).toHaveLength(1)
    expect(audit[0]).toMatchObject({ type: 'vault.token.mint', subject: 'jkt-A', decision: 'allow', detail: { accessor: m.accessor, wrapped: false } })
    expect(JSON.stringify(audit)).not.toContain(m.token as string)
  })

  it('returns only a wrapping token when the grant asks for wrapping, and still tracks the accessor', async () => {
    const m = await leases.mintForAttestation(workload('jkt-A'), { ...grant, wrap_ttl: '2m' })
    expect(m.token).toBeUndefined()
    expect(m.wrapToken).toBeDefined()
    expect(m.wrapTtl).toBe(120)
    expect(store.rows[0]?.accessor).toBe(m.accessor)
    expect(rig.vault.tokenByAccessor(m.accessor)?.meta.keyward_jkt).toBe('jkt-A')
  })

  it('releases nothing when Vault fails, and audits the denial', async () => {
    await rig.vault.setMode('sealed')
    expect((await rejectionOf(leases.mintForAttestation(workload('jkt-A'), grant))).code).toBe('ERR_VAULT_SEALED')
    expect(store.rows).toHaveLength(0)
    expect(audit).toMatchObject([{ type: 'vault.token.mint', decision: 'deny', detail: { code: 'ERR_VAULT_SEALED' } }])
  })

  it.each(['store', 'audit'])('revokes the new token and returns nothing when the %s write fails', async (what) => {
    if (what === 'store') store.failInsert = true
    else failAudit = true
    const e = await rejectionOf(leases.mintForAttestation(workload('jkt-A'), grant))
    expect(e.code).toBe('ERR_STORE')
    expect(e.detail?.revoked).toBe(true)
    const created = [...rig.vault.log].filter((l) => l.path === 'auth/token/create/keyward-workload')
    expect(created).toHaveLength(1)
    const revoked = rig.vault.log.find((l) => l.path === 'auth/token/revoke-accessor')?.body as { accessor: string }
    expect(rig.vault.tokenByAccessor(revoked.accessor)?.revoked).toBe(true)
  })

  it('refuses an invalid grant before calling Vault', async () => {
    const n = rig.vault.log.length
    const bad = { ...grant, policies: [] } as VaultGrant
    expect((await rejectionOf(leases.mintForAttestation(workload('jkt-A'), bad))).code).toBe('ERR_POLICY_INVALID')
    expect((await rejectionOf(leases.mintForAttestation(workload('jkt-A'), { ...grant, ttl: '0s' }))).code).toBe('ERR_POLICY_INVALID')
    expect((await rejectionOf(leases.mintForAttestation(workload('jkt-A'), { ...grant, extra: 1 } as VaultGrant))).code).toBe('ERR_POLICY_INVALID')
    expect(rig.vault.log.length).toBe(n)
  })
})

describe('revoking Vault tokens', () => {
  it('revokes every live token of a key that failed re-attestation, and only those', async () => {
    const a1 = await leases.mintForAttestation(workload('jkt-A'), grant)
    const a2 = await leases.mintForAttestation(workload('jkt-A'), { ...grant, wrap_ttl: 60 })
    const b = await leases.mintForAttestation(workload('jkt-B'), grant)
    audit.length = 0
    const out = await leases.revokeFor({ jkt: 'jkt-A' }, 'reattestation-failed')
    expect(out.revoked.sort()).toEqual([a1.accessor, a2.accessor].sort())
    expect(out.failed).toEqual([])
    expect(rig.vault.tokenByAccessor(a1.accessor)?.revoked).toBe(true)
    expect(rig.vault.tokenByAccessor(a2.accessor)?.revoked).toBe(true)
    expect(rig.vault.tokenByAccessor(b.accessor)?.revoked).toBe(false)
    expect(store.rows.filter((r) => r.revokedAt === T0).map((r) => r.accessor).sort()).toEqual(out.revoked.sort())
    expect(audit).toHaveLength(2)
    expect(audit.every((e) => e.type === 'vault.token.revoke' && e.subject === 'jkt-A' && e.detail.reason === 'reattestation-failed' && e.detail.outcome === 'revoked')).toBe(true)
    // Nothing live is left for that key: a second pass revokes nothing.
    expect(await leases.revokeFor({ jkt: 'jkt-A' }, 'again')).toEqual({ revoked: [], failed: [] })
  })

  it('revokes the tokens that relied on a revoked reference value, or on a changed policy', async () => {
    const r1 = await leases.mintForAttestation(workload('jkt-A', { referenceIds: ['ref-1'] }), grant)
    const r2 = await leases.mintForAttestation(workload('jkt-B', { referenceIds: ['ref-2'], policy: 'staging' }), grant)
    expect((await leases.revokeFor({ referenceId: 'ref-1' }, 'reference-revoked')).revoked).toEqual([r1.accessor])
    expect(rig.vault.tokenByAccessor(r2.accessor)?.revoked).toBe(false)
    expect((await leases.revokeFor({ policy: 'staging' }, 'policy-changed')).revoked).toEqual([r2.accessor])
    expect(rig.vault.tokenByAccessor(r2.accessor)?.revoked).toBe(true)
  })

  it('marks a token Vault no longer knows (expired) as revoked, with outcome already-gone', async () => {
    const m = await leases.mintForAttestation(workload('jkt-A'), grant)
    await fetch(`${rig.vault.addr}/v1/auth/token/revoke-accessor`, { method: 'POST', headers: { 'X-Vault-Token': rig.vault.rootToken }, body: JSON.stringify({ accessor: m.accessor }) })
    const out = await leases.revokeFor({ jkt: 'jkt-A' }, 'reattestation-failed')
    expect(out.revoked).toEqual([m.accessor])
    expect(audit.at(-1)?.detail.outcome).toBe('already-gone')
  })

  it('keeps the lease live and reports it when Vault is down, so a later pass revokes it', async () => {
    const m = await leases.mintForAttestation(workload('jkt-A'), grant)
    await rig.vault.setMode('down')
    const out = await leases.revokeFor({ jkt: 'jkt-A' }, 'reattestation-failed')
    expect(out).toEqual({ revoked: [], failed: [{ accessor: m.accessor, code: 'ERR_VAULT_UNAVAILABLE' }] })
    expect(store.rows[0]?.revokedAt).toBeNull()
    expect(audit.at(-1)).toMatchObject({ type: 'vault.token.revoke', detail: { outcome: 'failed', code: 'ERR_VAULT_UNAVAILABLE' } })
    await rig.vault.setMode('up')
    expect((await leases.revokeFor({ jkt: 'jkt-A' }, 'retry')).revoked).toEqual([m.accessor])
  })

  it('requires exactly one filter', async () => {
    expect((await rejectionOf(leases.revokeFor({ jkt: 'a', policy: 'b' } as never, 'x'))).code).toBe('ERR_BAD_REQUEST')
    expect((await rejectionOf(leases.revokeFor({} as never, 'x'))).code).toBe('ERR_BAD_REQUEST')
  })
})
