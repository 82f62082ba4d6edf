// keyward's attestation results as EAR (docs/ear.md), in both forms, held against validators
// written from the draft's CDDL and from Veraison's `ear` library (test/helpers/ear-rules.ts); the
// trustworthiness-vector rules per TEE; and `keyward ear verify` on keyward's, Veraison's and
// Trustee's tokens (test/fixtures/ear/README.md says where each comes from). One broker (SQLite,
// real Nitro verifier with the testOnly PKI) for the whole file; the legacy form is issued through
// attest() with the same deps and `earForm: veraison-legacy`.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { startHarness, testOnlyNitroCollector, TEST_PCR0, type Harness } from './harness.js'
import { createSessionKey } from '../../enclave-client/src/session-key.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import { attest } from '../../src/broker/attest.js'
import { allowlistTrustVector, buildEarClaims, statusOf, teeTrustVector, type EarForm, type TrustVector } from '../../src/broker/ear.js'
import type { NitroClaims, SevSnpClaims, TpmClaims } from '../../src/protocol/claims.js'
import type { AllowlistFacts } from '../../src/broker/deps.js'
import { draftEarErrors, veraisonEarErrors } from '../helpers/ear-rules.js'
import { runKeywardInProcess as keyward } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/vectors.js'

const FIX = resolve(REPO_ROOT, 'test/fixtures/ear')
const fx = (f: string) => join(FIX, f)
const TIER = { none: 0, affirming: 2, warning: 32, contraindicated: 96 } as const

let h: Harness
let dir: string
let jwksFile: string
const tokens = {} as Record<EarForm, string>
const keys = {} as Record<EarForm, Awaited<ReturnType<typeof createSessionKey>>>

