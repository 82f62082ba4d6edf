import { describe, it, expect } from 'vitest'
import { compilePolicy, decide, evaluatePolicy, selectPolicies, toPolicyClaims, type PolicyInput } from '../../src/policy/engine.js'
import { activeRefs } from '../../src/policy/reference-values.js'
import type { ReferenceValueRow } from '../../src/store/types.js'
import type { VerifiedClaims } from '../../src/protocol/claims.js'
import { claims, policySource, NOW } from './helpers.js'

const SNP_DETAILS = {
  reportedTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
  vmpl: 0,
  familyId: '00'.repeat(16),
  chip: { model: 'milan', ids: ['a', 'b'] },
  guestSvn: 2,
}

function input(over: Partial<PolicyInput> = {}): PolicyInput {
  return { claims: claims('sev-snp', SNP_DETAILS), refs: { 'snp-measurements': ['ab'.repeat(48)] }, now: NOW, ...over }
}

function one(expr: string, inp: PolicyInput = input()) {
  const p = compilePolicy(policySource({ conditions: [['c', expr]] }))
  return evaluatePolicy(p, inp)
}

describe('operators', () => {
  // Each operator both ways: the expression that must hold and one that must not.
  it.each([
    ['==', 'claims.details.vmpl == 0', 'claims.details.vmpl == 1'],
    ['!=', 'claims.details.chip.model != "genoa"', 'claims.details.chip.model != "milan"'],
    ['<', 'claims.details.guestSvn < 3', 'claims.details.guestSvn < 2'],
    ['<=', 'claims.details.guestSvn <= 2', 'claims.details.guestSvn <= 1'],
    ['>', 'claims.details.reportedTcb.microcode > 114', 'claims.details.reportedTcb.microcode > 115'],
    ['>=', 'claims.details.reportedTcb.snp >= 8', 'claims.details.reportedTcb.snp >= 9'],
    ['in (reference set)', 'claims.measurement in refs["snp-measurements"]', 'claims.measurement in refs["other"]'],
    ['in (list literal)', 'claims.details.chip.model in ["milan", "genoa"]', 'claims.details.chip.model in ["turin"]'],
    ['in (map keys)', '"snp" in claims.details.reportedTcb', '"fmc" in claims.details.reportedTcb'],
    ['&&', 'claims.details.vmpl == 0 && !claims.debug', 'claims.details.vmpl == 0 && claims.debug'],
    ['||', 'claims.debug || claims.details.vmpl == 0', 'claims.debug || claims.details.vmpl == 1'],
    ['!', '!claims.debug', '!(claims.details.vmpl == 0)'],
    ['has()', 'has(claims.details.chip.model)', 'has(claims.details.chip.serial)'],
    ['size()', 'size(claims.details.chip.ids) == 2 && size(claims.measurement) == 96', 'size(claims.details.chip.ids) > 2'],
    ['startsWith/endsWith', 'claims.measurement.startsWith("abab") && claims.measurement.endsWith("ab")', 'claims.measurement.startsWith("00")'],
    ['contains', 'claims.details.chip.model.contains("ila")', 'claims.details.chip.model.contains("xyz")'],
    ['matches', 'claims.measurement.matches("^[0-9a-f]{96}$")', 'claims.measurement.matches("^[0-9a-f]{64}$")'],
    ['lowerAscii', 'claims.details.chip.model.lowerAscii() == "milan"', 'claims.details.chip.model.lowerAscii() == "MILAN"'],
    ['exists/all', 'claims.details.chip.ids.exists(x, x == "b") && claims.details.chip.ids.all(x, size(x) == 1)', 'claims.details.chip.ids.all(x, x == "a")'],
    ['timestamp', 'now > timestamp("2026-01-01T00:00:00Z")', 'now > timestamp("2027-01-01T00:00:00Z")'],
    ['duration', 'now - timestamp("2026-01-15T11:55:00Z") < duration("10m")', 'now - timestamp("2026-01-15T11:00:00Z") < duration("10m")'],
    ['upperAscii/indexOf/substring', 'claims.details.chip.model.upperAscii() == "MILAN" && claims.measurement.indexOf("ba") == 1 && claims.measurement.substring(0, 2) == "ab"', 'claims.measurement.substring(0, 2) == "ba"'],
    ['split', '"a,b".split(",") == ["a", "b"]', 'size(claims.details.chip.model.split("l")) == 1'],
    ['?:', '(claims.tee == "nitro" ? 1 : claims.details.vmpl) == 0', '(claims.tee == "sev-snp" ? 1 : 0) == 0'],
    ['int()/string()', 'int(claims.details.guestSvn) == 2 && string(claims.details.vmpl) == "0"', 'string(claims.details.guestSvn) == "3"'],
  ])('%s', (_name, pass, fail) => {
    const ok = one(pass)
    expect(ok.failures).toEqual([])
    expect(ok.allow).toBe(true)
    const no = one(fail)
    expect(no.allow).toBe(false)
    expect(no.failures).toHaveLength(1)
    expect(no.failures[0]!.condition).toBe('c')
  })
})

