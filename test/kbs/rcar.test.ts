// The Trustee KBS protocol through the public HTTP API (app.request over a real SQLite store and
// the real SNP verifier with a testOnly AMD-like chain): a client that behaves as guest-components'
// rcar_client.rs attests and decrypts resources with each key type it generates, and each attack
// of docs/trustee.md is refused with the protocol's status, an ErrorInformation body and, once
// authenticated or once a nonce is spent, an audit row with its reasons.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHash } from 'node:crypto'
import { FlattenedEncrypt, importJWK, type JWK } from 'jose'
import { startHarness, type Harness } from '../broker/harness.js'
import { createApp } from '../../src/broker/app.js'
import * as A from '../../src/broker/admin-services.js'
import { KbsError, RcarClient, TeeKeyPair, jcs, kbsTypesAad, type Fetch, type TeeKeyAlgorithm } from './rcar-client.js'
import { testOnlySnp, withArk, type TestOnlySnp } from './snp.js'
import { KBS_PROTOCOL_VERSION } from '../../src/broker/kbs/rcar.js'
import examples from '../fixtures/kbs/kbs-types-examples.json' with { type: 'json' }
import { runKeywardInProcess } from '../helpers/cli.js'

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: coco-pod
spec:
  tees: [sev-snp]
  allowDebug: false
  conditions:
    - name: measurement-known
      expr: claims.measurement in refs["coco-measurements"]
  grants:
    secrets: ["kbs:///default/key/one", "kbs:///default/key/missing"]
