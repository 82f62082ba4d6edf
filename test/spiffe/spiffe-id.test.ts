// SPIFFE IDs (spiffe/spiffe standards/SPIFFE-ID.md §2) and the ID templates of policy grants:
// keyward's parser agrees with go-spiffe's (./go-spiffe-rules.ts) on every case, templates keep
// variables to whole path segments, and no workload name can leave its segment or trust domain.
import { describe, it, expect } from 'vitest'
import { checkSpiffeTemplate, expandSpiffeTemplate, parseSpiffeId } from '../../src/protocol/spiffe-id.js'
import { spiffeIdFor } from '../../src/spiffe/issue.js'
import { compilePolicy } from '../../src/policy/engine.js'
import { goSpiffeIdFromString } from './go-spiffe-rules.js'
import { SPIFFE_POLICY } from './helpers.js'

const goOk = (id: string) => {
  try {
    goSpiffeIdFromString(id)
    return true
  } catch {
    return false
  }
}

describe('SPIFFE-ID.md §2', () => {
  const valid = ['spiffe://example.org', 'spiffe://example.org/a', 'spiffe://ex_ample-1.org/A/b.c/d-e_f', 'spiffe://1.2.3.4/x', `spiffe://example.org/${'a'.repeat(2000)}`]
  const invalid: Array<[string, string]> = [
    ['', '§2: empty'],
    ['http://example.org/a', '§2: scheme must be spiffe'],
    ['SPIFFE://example.org/a', '§2.4: keyward and go-spiffe accept only the lowercase prefix'],
    ['spiffe:///a', '§2.1: host must not be empty'],
    ['spiffe://Example.org/a', '§2.1: host must be lowercase'],
    ['spiffe://user@example.org/a', '§2.1: no userinfo'],
    ['spiffe://example.org:8443/a', '§2.1: no port'],
    ['spiffe://exa%6dple.org/a', '§2.1: no percent-encoding in the host'],
    ['spiffe://[::1]/a', '§2.1: no IPv6'],
    ['spiffe://example.org/a%2fb', '§2.2: no percent-encoding in the path'],
    ['spiffe://example.org//a', '§2.2: no empty segment'],
    ['spiffe://example.org/a/./b', '§2.2: no "." segment'],
    ['spiffe://example.org/a/..', '§2.2: no ".." segment'],
    ['spiffe://example.org/a/', '§2.2: no trailing slash'],
    ['spiffe://example.org/', '§2.2: no trailing slash (root)'],
    ['spiffe://example.org/a b', '§2.2: segment characters'],
    ['spiffe://example.org/a?x=1', '§2: no query'],
    ['spiffe://example.org/a#f', '§2: no fragment'],
    [`spiffe://example.org/${'a'.repeat(2040)}`, '§2.3: longer than 2048 bytes (keyward refuses to generate it)'],
  ]
  it.each(valid)('accepts %s, as go-spiffe does', (id) => {
    expect(parseSpiffeId(id).id).toBe(id)
    expect(goOk(id)).toBe(true)
  })
  it.each(invalid)('refuses %j (%s) with ERR_BAD_REQUEST, as go-spiffe does', (id) => {
    expect(() => parseSpiffeId(id)).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST' }))
    if (!id.includes('a'.repeat(2040))) expect(goOk(id)).toBe(false)
  })
  it('splits the trust domain from the path', () => {
    expect(parseSpiffeId('spiffe://example.org/ns/prod/sa/web')).toEqual({ id: 'spiffe://example.org/ns/prod/sa/web', trustDomain: 'example.org', path: '/ns/prod/sa/web' })
  })
})

describe('SPIFFE ID templates in policy grants', () => {
  it.each([
    ['spiffe://{workload}.example.org/x', /trust domain/],
    ['spiffe://example.org/tpm-{workload}', /whole path segment/],
    ['spiffe://example.org/{workload}x', /whole path segment/],
    ['spiffe://example.org/{name}', /unknown variable/],
    ['spiffe://example.org', /needs a path/],
    ['spiffe://example.org/', /needs a path|trailing/],
    ['spiffe://example.org/a//{workload}', /empty segments/],
    ['spiffe://Example.org/{workload}', /lowercase/],
    ['https://example.org/{workload}', /scheme/],
  ])('refuses the template %s', (t, why) => {
    expect(() => checkSpiffeTemplate(t)).toThrow(why)
  })

  it('abuse: no workload name escapes its segment or the trust domain (/, .., percent-encoding, @, :, #, ?)', () => {
    const t = 'spiffe://example.org/tpm/{workload}'
    for (const evil of ['../../other.org/admin', '..', '.', '', 'a/b', 'x%2f..', 'evil@other.org', 'other.org:443', 'a#b', 'a?b', 'a b', 'ü']) {
      expect(() => expandSpiffeTemplate(t, { workload: evil, tee: 'tpm' })).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST' }))
    }
    expect(expandSpiffeTemplate(t, { workload: 'web-1.prod_a', tee: 'tpm' }).id).toBe('spiffe://example.org/tpm/web-1.prod_a')
  })

  it('abuse through the issuance path: a workload name that is no segment gets no identity (ERR_NOT_GRANTED), nor does an unenrolled TPM, nor another trust domain', () => {
    const grant = { id: 'spiffe://example.org/{tee}/{workload}', audiences: [], jwtTtlSeconds: 60, x509TtlSeconds: 3600 }
    expect(spiffeIdFor(grant, { tee: 'tpm', workload: 'tpm:web-1' }, 'example.org').id).toBe('spiffe://example.org/tpm/web-1')
    expect(spiffeIdFor(grant, { tee: 'sev-snp', workload: 'sev-snp:abcdef' }, 'example.org').id).toBe('spiffe://example.org/sev-snp/abcdef')
    expect(() => spiffeIdFor(grant, { tee: 'tpm', workload: 'tpm:../../evil.org' }, 'example.org')).toThrow(expect.objectContaining({ code: 'ERR_NOT_GRANTED' }))
    expect(() => spiffeIdFor(grant, { tee: 'tpm', workload: 'tpm-ak:000b1234' }, 'example.org')).toThrow(/unenrolled TPM/)
    expect(() => spiffeIdFor(grant, { tee: 'tpm', workload: 'tpm:web-1' }, 'other.org')).toThrow(/trust domain example.org/)
  })

  it('a policy with a bad template, or {workload} without {tee} across several TEEs, is refused at apply with its line', () => {
    expect(() => compilePolicy(SPIFFE_POLICY.replace('spiffe://example.org/nitro/{workload}', 'spiffe://example.org/nitro/{workload}x'))).toThrow(/whole path segment/)
    expect(() => compilePolicy(SPIFFE_POLICY.replace('tees: [nitro]', 'tees: [nitro, tpm]'))).toThrow(/\{tee\}/)
    expect(compilePolicy(SPIFFE_POLICY.replace('tees: [nitro]', 'tees: [nitro, tpm]').replace('/nitro/{workload}', '/{tee}/{workload}')).grants.spiffe).toEqual([
      { id: 'spiffe://example.org/{tee}/{workload}', audiences: ['spiffe://example.org/db', 'https://api.example.org'], jwtTtlSeconds: 300, x509TtlSeconds: 7200 },
    ])
    expect(() => compilePolicy(SPIFFE_POLICY.replace('jwtTtl: 5m', 'jwtTtl: 2h'))).toThrow(/at most 1h/)
  })
})