describe('explainable denials', () => {
  it('reports every failing condition with expected and actual', () => {
    const p = compilePolicy(
      policySource({
        conditions: [
          ['measurement-known', 'claims.measurement in refs["snp-measurements"]'],
          ['tcb-snp-min', 'claims.details.reportedTcb.snp >= 10'],
          ['vmpl-0', 'claims.details.vmpl == 0'],
          ['chip', 'claims.details.chip.model == "genoa" && claims.details.vmpl == 0'],
          ['svn', 'claims.details.guestSvn in [5, 6]'],
          ['fits', 'claims.details.guestSvn < 1'],
        ],
      }),
    )
    const d = evaluatePolicy(p, input({ refs: { 'snp-measurements': ['cd'.repeat(48), 'ef'.repeat(48)] } }))
    expect(d.allow).toBe(false)
    expect(d.grants).toEqual({ secrets: [], vault: [], tools: [], oauth: [], spiffe: [] })
    expect(d.failures.map((f) => f.condition)).toEqual(['measurement-known', 'tcb-snp-min', 'chip', 'svn', 'fits'])
    const [m, tcb, chip, svn, fits] = d.failures
    // membership in a reference set: the set's name and size, not its entries
    expect(m).toMatchObject({ actual: 'ab'.repeat(48), expected: { referenceSet: 'snp-measurements', size: 2 } })
    expect(m!.message).toContain('not in reference set "snp-measurements" (2 values)')
    expect(JSON.stringify(m)).not.toContain('cd'.repeat(48))
    expect(tcb).toMatchObject({ actual: 8, expected: 10, message: 'claims.details.reportedTcb.snp is 8, expected >= 10' })
    // the false conjunct is named
    expect(chip).toMatchObject({ subexpr: 'claims.details.chip.model == "genoa"', actual: 'milan', expected: 'genoa' })
    expect(svn).toMatchObject({ actual: 2, expected: [5, 6] })
    expect(fits).toMatchObject({ actual: 2, expected: 1, message: 'claims.details.guestSvn is 2, expected < 1' })
  })

  it('turns evaluation errors into failures, never exceptions', () => {
    const p = compilePolicy(
      policySource({
        conditions: [
          ['missing', 'claims.details.nope == 1'],
          ['wrong-type', 'claims.details.chip.model > 3'],
          ['div', '1 / (claims.details.vmpl) == 1'],
          ['ok', 'claims.details.vmpl == 0'],
        ],
      }),
    )
    const d = evaluatePolicy(p, input())
    expect(d.failures.map((f) => f.condition)).toEqual(['missing', 'wrong-type', 'div'])
    for (const f of d.failures) expect(f.message).toMatch(/^evaluation error: /)
    expect(d.failures[0]!.message).toContain('nope')
  })

  it('a reference set with no active values fails with a clear message', () => {
    const d = one('claims.measurement in refs["snp-measurements"]', input({ refs: {} }))
    expect(d.failures[0]!.message).toContain('(no active values)')
    expect(d.failures[0]!.expected).toEqual({ referenceSet: 'snp-measurements', size: 0 })
  })

  it('inherited object properties are not reachable from expressions', () => {
    expect(one('has(claims.details.constructor)').allow).toBe(false)
    expect(one('"toString" in claims.details').allow).toBe(false)
    expect(one('"__proto__" in refs').allow).toBe(false)
  })
})