/** A Nitro attestation through attest() under the given form (the challenge from the real endpoint). */
async function attestAs(form: EarForm): Promise<{ token: string; key: Awaited<ReturnType<typeof createSessionKey>> }> {
  const { nonce } = (await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
  const key = await createSessionKey('ES256')
  const n = Buffer.from(nonce, 'base64url')
  const evidence = await testOnlyNitroCollector(h.pki).collect({ binding: bindingDigest(n, key.jktBytes), nonce: n })
  const out = await attest({ ...h.deps, config: { ...h.deps.config, earForm: form } }, { tee: 'nitro', nonce, key: key.publicJwk, evidence } as Parameters<typeof attest>[1])
  return { token: out.token, key }
}

/** Signs a claims-set with keyward's own key as an attestation result (for tampering tests). */
async function resign(claims: Record<string, unknown>): Promise<string> {
  const { iat: _i, exp: _e, iss: _s, aud: _a, jti: _j, ...rest } = claims
  return (await h.deps.tokens.issue(rest)).token
}

beforeAll(async () => {
  h = await startHarness('sqlite')
  dir = mkdtempSync(join(tmpdir(), 'keyward-ear-'))
  jwksFile = join(dir, 'jwks.json')
  writeFileSync(jwksFile, JSON.stringify(await h.deps.tokens.jwks()))
  for (const form of ['draft-04', 'veraison-legacy'] as const) {
    const a = await attestAs(form)
    tokens[form] = a.token
    keys[form] = a.key
  }
  // One decoded token of each form, for the issue note (docs/ear.md shows the same shape).
  const out = join(tmpdir(), 'keyward-ear-examples')
  mkdirSync(out, { recursive: true })
  for (const [form, t] of Object.entries(tokens)) writeFileSync(join(out, `${form}.json`), JSON.stringify({ header: decodeProtectedHeader(t), claims: decodeJwt(t) }, null, 2) + '\n')
})
afterAll(async () => {
  await h?.stop()
})

describe('keyward attestation results as EAR', () => {
  it('draft-ietf-rats-ear-04 §3, §3.1, §4 (ear.cddl, ear-appraisal.cddl, ar4si.cddl): the default form passes the draft rules', async () => {
    const c = decodeJwt(tokens['draft-04']) as Record<string, any>
    expect(draftEarErrors(c)).toEqual([])
    expect(decodeProtectedHeader(tokens['draft-04']).typ).toBe('eat+jwt')
    expect(c.eat_profile).toBe('tag:ietf.org,2026:rats/ear#04')
    expect(c.ear_verifier_id).toEqual({ developer: 'keyward', build: 'keyward 0.1.0' })
    expect(c.submods.nitro.ear_appraisal_policy_ids).toEqual(['keyward:policy:test-enclave@1'])
    expect(c.keyward).toMatchObject({ tee: 'nitro', policy: 'test-enclave', measurement: TEST_PCR0, workload: c.sub })
    expect(typeof c.cnf.jkt).toBe('string')
    expect(c.eat_nonce).toMatch(/^[A-Za-z0-9_-]{43}$/)
    // None of the four breaks the issue found: singular policy id, flat extensions, no vector, Veraison's profile.
    expect(Object.keys(c).filter((k) => k.startsWith('keyward_'))).toEqual([])
  })

  it('draft-ietf-rats-ear-04 §3.1: ear_trustworthiness_vector present per submod, mapped by the docs/ear.md rules (Nitro: genuine hardware, approved boot, isolated memory)', () => {
    const c = decodeJwt(tokens['draft-04']) as Record<string, any>
    expect(c.submods.nitro.ear_trustworthiness_vector).toEqual({ ...zero(), hardware: 2, executables: 3, 'runtime-opaque': 32 })
    expect(c.submods.nitro.ear_status).toBe('warning')
    expect(c.ear_status).toBe('warning')
  })

  it("veraison/ear ear.go validate(), ear_appraisal.go ToAppraisal(): the veraison-legacy form passes Veraison's rules", () => {
    const c = decodeJwt(tokens['veraison-legacy']) as Record<string, any>
    expect(veraisonEarErrors(c)).toEqual([])
    expect(c.eat_profile).toBe('tag:github.com,2023:veraison/ear')
    expect(c['ear.verifier-id']).toEqual({ developer: 'keyward', build: 'keyward 0.1.0' })
    expect(c.submods.nitro).toMatchObject({
      'ear.status': 'warning',
      'ear.trustworthiness-vector': { ...zero(), hardware: 2, executables: 3, 'runtime-opaque': 32 },
      'ear.appraisal-policy-id': 'keyward:policy:test-enclave@1',
    })
    expect(c.ear_status).toBeUndefined()
  })

  it.each(['draft-04', 'veraison-legacy'] as const)('keyward releases to its own %s token (a deployment may switch forms while tokens live)', async (form) => {
    const url = `${h.url}/v1/secrets/db-password`
    const r = await fetch(url, { headers: { authorization: `DPoP ${tokens[form]}`, dpop: await keys[form].dpopProof('GET', url, tokens[form]) } })
    expect(r.status).toBe(200)
  })

  it("veraison/ear ear.go validate(): what the library said of keyward's old token, and of the draft-04 form (its profile only)", () => {
    // The token before this change (issue 15): Veraison's profile with draft-style names.
    const old = {
      eat_profile: 'tag:github.com,2023:veraison/ear',
      iat: 1,
      ear_verifier_id: { developer: 'keyward', build: 'b' },
      eat_nonce: 'x'.repeat(43),
      submods: { nitro: { ear_status: 'affirming', ear_appraisal_policy_id: 'p' } },
      keyward_tee: 'nitro',
    }
    expect(veraisonEarErrors(old)).toEqual(["missing mandatory 'ear.verifier-id'", "submods[nitro]: missing mandatory 'ear.status'"])
    expect(draftEarErrors(old)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/eat_profile/),
        expect.stringMatching(/ear_trustworthiness_vector MUST/),
        expect.stringMatching(/ear_appraisal_policy_id \(singular\)/),
        expect.stringMatching(/extension "keyward_tee" is not a map/),
      ]),
    )
    // Veraison's library knows only its own and Trustee's profile and the dotted names: that is what earForm is for.
    expect(veraisonEarErrors(decodeJwt(tokens['draft-04']))).toEqual([
      "missing mandatory 'ear.verifier-id'",
      'invalid value(s) for eat_profile (tag:ietf.org,2026:rats/ear#04)',
      "submods[nitro]: missing mandatory 'ear.status'",
    ])
  })

  it('draft-ietf-rats-ear-04 §3: ear_status of the top is never better than the worst submod; §3.1: a submod never better than its vector', () => {
    const vectors: TrustVector[] = [
      { ...zero(), hardware: 2, executables: 3 },
      { ...zero(), 'runtime-opaque': 32 },
      { ...zero(), 'runtime-opaque': 96, hardware: 2 },
      { ...zero(), executables: 33 },
      zero(),
    ]
    const rank = (t: string) => TIER[t as keyof typeof TIER]
    for (let mask = 1; mask < 1 << vectors.length; mask++) {
      const chosen = vectors.filter((_, i) => mask & (1 << i))
      const c = buildEarClaims({
        form: 'draft-04',
        verifier: { developer: 'keyward', build: 't' },
        nonce: 'n'.repeat(43),
        jkt: 'j',
        workload: 'w',
        submods: Object.fromEntries(chosen.map((v, i) => [`s${i}`, { vector: v, policyId: 'p', keyward: {} }])),
        keyward: { workload: 'w', tee: 'nitro', policy: 'p', measurement: 'm' },
      }) as Record<string, any>
      const subs = Object.values(c.submods) as Array<Record<string, string>>
      expect(rank(c.ear_status)).toBe(Math.max(...subs.map((s) => rank(s.ear_status!))))
      expect(draftEarErrors({ ...c, iat: 1 })).toEqual([])
    }
    expect(statusOf({ ...zero(), 'runtime-opaque': 96, hardware: 2 })).toBe('contraindicated')
    expect(statusOf(zero())).toBe('affirming')
  })
})

