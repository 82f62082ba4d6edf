import { describe, it, expect } from 'vitest'
import { readFileSync, readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { compilePolicy } from '../../src/policy/engine.js'
import { parseDuration } from '../../src/policy/schema.js'
import { KeywardError } from '../../src/errors.js'
import { REPO_ROOT } from '../helpers/vectors.js'

const GOOD = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: payments-api
spec:
  tees: [sev-snp, nitro]
  conditions:
    - name: measurement-known
      expr: claims.measurement in refs["snp-measurements"]
    - name: tcb-snp-min
      expr: claims.details.reportedTcb.snp >= 8
  grants:
    secrets: [db-password]
    vault: { role: payments, policies: [payments-read], ttl: 15m, num_uses: 0 }
    tools: [{ name: github, audience: "https://api.github.com", scopes: ["repo:read"], ttl: 10m }]
`

function rejection(source: string): KeywardError {
  try {
    compilePolicy(source, { file: 'p.yaml' })
  } catch (e) {
    expect(e).toBeInstanceOf(KeywardError)
    expect((e as KeywardError).code).toBe('ERR_POLICY_INVALID')
    return e as KeywardError
  }
  throw new Error('policy was accepted')
}

describe('policy schema', () => {
  it('compiles the documented shape with grants normalised', () => {
    const p = compilePolicy(GOOD)
    expect(p.name).toBe('payments-api')
    expect(p.tees).toEqual(['sev-snp', 'nitro'])
    expect(p.allowDebug).toBe(false)
    expect(p.refSets).toEqual(['snp-measurements'])
    expect(p.grants).toEqual({
      secrets: ['db-password'],
      vault: [{ role: 'payments', policies: ['payments-read'], ttlSeconds: 900, numUses: 0 }],
      tools: [{ kind: 'jwt', name: 'github', audience: 'https://api.github.com', scopes: ['repo:read'], ttlSeconds: 600 }],
      oauth: [],
      spiffe: [],
    })
    expect(p.conditions.map((c) => c.pos)).toEqual([
      { line: 9, column: 13 },
      { line: 11, column: 13 },
    ])
  })

  it.each(readdirSync(resolve(REPO_ROOT, 'policies')).filter((f) => f.endsWith('.yaml')))('example %s compiles', (f) => {
    const p = compilePolicy(readFileSync(resolve(REPO_ROOT, 'policies', f), 'utf8'), { file: f })
    expect(p.conditions.length).toBeGreaterThan(0)
  })

  it('rejects a YAML syntax error with its line', () => {
    const e = rejection(GOOD.replace('  name: payments-api', '  name: [payments-api'))
    expect(e.message).toMatch(/^p\.yaml:\d+:\d+: YAML: /)
    expect(e.detail).toMatchObject({ kind: 'yaml' })
    expect(Number(e.detail?.['line'])).toBeGreaterThanOrEqual(4)
  })

  it('rejects duplicate keys', () => {
    const e = rejection(GOOD.replace('  tees: [sev-snp, nitro]', '  tees: [sev-snp]\n  tees: [nitro]'))
    expect(e.message).toMatch(/^p\.yaml:7:3: YAML: .*[Uu]nique|duplicate/)
  })

  it('rejects an unknown field at the key', () => {
    const e = rejection(GOOD.replace('  conditions:', '  allowDebugg: true\n  conditions:'))
    expect(e.message).toBe('p.yaml:7:3: spec: unknown field "allowDebugg"')
  })

  it('rejects an unknown TEE at the list entry', () => {
    const e = rejection(GOOD.replace('tees: [sev-snp, nitro]', 'tees: [sev-snp, sgx]'))
    expect(e.message).toMatch(/^p\.yaml:6:19: spec\.tees\.1: unknown TEE/)
  })

  it('rejects a CEL syntax error at the offending column', () => {
    const e = rejection(GOOD.replace('reportedTcb.snp >= 8', 'reportedTcb.snp >= '))
    // line 11, the expression starts at column 13; the parser stops at the end (offset 37)
    expect(e.message).toMatch(/^p\.yaml:11:\d+: condition "tcb-snp-min": CEL syntax error: /)
    expect(e.detail).toMatchObject({ kind: 'cel', condition: 'tcb-snp-min', line: 11 })
    expect(Number(e.detail?.['column'])).toBeGreaterThan(13)
  })

  it('rejects a CEL type error such as claims.debug > 3', () => {
    const e = rejection(GOOD.replace('claims.details.reportedTcb.snp >= 8', 'claims.measurement != "" && claims.debug > 3'))
    // `claims.debug` starts 28 characters into the expression, which starts at column 13
    expect(e.message).toBe('p.yaml:11:41: condition "tcb-snp-min": CEL type error: no such overload: bool > int')
  })

  it('maps CEL errors inside a block scalar to the right line and column', () => {
    const src = GOOD.replace(
      '      expr: claims.details.reportedTcb.snp >= 8',
      '      expr: |\n        claims.details.reportedTcb.snp >= 8 &&\n          claims.details.vmpl.nope(1)',
    )
    const e = rejection(src)
    expect(e.message).toMatch(/^p\.yaml:13:11: condition "tcb-snp-min": CEL type error: /)
  })

  it('rejects undeclared variables, unknown claim fields and non-bool conditions', () => {
    expect(rejection(GOOD.replace('claims.details.reportedTcb.snp >= 8', 'secret == "x"')).message).toMatch(/CEL type error: /)
    expect(rejection(GOOD.replace('claims.details.reportedTcb.snp >= 8', 'claims.measurment == "x"')).message).toMatch(/No such key: measurment/)
    expect(rejection(GOOD.replace('claims.details.reportedTcb.snp >= 8', 'size(claims.measurement)')).message).toMatch(/must be bool, got int/)
    expect(rejection(GOOD.replace('claims.details.reportedTcb.snp >= 8', 'allowlist.denials == "0"')).message).toMatch(/no such overload/)
  })

  it('rejects schema violations with the path', () => {
    expect(rejection(GOOD.replace('keyward.dev/v1', 'keyward.dev/v2')).message).toMatch(/^p\.yaml:1:13: apiVersion: /)
    expect(rejection(GOOD.replace('name: tcb-snp-min', 'name: measurement-known')).message).toMatch(/duplicate condition name/)
    expect(rejection(GOOD.replace('ttl: 15m', 'ttl: 48h')).message).toMatch(/^p\.yaml:14:\d+: spec\.grants\.vault\.ttl: /)
    expect(rejection(GOOD.replace('"https://api.github.com"', '"http://api.github.com"')).message).toMatch(/audience/)
    expect(rejection(GOOD.replace(/ {2}grants:[\s\S]*$/, '  grants: {}\n')).message).toMatch(/must grant at least one/)
    expect(rejection(GOOD.replace(/ {2}conditions:[\s\S]*? {2}grants:/, '  conditions: []\n  grants:')).message).toMatch(/at least one condition/)
    expect(rejection('').message).toMatch(/^p\.yaml(:\d+:\d+)?: /)
    expect(rejection('- a\n- b\n').message).toMatch(/expected object/)
  })

  it('oauth grants: a resource URL with scopes and a lifetime of minutes; http only on loopback, no fragment, at most 1h, each resource once', () => {
    const withOauth = (entries: string) => GOOD.replace(/ {2}grants:[\s\S]*$/, `  grants:\n    oauth:\n${entries}`)
    const ok = compilePolicy(withOauth('      - { resource: "https://tools.example/mcp", scopes: [tools:call] }\n      - { resource: "http://127.0.0.1:8931/mcp", scopes: [a, b], ttl: 15m }\n'))
    expect(ok.grants.oauth).toEqual([
      { resource: 'https://tools.example/mcp', scopes: ['tools:call'], ttlSeconds: 300 },
      { resource: 'http://127.0.0.1:8931/mcp', scopes: ['a', 'b'], ttlSeconds: 900 },
    ])
    expect(rejection(withOauth('      - { resource: "http://tools.example/mcp", scopes: [a] }\n')).message).toMatch(/spec\.grants\.oauth\.0\.resource: must be an absolute https URL/)
    expect(rejection(withOauth('      - { resource: "https://tools.example/mcp#x", scopes: [a] }\n')).message).toMatch(/resource/)
    expect(rejection(withOauth('      - { resource: "https://u:p@tools.example/mcp", scopes: [a] }\n')).message).toMatch(/resource/)
    expect(rejection(withOauth('      - { resource: "https://tools.example/mcp", scopes: [a], ttl: 2h }\n')).message).toMatch(/at most 1h/)
    expect(rejection(withOauth('      - { resource: "https://tools.example/mcp", scopes: [] }\n')).message).toMatch(/scopes/)
    expect(rejection(withOauth('      - { resource: "https://tools.example/mcp", scopes: ["a b"] }\n')).message).toMatch(/scope token/)
    expect(rejection(withOauth('      - { resource: "https://tools.example/mcp", scopes: [a] }\n      - { resource: "https://tools.example/mcp", scopes: [b] }\n')).message).toMatch(/each resource may be granted once/)
  })

  it('parses durations', () => {
    expect(parseDuration('90s')).toBe(90)
    expect(parseDuration('1h30m')).toBe(5400)
    expect(parseDuration('24h')).toBe(86400)
    expect(parseDuration('25h')).toBeUndefined()
    expect(parseDuration('0s')).toBeUndefined()
    expect(parseDuration('')).toBeUndefined()
    expect(parseDuration('10')).toBeUndefined()
  })
})

describe('policy schema: YAML edge cases', () => {
  it('rejects collection keys instead of stringifying them', () => {
    const src = GOOD.replace('metadata:\n  name: payments-api', 'metadata:\n  ? [a, b]\n  : x\n  name: payments-api')
    expect(rejection(src).message).toBe('p.yaml:4:5: YAML: mapping keys must be scalars')
  })
  it('rejects alias bombs', () => {
    const bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n'
    expect(rejection(bomb).message).toMatch(/^p\.yaml: YAML: Excessive alias count/)
  })
})