describe('TEE admission and debug', () => {
  const src = policySource({ tees: ['nitro'], conditions: [['pcr0', 'claims.details.pcrs["0"] in refs["nitro-pcr0"]']] })
  const nitroClaims = (debug: boolean) => claims('nitro', { pcrs: { '0': debug ? '00'.repeat(48) : '11'.repeat(48) } }, { debug })
  const refs = { 'nitro-pcr0': ['11'.repeat(48)] }

  it('admits the TEE it names and not another', () => {
    const p = compilePolicy(src)
    expect(evaluatePolicy(p, { claims: nitroClaims(false), refs, now: NOW }).allow).toBe(true)
    const other = evaluatePolicy(p, input())
    expect(other.allow).toBe(false)
    expect(other.failures).toEqual([
      expect.objectContaining({ condition: 'tee-admitted', actual: 'sev-snp', expected: ['nitro'] }),
    ])
    expect(selectPolicies([p], 'nitro')).toEqual([p])
    expect(selectPolicies([p], 'sev-snp')).toEqual([])
  })

  it('denies debug unless allowDebug', () => {
    const strict = compilePolicy(src)
    const d = evaluatePolicy(strict, { claims: nitroClaims(true), refs, now: NOW })
    expect(d.allow).toBe(false)
    // both the debug flag and the zero PCR0 are reported
    expect(d.failures.map((f) => f.condition)).toEqual(['debug-denied', 'pcr0'])
    const lax = compilePolicy(src.replace('  conditions:', '  allowDebug: true\n  conditions:'))
    expect(lax.allowDebug).toBe(true)
    expect(evaluatePolicy(lax, { claims: nitroClaims(true), refs: { 'nitro-pcr0': ['00'.repeat(48)] }, now: NOW }).allow).toBe(true)
  })
})

describe('reference values', () => {
  const row = (id: string, value: string, over: Partial<ReferenceValueRow> = {}): ReferenceValueRow => ({
    id, set: 'snp-measurements', tee: 'sev-snp', value, source: 'test', createdBy: 'testOnlyAdmin', createdAt: 0,
    expiresAt: null, revokedAt: null, revokedBy: null, note: null, ...over,
  })
  const p = compilePolicy(policySource({ conditions: [['m', 'claims.measurement in refs["snp-measurements"]']] }))

  it('revocation takes effect on the next evaluation', () => {
    const rows = [row('rv1', 'ab'.repeat(48)), row('rv2', 'cd'.repeat(48))]
    const before = activeRefs(rows, NOW, 'sev-snp')
    const d1 = evaluatePolicy(p, input({ refs: before.refs, refIds: before.byValue }))
    expect(d1.allow).toBe(true)
    expect(d1.referenceIds).toEqual(['rv1'])
    rows[0] = { ...rows[0]!, revokedAt: NOW.getTime() - 1, revokedBy: 'testOnlyAdmin' }
    const after = activeRefs(rows, NOW, 'sev-snp')
    const d2 = evaluatePolicy(p, input({ refs: after.refs, refIds: after.byValue }))
    expect(d2.allow).toBe(false)
    expect(d2.failures[0]!.expected).toEqual({ referenceSet: 'snp-measurements', size: 1 })
  })

  it('ignores expired values', () => {
    const rows = [row('rv1', 'ab'.repeat(48), { expiresAt: NOW.getTime() }), row('rv2', 'ab'.repeat(48), { set: 'other' })]
    const a = activeRefs(rows, NOW, 'sev-snp')
    expect(a.refs['snp-measurements']).toBeUndefined()
    expect(a.ids).toEqual(['rv2'])
    expect(evaluatePolicy(p, input({ refs: a.refs })).allow).toBe(false)
    // one millisecond earlier it was still valid
    expect(evaluatePolicy(p, input({ refs: activeRefs(rows, NOW.getTime() - 1, 'sev-snp').refs })).allow).toBe(true)
  })
})

describe('decide over several policies', () => {
  const a = compilePolicy(policySource({ name: 'a', conditions: [['vmpl', 'claims.details.vmpl == 0']], grants: '    secrets: [s1, shared]\n    vault: { role: r1, ttl: 5m }' }))
  const b = compilePolicy(policySource({ name: 'b', conditions: [['svn', 'claims.details.guestSvn >= 2']], grants: '    secrets: [s2, shared]\n    tools: [{ name: gh, audience: "https://api.github.com", ttl: 1m }]' }))
  const c = compilePolicy(policySource({ name: 'c', conditions: [['svn', 'claims.details.guestSvn >= 5']], grants: '    secrets: [s3]' }))
  const n = compilePolicy(policySource({ name: 'n', tees: ['nitro'], conditions: [['x', 'true']], grants: '    secrets: [s4]' }))

  it('grants the union of the allowing policies and reports the denials of the others', () => {
    const d = decide([a, b, c, n], input())
    expect(d.allow).toBe(true)
    expect(d.policies).toEqual(['a', 'b'])
    expect(d.decisions.map((x) => x.policy)).toEqual(['a', 'b', 'c'])
    expect(d.grants.secrets).toEqual(['s1', 'shared', 's2'])
    expect(d.grants.vault).toEqual([{ role: 'r1', policies: [], ttlSeconds: 300, numUses: 0 }])
    expect(d.grants.tools.map((t) => t.name)).toEqual(['gh'])
    expect(d.failures).toEqual([expect.objectContaining({ policy: 'c', condition: 'svn', actual: 2, expected: 5 })])
  })

  it('denies with reasons from every policy when none allows, and when none admits the TEE', () => {
    const d = decide([c, n], input({ claims: claims('sev-snp', { ...SNP_DETAILS, guestSvn: 1 }) }))
    expect(d.allow).toBe(false)
    expect(d.failures.map((f) => `${f.policy}/${f.condition}`)).toEqual(['c/svn'])
    const none = decide([n], input())
    expect(none.allow).toBe(false)
    expect(none.failures[0]).toMatchObject({ condition: 'tee-admitted', actual: 'sev-snp', expected: ['nitro'] })
  })
})