function zero(): TrustVector {
  return { 'instance-identity': 0, configuration: 0, executables: 0, 'file-system': 0, hardware: 0, 'runtime-opaque': 0, 'storage-opaque': 0, 'sourced-data': 0 }
}

function claimsOf(tee: 'nitro' | 'sev-snp', over: { debug?: boolean } = {}): NitroClaims | SevSnpClaims {
  const core = { measurement: 'aa'.repeat(32), debug: false, issuedAt: null, bindingData: new Uint8Array(), nonce: null, publicKey: null, details: {}, ...over }
  return tee === 'nitro' ? { ...core, tee, pcrs: {} } : { ...core, tee }
}
const nonZero = (v: TrustVector) => Object.fromEntries(Object.entries(v).filter(([, x]) => x !== 0))

describe('docs/ear.md trustworthiness-vector rules (what keyward did not appraise is 0)', () => {
  it('SEV-SNP: encrypted memory and genuine hardware; approved boot only with a matching reference value; debug is a warning for hardware and configuration, visible memory', () => {
    expect(nonZero(teeTrustVector({ claims: claimsOf('sev-snp'), referenceValues: ['AA'.repeat(32)] }))).toEqual({ hardware: 2, 'runtime-opaque': 2, executables: 3 })
    expect(nonZero(teeTrustVector({ claims: claimsOf('sev-snp'), referenceValues: ['bb'.repeat(32)] }))).toEqual({ hardware: 2, 'runtime-opaque': 2 })
    const debug = teeTrustVector({ claims: claimsOf('sev-snp', { debug: true }), referenceValues: [] })
    expect(nonZero(debug)).toEqual({ hardware: 32, configuration: 32, 'runtime-opaque': 96 })
    expect(statusOf(debug)).toBe('contraindicated')
  })

  it('Nitro: isolated (not encrypted) memory is a warning', () => {
    const v = teeTrustVector({ claims: claimsOf('nitro'), referenceValues: ['aa'.repeat(32)] })
    expect(nonZero(v)).toEqual({ hardware: 2, 'runtime-opaque': 32, executables: 3 })
    expect(statusOf(v)).toBe('warning')
  })

  it('TPM: genuine hardware only for an AK activated against a manufacturer EK certificate; a recognized instance for any enrolled AK; approved boot on a matching PCR', () => {
    const pcrs = { sha256: new Map([[0, new Uint8Array(32).fill(0xcc)], [7, new Uint8Array(32).fill(0xdd)]]) }
    const tpmClaims = (via: 'credential-activation' | 'pinned'): TpmClaims => ({ ...claimsOf('sev-snp'), tee: 'tpm', ak: { name: null, trust: { via, workload: 'web' } }, pcrs })
    const activated = tpmClaims('credential-activation')
    expect(nonZero(teeTrustVector({ claims: activated, referenceValues: ['DD'.repeat(32)] }))).toEqual({ hardware: 2, 'instance-identity': 2, executables: 3 })
    const pinned = tpmClaims('pinned')
    expect(nonZero(teeTrustVector({ claims: pinned, referenceValues: [] }))).toEqual({ 'instance-identity': 2 })
    expect(statusOf(teeTrustVector({ claims: pinned, referenceValues: [] }))).toBe('affirming')
  })

  it('exec-allowlist: approved run-time only when enforced and replayed to the quoted PCR', () => {
    const f: AllowlistFacts = { present: true, mode: 'enforce', allowlistDigest: 'ab', denials: 0n, progTag: '', loadTime: 1n, replayed: true, stateDigest: 'cd', cgroupDenials: 0n }
    expect(nonZero(allowlistTrustVector(f))).toEqual({ executables: 2 })
    expect(nonZero(allowlistTrustVector({ ...f, mode: 'audit' }))).toEqual({})
    expect(nonZero(allowlistTrustVector({ ...f, replayed: false }))).toEqual({})
  })
})

