// Issue 13 item 8: a reference value's `tee` label is part of the match. A value approved for one
// TEE (say a TPM PCR, or an SNP launch digest) must never admit evidence of another TEE that
// carries the same bytes or is checked against a set of the same name — through the policy
// engine, and through the admin and attest HTTP API on SQLite and PostgreSQL.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startHarness, testOnlyNitroCollector, TEST_PCR0, type Harness } from '../broker/harness.js'
import { createClient } from '../../enclave-client/src/index.js'
import * as A from '../../src/broker/admin-services.js'
import { activeRefs, referenceValue } from '../../src/policy/reference-values.js'
import { compilePolicy, evaluatePolicy } from '../../src/policy/engine.js'
import { policySource } from './helpers.js'

const NOW = new Date('2026-01-01T00:00:00Z')
const opts = { createdBy: 'testOnlyAdmin', now: NOW }
const MEASUREMENT = 'ab'.repeat(48)

describe('policy engine', () => {
  const p = compilePolicy(policySource({ tees: ['sev-snp', 'tpm'], conditions: [['measurement-known', 'claims.measurement in refs["golden"]']] }))
  const claims = (tee: 'sev-snp' | 'tpm') => ({ tee, measurement: MEASUREMENT, debug: false, issuedAt: null, details: {} })
  const decide = (tee: 'sev-snp' | 'tpm', rows: ReturnType<typeof referenceValue>[]) => {
    const r = activeRefs(rows, NOW, tee)
    return evaluatePolicy(p, { claims: claims(tee), refs: r.refs, refIds: r.byValue, now: NOW })
  }
  it('a value labelled tpm admits TPM evidence and not SEV-SNP evidence of the same measurement', () => {
    const tpmRow = referenceValue('golden', 'tpm', MEASUREMENT, opts)
    expect(decide('tpm', [tpmRow]).allow).toBe(true)
    const snp = decide('sev-snp', [tpmRow])
    expect(snp.allow).toBe(false)
    expect(snp.failures.map((f) => f.condition)).toEqual(['measurement-known'])
    // and the SNP decision names no reference value of the other TEE
    expect(snp.referenceIds).toEqual([])
  })
  it('with both labels each TEE matches through its own row', () => {
    const tpmRow = referenceValue('golden', 'tpm', MEASUREMENT, opts)
    const snpRow = referenceValue('golden', 'sev-snp', MEASUREMENT, opts)
    expect(decide('sev-snp', [tpmRow, snpRow]).referenceIds).toEqual([snpRow.id])
    expect(decide('tpm', [tpmRow, snpRow]).referenceIds).toEqual([tpmRow.id])
  })
})

describe.each(['sqlite', 'postgres'] as const)('reference values through the API (%s)', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend)
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('the Nitro PCR0 approved under tee "tpm" does not admit a Nitro enclave; under "nitro" it does', async () => {
    // Only a mislabelled copy of the approved PCR0 stays active.
    for (const r of await h.deps.store.listReferenceValues('nitro-pcr0')) await A.revokeReferenceValue(h.deps, r.id, 'test')
    const add = async (tee: string) => {
      const r = await fetch(`${h.url}/v1/admin/reference-values`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${h.adminToken}` },
        body: JSON.stringify({ set: 'nitro-pcr0', tee, value: TEST_PCR0, source: `testOnly ${tee} label` }),
      })
      expect(r.status).toBe(201)
      return ((await r.json()) as { id: string }).id
    }
    await add('tpm')
    await add('sev-snp')
    const denied = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    await expect(denied.attest()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
    const audit = await A.allAuditRows(h.deps)
    const last = audit.filter((a) => a.type === 'attestation' && a.decision === 'deny').pop()!.detail as { failures?: { condition: string }[] }
    expect(last.failures?.map((f) => f.condition)).toEqual(['pcr0-known'])

    const nitroId = await add('nitro')
    const admitted = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect((await admitted.attest()).policy).toBe('test-enclave')
    const allowed = (await A.allAuditRows(h.deps)).filter((a) => a.type === 'attestation' && a.decision === 'allow').pop()!.detail as { referenceIds: string[] }
    expect(allowed.referenceIds).toEqual([nitroId])
    await Promise.all([denied.close(), admitted.close()])
  })
})