describe('allowlist facts in policy', () => {
  const p = compilePolicy(
    policySource({
      tees: ['tpm'],
      conditions: [
        ['replayed', 'allowlist.present && allowlist.replayed'],
        ['enforce', 'allowlist.mode == "enforce"'],
        ['approved', 'allowlist.allowlistDigest in refs["allowlist-digests"]'],
        ['no-denials', 'allowlist.denials == 0'],
      ],
    }),
  )
  const facts = { present: true, mode: 'enforce' as const, allowlistDigest: '11'.repeat(32), denials: 0n, progTag: '22'.repeat(8), loadTime: 5n, replayed: true, stateDigest: '33'.repeat(32), cgroupDenials: -1n }
  const base = { claims: claims('tpm'), refs: { 'allowlist-digests': ['11'.repeat(32)] }, now: NOW }

  it('admits an approved enforcing allowlist with no denials', () => {
    expect(evaluatePolicy(p, { ...base, allowlist: facts }).failures).toEqual([])
  })

  it('names the failing condition for audit mode, a changed list and denials', () => {
    const d = evaluatePolicy(p, { ...base, allowlist: { ...facts, mode: 'audit', allowlistDigest: '44'.repeat(32), denials: 3n } })
    expect(d.failures.map((f) => [f.condition, f.actual])).toEqual([
      ['enforce', 'audit'],
      ['approved', '44'.repeat(32)],
      ['no-denials', 3],
    ])
  })

  it('fails closed when no allowlist state was presented', () => {
    const d = evaluatePolicy(p, base)
    expect(d.failures.map((f) => f.condition)).toEqual(['replayed', 'enforce', 'approved', 'no-denials'])
  })
})

describe('example AI agent policy', () => {
  it('requires a recent hardware timestamp on Nitro and grants scoped tool credentials', async () => {
    const { readFileSync } = await import('node:fs')
    const { resolve } = await import('node:path')
    const { REPO_ROOT } = await import('../helpers/vectors.js')
    const p = compilePolicy(readFileSync(resolve(REPO_ROOT, 'policies/ai-agent.yaml'), 'utf8'))
    const refs = { 'agent-images': ['ab'.repeat(48)] }
    const at = (iso: string | null) => evaluatePolicy(p, { claims: claims('nitro', {}, { issuedAt: iso }), refs, now: NOW })
    const fresh = at('2026-01-15T11:55:00.000Z')
    expect(fresh.allow).toBe(true)
    expect(fresh.grants.tools).toEqual([
      { kind: 'jwt', name: 'github', audience: 'https://api.github.com', scopes: ['repo:read'], ttlSeconds: 600 },
      { kind: 'jwt', name: 'tickets', audience: 'https://tickets.example.com', scopes: ['tickets:read', 'tickets:comment'], ttlSeconds: 300 },
      { kind: 'api-key', name: 'search-api', apiKeySecret: 'search-api-key' },
    ])
    expect(at('2026-01-15T11:00:00.000Z').failures.map((f) => f.condition)).toEqual(['attested-recently'])
    expect(at(null).failures.map((f) => f.condition)).toEqual(['attested-recently'])
    // SNP reports carry no time: the condition does not apply
    expect(evaluatePolicy(p, { claims: claims('sev-snp'), refs, now: NOW }).allow).toBe(true)
  })
})

describe('toPolicyClaims', () => {
  it('drops binding data, nonce and public key', () => {
    const vc: VerifiedClaims = {
      tee: 'nitro', measurement: 'aa', debug: false, issuedAt: '2024-01-01T00:00:00.000Z',
      bindingData: new Uint8Array([1]), nonce: new Uint8Array([2]), publicKey: new Uint8Array([3]), pcrs: { sha384: new Map([[0, new Uint8Array(48)]]) }, details: { k: 1 },
    }
    expect(toPolicyClaims(vc)).toEqual({ tee: 'nitro', measurement: 'aa', debug: false, issuedAt: '2024-01-01T00:00:00.000Z', details: { k: 1 } })
  })
})