`
const VALUE = 'testOnly-kbs-resource-3a9d'

describe('Trustee KBS protocol /kbs/v0 (SQLite, in-process)', () => {
  let h: Harness
  let snp: TestOnlySnp
  let fetch: Fetch
  let refId: string
  const client = (o: { key?: TeeKeyPair; tee?: string } = {}) => new RcarClient({ fetch, tee: o.tee ?? 'snp', evidence: (d) => snp.evidence(d), ...(o.key ? { key: o.key } : {}) })
  const audit = async () => (await A.allAuditRows(h.deps)).map((r) => ({ type: r.type, decision: r.decision, d: r.detail as Record<string, any> }))
  const raw = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) => fetch(path, { method: init.method ?? 'GET', headers: init.headers ?? {}, ...(init.body ? { body: init.body } : {}) })
  const info = async (r: Response) => ({ status: r.status, ...((await r.json()) as { type: string; detail: string }) })

  beforeAll(async () => {
    h = await startHarness('sqlite')
    snp = await testOnlySnp()
    h.deps.verifiers['sev-snp'] = withArk(h.deps.verifiers['sev-snp']!, snp.ark)
    const app = createApp(h.deps)
    fetch = async (path, init) => app.request(`http://localhost${path}`, init)
    await A.applyPolicy(h.deps, POLICY, 'test')
    refId = await A.addReferenceValue(h.deps, { set: 'coco-measurements', tee: 'sev-snp', value: snp.measurement, source: 'testOnly SNP report' }, 'test')
    await A.putSecret(h.deps, 'kbs:///default/key/one', { text: VALUE }, 'test')
    await A.putSecret(h.deps, 'kbs:///default/key/other', { text: 'testOnly-not-granted-kbs' }, 'test')
  })
  afterAll(async () => {
    await h?.stop()
  })

  it.each<TeeKeyAlgorithm>(['ECDH-ES+A256KW-P256', 'ECDH-ES+A256KW-P521', 'RSA-OAEP-256'])('%s tee key: handshake, resource by cookie and by token, decrypted as keypair.rs does', async (alg) => {
    const c = client({ key: new TeeKeyPair(alg) })
    const token = await c.handshake()
    expect(c.cookies.has('kbs-session-id')).toBe(true)
    expect(new TextDecoder().decode(await c.getResource('kbs:///default/key/one'))).toBe(VALUE)
    expect(new TextDecoder().decode(await c.getResourceWithToken('kbs:///default/key/one', token))).toBe(VALUE)
    const rows = await audit()
    expect(rows).toContainEqual(expect.objectContaining({ type: 'attestation', decision: 'allow', d: expect.objectContaining({ via: 'kbs', tee: 'sev-snp', policy: 'coco-pod' }) }))
    expect(rows.filter((r) => r.type === 'release:kbs-resource' && r.decision === 'allow' && r.d.name === 'kbs:///default/key/one').map((r) => r.d.via)).toEqual(expect.arrayContaining(['cookie', 'token']))
    // Nothing secret in the log or the audit: not the value, the session cookie or the token.
    for (const text of [h.logs.join(''), JSON.stringify(rows)]) for (const s of [VALUE, c.cookies.get('kbs-session-id')!, token]) expect(text).not.toContain(s)
  })

  it('the challenge selects sha256 and the Set-Cookie is scoped to /kbs/v0, HttpOnly; nothing secret in the answer', async () => {
    const r = await raw('/kbs/v0/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: KBS_PROTOCOL_VERSION, tee: 'snp', 'extra-params': '' }) })
    expect(r.status).toBe(200)
    const body = (await r.json()) as { nonce: string; 'extra-params': Record<string, string> }
    expect(Buffer.from(body.nonce, 'base64')).toHaveLength(32)
    expect(body['extra-params']).toEqual({ 'selected-hash-algorithm': 'sha256' })
    expect(r.headers.get('set-cookie')).toMatch(/^kbs-session-id=[A-Za-z0-9_-]{43}; .*Path=\/kbs\/v0; .*HttpOnly/)
  })

  it('resource without attestation: no credentials, a forged cookie, a session that only did auth → 401, not audited', async () => {
    const before = (await audit()).length
    expect(await info(await raw('/kbs/v0/resource/default/key/one'))).toMatchObject({ status: 401, type: 'https://github.com/confidential-containers/kbs/errors/TokenNotFound' })
    expect((await info(await raw('/kbs/v0/resource/default/key/one', { headers: { cookie: 'kbs-session-id=AAAA' } }))).status).toBe(401)
    const c = client()
    await c.handshake({ primary: async () => ({ not: 'snp' }) }).catch(() => undefined)
    const cookie = `kbs-session-id=${c.cookies.get('kbs-session-id')}`
    expect(await info(await raw('/kbs/v0/resource/default/key/one', { headers: { cookie } }))).toMatchObject({ status: 401, detail: expect.stringMatching(/^ERR_UNAUTHORIZED: this KBS session has not attested/) })
    expect((await audit()).length).toBe(before)
  })

  it("cookie from another session: evidence bound to session A's nonce posted with session B's cookie → 401 ERR_NONCE_MISMATCH", async () => {
    const a = client()
    const b = client()
    let stolen: Record<string, unknown> | undefined
    await a.handshake({ primary: async (d, rd) => ((stolen = { rd, ev: await snp.evidence(d) }), snp.evidence(d)) })
    await b.handshake({ nonce: () => (stolen!.rd as { nonce: string }).nonce, primary: async () => stolen!.ev }).then(
      () => expect.unreachable(),
      (e: KbsError) => expect([e.status, e.info.detail]).toEqual([401, expect.stringMatching(/^ERR_NONCE_MISMATCH/)]),
    )
    // A's cookie still works for A only; B's session never attested.
    expect(new TextDecoder().decode(await a.getResource('kbs:///default/key/one'))).toBe(VALUE)
    expect((await info(await raw('/kbs/v0/resource/default/key/one', { headers: { cookie: `kbs-session-id=${b.cookies.get('kbs-session-id')}` } }))).status).toBe(401)
  })

  it('replayed nonce: a second attest on the session → ERR_NONCE_USED; after a failed attempt spent it, the retry is refused too', async () => {
    const c = client()
    let body: unknown
    await c.handshake()
    body = c.sent.at(-1)!.body
    const cookie = `kbs-session-id=${c.cookies.get('kbs-session-id')}`
    const again = await raw('/kbs/v0/attest', { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    expect(await info(again)).toMatchObject({ status: 401, detail: expect.stringMatching(/^ERR_NONCE_USED/) })
    // A first attempt that fails verification (evidence bound to another digest) spends the nonce.
    const d = client()
    await d.handshake({ primary: async () => snp.evidence(new Uint8Array(32).fill(7)) }).catch((e: KbsError) => expect(e.info.detail).toMatch(/^ERR_BINDING_MISMATCH/))
    body = d.sent.at(-1)!.body
    const rd = (body as { 'runtime-data': Record<string, unknown> })['runtime-data']
    const fixed = { ...(body as object), 'tee-evidence': { primary_evidence: await snp.evidence(bindingOf(rd)), additional_evidence: '' } }
    const retry = await raw('/kbs/v0/attest', { method: 'POST', headers: { cookie: `kbs-session-id=${d.cookies.get('kbs-session-id')}`, 'content-type': 'application/json' }, body: JSON.stringify(fixed) })
    expect(await info(retry)).toMatchObject({ status: 401, detail: expect.stringMatching(/^ERR_NONCE_USED/) })
  })

  it('spent challenges do not hold the outstanding-challenge cap: three times the cap of handshakes in a row all succeed', async () => {
    await h.deps.store.pruneSpentNonces(h.deps.clock().getTime())
    const cap = (await h.deps.store.countNonces()) + 2
    const capped = createApp({ ...h.deps, config: { ...h.deps.config, limits: { ...h.deps.config.limits, maxOutstandingNonces: cap } } })
    const cappedFetch: Fetch = async (path, init) => capped.request(`http://localhost${path}`, init)
    for (let i = 0; i < 3 * cap; i++) {
      const c = new RcarClient({ fetch: cappedFetch, tee: 'snp', evidence: (d) => snp.evidence(d) })
      await expect(c.handshake(), `handshake ${i}`).resolves.toEqual(expect.any(String))
    }
    expect(await h.deps.store.countNonces()).toBeLessThanOrEqual(cap)
  })

  it('tee-pubkey not bound in the report data: genuine evidence for key K1 presented with key K2 → 401 ERR_BINDING_MISMATCH, audited deny', async () => {
    const victim = new TeeKeyPair()
    const attacker = client()
    await attacker
      .handshake({ primary: async (_d, rd) => snp.evidence(bindingOf({ ...rd, 'tee-pubkey': victim.pubkey })) })
      .then(() => expect.unreachable(), (e: KbsError) => expect([e.status, e.info.type.split('/').pop(), e.info.detail]).toEqual([401, 'AttestationError', expect.stringMatching(/^ERR_BINDING_MISMATCH/)]))
    expect((await audit()).at(-1)).toMatchObject({ type: 'attestation', decision: 'deny', d: { via: 'kbs', code: 'ERR_BINDING_MISMATCH' } })
  })

  it('policy-denied workload (unknown measurement) → 401 PolicyDeny with a summary; the audit has the failing condition; no resource', async () => {
    const c = client()
    const err = await c.handshake({ primary: async (d) => snp.evidence(d, { measurement: new Uint8Array(48).fill(0xee) }) }).catch((e: KbsError) => e)
    expect(err).toBeInstanceOf(KbsError)
    expect([(err as KbsError).status, (err as KbsError).info.type.split('/').pop(), (err as KbsError).info.detail]).toEqual([401, 'PolicyDeny', 'ERR_POLICY_DENIED: policy denied the attestation: 1 condition(s) failed (details are in the audit)'])
    const row = (await audit()).at(-1)!
    expect(row).toMatchObject({ type: 'attestation', decision: 'deny', d: { via: 'kbs', code: 'ERR_POLICY_DENIED' } })
    expect(JSON.stringify(row.d.failures)).toContain('measurement-known')
    expect((await info(await raw('/kbs/v0/resource/default/key/one', { headers: { cookie: `kbs-session-id=${c.cookies.get('kbs-session-id')}` } }))).status).toBe(401)
  })

  it('unknown and unserved TEEs are refused at auth with the reason; the protocol document and kbs-types example requests too', async () => {
    for (const [tee, why] of [['tdx', /no TDX verifier/], ['tpm', /enrolled AKs/], ['az-snp-vtpm', /HCL report/], ['sample', /proves nothing/], ['my-tee', /not a TEE of the KBS protocol/]] as const) {
      const e = (await client({ tee }).handshake().catch((x: unknown) => x)) as KbsError
      expect([e.status, e.info.detail]).toEqual([401, expect.stringMatching(new RegExp(`^ERR_UNKNOWN_TEE: tee ${tee} is not served by keyward: .*${why.source}`))])
    }
    const post = (b: unknown) => raw('/kbs/v0/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) }).then(info)
    expect(await post(examples.protocolDocRequest)).toMatchObject({ status: 401, type: expect.stringMatching(/SerdeError$/), detail: expect.stringContaining('keyward speaks 0.4.0') })
    expect(await post({ ...examples.request, version: '0.4.0' })).toMatchObject({ status: 401, detail: expect.stringMatching(/^ERR_UNKNOWN_TEE: tee tdx/) })
    expect(await post({ version: '0.4.0', tee: 'snp', 'extra-params': { 'supported-hash-algorithms': ['sha384', 'sm3'] } })).toMatchObject({ status: 401, detail: expect.stringContaining('sha256') })
    expect(await post(examples.attestationEc)).toMatchObject({ status: 401, type: expect.stringMatching(/SerdeError$/) })
    // Additional (device) evidence keyward cannot verify does not ride along: refused before the nonce is spent.
    const c = client()
    const e = (await c.handshake({ primary: async () => ({}) }).catch((x: unknown) => x)) as KbsError
    const body = { ...(c.sent.at(-1)!.body as object), 'tee-evidence': { primary_evidence: {}, additional_evidence: '{"nvidia":{}}' } }
    expect(e).toBeInstanceOf(KbsError)
    const cookie = `kbs-session-id=${c.cookies.get('kbs-session-id')}`
    expect(await raw('/kbs/v0/attest', { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(info)).toMatchObject({ status: 401, detail: expect.stringMatching(/^ERR_EVIDENCE_UNSUPPORTED: additional \(device\) evidence/) })
  })

  it('path traversal and malformed resource paths → 404 InvalidRequestPath; an ungranted resource → 403 (audited); a granted missing one → 404', async () => {
    const c = client()
    await c.handshake()
    const cookie = `kbs-session-id=${c.cookies.get('kbs-session-id')}`
    const get = (p: string) => raw(`/kbs/v0/resource/${p}`, { headers: { cookie } }).then(info)
    for (const p of ['default/key/one/..', '%2e%2e/key/one', 'default/%2e%2e/one', 'default%2Fkey/one', 'default/key/.one', 'default//one', 'default/key/one/extra', 'default/key', '..%2f..%2fsecret/a/b', 'default/key/one%00', 'default/key/%5C..']) {
      const r = await get(p)
      expect([p, r.status, r.type.split('/').pop()]).toEqual([p, 404, 'InvalidRequestPath'])
      expect(JSON.stringify(r)).not.toContain(VALUE)
    }
    expect(await get('default/key/other')).toMatchObject({ status: 403, type: expect.stringMatching(/PolicyDeny$/), detail: 'ERR_NOT_GRANTED: the admitting policy does not grant kbs:///default/key/other' })
    expect((await audit()).at(-1)).toMatchObject({ type: 'release:kbs-resource', decision: 'deny', d: { name: 'kbs:///default/key/other', code: 'ERR_NOT_GRANTED' } })
    expect(await get('default/key/missing')).toMatchObject({ status: 404 })
  })

  it('revoking the reference value the attestation relied on revokes it: cookie and token → 401; a /v1 token is no KBS bearer', async () => {
    const c = client()
    const token = await c.handshake()
    expect(new TextDecoder().decode(await c.getResourceWithToken('kbs:///default/key/one'))).toBe(VALUE)
    await A.revokeReferenceValue(h.deps, refId, 'test')
    expect(await info(await raw('/kbs/v0/resource/default/key/one', { headers: { cookie: `kbs-session-id=${c.cookies.get('kbs-session-id')}` } }))).toMatchObject({ status: 401, detail: 'ERR_TOKEN_INVALID: attestation revoked' })
    expect((await info(await raw('/kbs/v0/resource/default/key/one', { headers: { authorization: `Bearer ${token}` } }))).status).toBe(401)
    refId = await A.addReferenceValue(h.deps, { set: 'coco-measurements', tee: 'sev-snp', value: snp.measurement, source: 'testOnly SNP report' }, 'test')
    const v1 = await h.deps.tokens.issue({ sub: 'x' } as never)
    expect(await info(await raw('/kbs/v0/resource/default/key/one', { headers: { authorization: `Bearer ${v1.token}` } }))).toMatchObject({ status: 401, type: expect.stringMatching(/TokenVerifierError$/) })
  })

  it("JWE form: the header is {alg, enc, epk{crv,kty,x,y}} as kbs-types recomputes it; jose's own FlattenedEncrypt would not be (why jwe.ts builds it)", async () => {
    expect(kbsTypesAad(Buffer.from(JSON.stringify(examples.protectedHeader)).toString('base64url'), false)).toBe(examples.protectedHeaderAad)
    const k = new TeeKeyPair()
    const jose = await new FlattenedEncrypt(new TextEncoder().encode('x'))
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' })
      .encrypt(await importJWK(k.pubkey as JWK, 'ECDH-ES+A256KW'))
    expect(kbsTypesAad(jose.protected!, false)).not.toBe(jose.protected)
    await expect(k.decryptResponse(jose as never)).rejects.toThrow(/another AAD/)
  })

  it('releases are rate-limited per attested key as on /v1: over the burst → 429 with Retry-After, not audited', async () => {
    const app = createApp({ ...h.deps, config: { ...h.deps.config, limits: { ...h.deps.config.limits, perWorkload: { ratePerSecond: 0.001, burst: 2 } } } })
    const c = new RcarClient({ fetch: async (path, init) => app.request(`http://localhost${path}`, init), tee: 'snp', evidence: (d) => snp.evidence(d) })
    await c.handshake()
    await c.getResource('kbs:///default/key/one')
    await c.getResource('kbs:///default/key/one')
    const before = (await audit()).length
    const r = await app.request('http://localhost/kbs/v0/resource/default/key/one', { headers: { cookie: `kbs-session-id=${c.cookies.get('kbs-session-id')}` } })
    expect([r.status, r.headers.get('retry-after'), ((await r.json()) as { type: string }).type.split('/').pop()]).toEqual([429, expect.stringMatching(/^\d+$/), 'RateLimited'])
    expect((await audit()).length).toBe(before)
  })

  it('`keyward secret put kbs:///repo/type/tag` stores what /kbs/v0/resource/repo/type/tag then serves; a malformed kbs: name is ERR_USAGE', async () => {
    const cli = runKeywardInProcess
    expect(await cli(['secret', 'put', 'kbs:///default/key/missing', '--text', 'testOnly-from-the-cli', '--data-dir', h.config.dataDir])).toMatchObject({ code: 0 })
    const c = client()
    await c.handshake()
    expect(new TextDecoder().decode(await c.getResource('kbs:///default/key/missing'))).toBe('testOnly-from-the-cli')
    for (const bad of ['kbs://default/key/x', 'kbs:///default/key', 'kbs:///default/../x', 'kbs:///a/b/c/d']) {
      expect(await cli(['secret', 'put', bad, '--text', 'x', '--data-dir', h.config.dataDir])).toMatchObject({ code: 2, stderr: expect.stringContaining('ERR_USAGE') })
    }
  })
})

/** What an honest client hashes for `rd` (the test client's own JCS and sha256). */
function bindingOf(rd: Record<string, unknown>): Uint8Array {
  return new Uint8Array(createHash('sha256').update(jcs({ 'tee-pubkey': rd['tee-pubkey'], nonce: rd.nonce, 'additional-evidence': '' })).digest())
}