describe('keyward ear verify', () => {
  it.each(['draft-04', 'veraison-legacy'] as const)("accepts keyward's %s token against keyward's JWKS (file and URL) and prints the appraisal", async (form) => {
    const file = await keyward(['ear', 'verify', tokens[form], '--jwks', jwksFile])
    expect(file).toMatchObject({ code: 0, stderr: '' })
    expect(file.stdout).toMatch(/^valid\nsignature: verified \(ES256, kid /)
    expect(file.stdout).toContain('status: warning\n')
    expect(file.stdout).toContain(
      'submod nitro: warning\n  policy: keyward:policy:test-enclave@1\n  instance-identity: 0 (none)\n  configuration: 0 (none)\n  executables: 3 (affirming)\n  file-system: 0 (none)\n  hardware: 2 (affirming)\n  runtime-opaque: 32 (warning)\n  storage-opaque: 0 (none)\n  sourced-data: 0 (none)\n  extensions: keyward\n',
    )
    const url = await keyward(['ear', 'verify', tokens[form], '--jwks', `${h.url}/.well-known/jwks.json`, '--json'])
    expect(url.code).toBe(0)
    expect(JSON.parse(url.stdout)).toMatchObject({ valid: true, appraisal: { form: form === 'draft-04' ? 'draft' : 'veraison', status: 'warning' } })
  })

  it('rejects tampered keyward tokens: bad signature, wrong profile, flat extension, missing vector, status better than the vector or the worst submod', async () => {
    const t = tokens['draft-04']
    const [hd, p, s] = t.split('.') as [string, string, string]
    const flipped = `${hd}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`
    const c = decodeJwt(t) as Record<string, any>
    const nitro = c.submods.nitro as Record<string, unknown>
    const { ear_trustworthiness_vector: _v, ...noVector } = nitro
    const cases: Array<[string, string, RegExp]> = [
      ['bad signature', flipped, /signature verification failed/],
      ['payload changed under the signature', `${hd}.${Buffer.from(JSON.stringify({ ...c, ear_status: 'affirming' })).toString('base64url')}.${s}`, /signature verification failed/],
      ['wrong profile', await resign({ ...c, eat_profile: 'tag:example.com,2026:not-ear' }), /unknown eat_profile/],
      ['flat extension', await resign({ ...c, keyward_tee: 'nitro' }), /extension claim "keyward_tee" is not a map/],
      ['missing vector', await resign({ ...c, submods: { nitro: noVector } }), /submods\[nitro\]\.ear_trustworthiness_vector/],
      ['submod better than its vector', await resign({ ...c, submods: { nitro: { ...nitro, ear_status: 'affirming' } } }), /better than its trustworthiness vector/],
      ['top better than the worst submod', await resign({ ...c, ear_status: 'affirming' }), /better than the worst submod/],
      ['Veraison names under the draft profile', await resign({ ...c, submods: { nitro: { 'ear.status': 'warning' } } }), /submods\[nitro\]\.ear_status/],
    ]
    for (const [what, token, msg] of cases) {
      const r = await keyward(['ear', 'verify', token, '--jwks', jwksFile])
      expect({ what, code: r.code, out: r.stdout }).toEqual({ what, code: 1, out: '' })
      expect(r.stderr, what).toMatch(/^ERR_TOKEN_INVALID: /)
      expect(r.stderr, what).toMatch(msg)
    }
  })

  it('refuses tokens keyward must not judge: unsigned (alg none), a tool credential typ, an expired token, and a key set with a private key', async () => {
    const c = decodeJwt(tokens['draft-04'])
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(c)).toString('base64url')}.`
    expect((await keyward(['ear', 'verify', none, '--jwks', jwksFile])).stderr).toMatch(/^ERR_TOKEN_INVALID: algorithm none is not accepted/)
    const { exp: _e, iat: _i, iss: _s, aud: _a, jti: _j, ...body } = c
    const tool = await h.deps.tokens.signJwt(body, { audience: 'keyward', ttlSeconds: 60, typ: 'keyward-tool+jwt' })
    expect((await keyward(['ear', 'verify', tool.token, '--jwks', jwksFile])).stderr).toMatch(/token type "keyward-tool\+jwt" is not an attestation result/)
    const late = await keyward(['ear', 'verify', tokens['draft-04'], '--jwks', jwksFile, '--at', new Date(Date.now() + 3_600_000).toISOString()])
    expect(late).toMatchObject({ code: 1, stderr: expect.stringMatching(/^ERR_TOKEN_INVALID: token expired/) })
    const priv = join(dir, 'private.jwks')
    writeFileSync(priv, JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'c' }] }))
    expect(await keyward(['ear', 'verify', tokens['draft-04'], '--jwks', priv])).toMatchObject({ code: 2, stderr: expect.stringMatching(/ERR_BAD_REQUEST: --jwks: a key set of public JWKs/) })
    expect(await keyward(['ear', 'verify', tokens['draft-04']])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^keyward: ERR_USAGE: give exactly one of --jwks/) })
  })

  it("accepts Veraison's published tokens (veraison/ear arc/cmd/test_vars.go testJWT, ear_test.go TestVerify_pass) with Veraison's published key", async () => {
    const a = await keyward(['ear', 'verify', fx('veraison-arc-testjwt.jwt'), '--jwks', fx('veraison-pkey.json')])
    expect(a.code).toBe(0)
    expect(a.stdout).toContain('profile: tag:github.com,2023:veraison/ear (Veraison)\nverifier: Acme Inc. / rrtrap-v1.0.0\n')
    expect(a.stdout).toContain('submod test: affirming\n  policy: https://veraison.example/policy/1/60a0068d\n  instance-identity: 2 (affirming)\n')
    const b = await keyward(['ear', 'verify', fx('veraison-verify-pass.jwt'), '--jwks', fx('veraison-pkey.json')])
    expect(b.code).toBe(0)
    expect(b.stdout).toContain('  extensions: ear.veraison.annotated-evidence, ear.veraison.key-attestation, ear.veraison.policy-claims\n')
    // Another verifier's key does not open it.
    expect((await keyward(['ear', 'verify', fx('veraison-arc-testjwt.jwt'), '--jwks', jwksFile])).stderr).toMatch(/ERR_TOKEN_INVALID: no key in the JWKS matches|signature verification failed/)
  })

  it("accepts Trustee's token (veraison/ear arc/cmd/test_vars.go testRealmJWT, issued by Trustee's attestation service) at its time, with the key Trustee put in its header", async () => {
    const at = ['--at', '2025-07-09T11:06:00Z']
    const r = await keyward(['ear', 'verify', fx('trustee-realm-expired.jwt'), '--jwks', fx('trustee-realm-header-jwk.json'), ...at])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('profile: tag:github.com,2024:confidential-containers/Trustee (Trustee, Veraison claim names)\n')
    expect(r.stdout).toContain('submod cpu0: affirming\n  policy: default\n  configuration: 3 (affirming)\n  executables: 3 (affirming)\n  hardware: 2 (affirming)\n')
    // The key in the token's own header is never used: without --jwks naming it, nothing verifies.
    expect((await keyward(['ear', 'verify', fx('trustee-realm-expired.jwt'), '--jwks', fx('veraison-pkey.json'), ...at])).code).toBe(1)
    // Today it is expired (exp 2025-07-09T11:10:39Z).
    expect((await keyward(['ear', 'verify', fx('trustee-realm-expired.jwt'), '--jwks', fx('trustee-realm-header-jwk.json')])).stderr).toMatch(/token expired/)
  })

  it.each([
    ['trustee-example-claims.json', 'Trustee attestation-service/docs/example.token.json', 'status: contraindicated'],
    ['draft-ear-json-1.json', 'draft-ietf-rats-ear §3 Figure (ear-json-1)', 'submod PSA: contraindicated'],
    ['draft-ear-json-2.json', 'draft-ietf-rats-ear §3 Figure (ear-json-2)', 'submod CCA Realm: affirming'],
    ['draft-ext-veraison-json-1.json', 'draft-ietf-rats-ear §4 Veraison extensions', 'extensions: ear_veraison_annotated_evidence, ear_veraison_policy_claims'],
    ['draft-ext-veraison-json-2.json', 'draft-ietf-rats-ear §4 Veraison extensions', 'extensions: ear_veraison_key_attestation'],
    ['draft-ext-teep-json-1.json', 'draft-ietf-rats-ear §4 TEEP extension', 'extensions: ear_teep_claims'],
    ['veraison-ear-claims.json', 'veraison/ear arc/data/ear-claims.json', 'submod test: affirming'],
    ['veraison-ear-claims-tv-ok.json', 'veraison/ear arc/data/ear-claims-tv-ok.json', 'executables: 3 (affirming)'],
    ['veraison-ear-claims-key-attestation-ok.json', 'veraison/ear arc/data/ear-claims-key-attestation-ok.json', 'extensions: ear.veraison.key-attestation'],
  ])('parses the published claims-set %s (%s), decoded only: a claims-set carries no signature', async (file, _source, line) => {
    const r = await keyward(['ear', 'verify', fx(file), '--decode-only'])
    expect(r).toMatchObject({ code: 0, stderr: '' })
    expect(r.stdout).toContain('signature: NOT CHECKED (--decode-only)\n')
    expect(r.stdout).toContain(line)
  })

  it('the draft examples pass the CDDL validator and the Veraison examples pass the Veraison validator (the oracles agree with keyward ear verify)', async () => {
    const { readFileSync } = await import('node:fs')
    const j = (f: string) => JSON.parse(readFileSync(fx(f), 'utf8')) as unknown
    for (const f of ['draft-ear-json-1.json', 'draft-ear-json-2.json', 'draft-ext-veraison-json-1.json', 'draft-ext-veraison-json-2.json', 'draft-ext-teep-json-1.json']) {
      expect(draftEarErrors(j(f), 'tag:ietf.org,2026:rats/ear#03'), f).toEqual([])
    }
    for (const f of ['veraison-ear-claims.json', 'veraison-ear-claims-tv-ok.json', 'veraison-ear-claims-key-attestation-ok.json', 'trustee-example-claims.json'])
      expect(veraisonEarErrors(j(f)), f).toEqual([])
  })
})
