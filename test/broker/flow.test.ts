// Integration: the real HTTP server over SQLite and PostgreSQL, the full challenge → attest →
// release flow with the real Nitro verifier (testOnly PKI), and every rejection the foundation
// issue lists.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { SignJWT, exportJWK, generateKeyPair, decodeJwt, decodeProtectedHeader } from 'jose'
import { randomUUID } from 'node:crypto'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, type Harness } from './harness.js'
import { createClient } from '../../enclave-client/src/index.js'
import { createSessionKey } from '../../enclave-client/src/session-key.js'
import { createReleaseVerifier } from '../../enclave-client/src/release.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import * as A from '../../src/broker/admin-services.js'
import { createApp } from '../../src/broker/app.js'

async function post(h: Harness, path: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(h.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
  return { status: r.status, body: (await r.json()) as Record<string, any> }
}

/** A client of the harness's broker with the testOnly Nitro collector (or the one given), no retries. */
function clientOf(h: Harness, collector = testOnlyNitroCollector(h.pki)) {
  return createClient({ broker: h.url, collector, retries: 0 })
}

/** Builds an attest body by hand (as the client would) so tests can replay or alter it. */
async function attestBody(h: Harness, opts: { nonce?: string } = {}) {
  const key = await createSessionKey('ES256')
  const nonce = opts.nonce ?? (await post(h, '/v1/challenge', {})).body.nonce
  const binding = bindingDigest(Buffer.from(nonce, 'base64url'), key.jktBytes)
  const evidence = await testOnlyNitroCollector(h.pki).collect({ binding, nonce: Buffer.from(nonce, 'base64url') })
  return { key, body: { tee: 'nitro', nonce, key: key.publicJwk, evidence } }
}

describe.each(['sqlite', 'postgres'] as const)('broker flow on %s', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend)
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('challenge → attest → release delivers the secret, JWE-encrypted to the bound key', async () => {
    const client = clientOf(h)
    const a = await client.attest()
    expect(a.policy).toBe('test-enclave')
    const claims = decodeJwt(a.token) as Record<string, any>
    expect(claims.eat_profile).toBe('tag:ietf.org,2026:rats/ear#04')
    // Nitro memory is isolated, not encrypted: AR4SI runtime-opaque 32, a warning (docs/ear.md).
    expect(claims.submods.nitro.ear_status).toBe('warning')
    expect(typeof claims.cnf.jkt).toBe('string')
    expect(claims.exp - claims.iat).toBe(300)
    expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    await client.close()
  })

  // The JWE and the signed release inside it are written by keyward itself (src/broker/jwe.ts, jws.ts):
  // the client opens and checks them with jose for every key kind it can hold.
  it.each(['ES256', 'ES384', 'RSA-OAEP-256'] as const)('a %s session key: attest, then a secret and a tool credential release open with the client', async (keyAlg) => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0, keyAlg })
    await client.attest()
    expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    const cred = await client.credential('github')
    expect(decodeJwt(cred.token)).toMatchObject({ aud: 'https://api.github.com', scope: 'repo:read' })
    await client.close()
  })

  it('a nonce is single use, and unknown or expired nonces are refused', async () => {
    const { body } = await attestBody(h)
    expect((await post(h, '/v1/attest', body)).status).toBe(200)
    const again = await post(h, '/v1/attest', body)
    expect(again.status).toBe(403)
    expect(again.body.error.code).toBe('ERR_NONCE_USED')
    const unknown = await attestBody(h, { nonce: Buffer.alloc(32, 7).toString('base64url') })
    expect((await post(h, '/v1/attest', unknown.body)).body.error.code).toBe('ERR_NONCE_UNKNOWN')
    const late = await attestBody(h)
    h.advance(61_000)
    try {
      expect((await post(h, '/v1/attest', late.body)).body.error.code).toBe('ERR_NONCE_EXPIRED')
    } finally {
      h.advance(-61_000)
    }
  })

  it('concurrent attestations with one nonce: exactly one succeeds', async () => {
    const { body } = await attestBody(h)
    const results = await Promise.all(Array.from({ length: 8 }, () => post(h, '/v1/attest', body)))
    expect(results.filter((r) => r.status === 200)).toHaveLength(1)
    expect(results.filter((r) => r.body.error?.code === 'ERR_NONCE_USED')).toHaveLength(7)
  })

  it('evidence bound to another key is refused', async () => {
    const { body } = await attestBody(h)
    const other = await createSessionKey('ES256')
    const r = await post(h, '/v1/attest', { ...body, key: other.publicJwk })
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('ERR_BINDING_MISMATCH')
  })

  it('a document whose public_key is another key than the presented one is refused; its own key passes', async () => {
    const key = await createSessionKey('ES256')
    const other = await createSessionKey('ES256')
    const attestWith = async (publicKey: Uint8Array) => {
      const nonce = (await post(h, '/v1/challenge', {})).body.nonce as string
      const n = Buffer.from(nonce, 'base64url')
      const evidence = await testOnlyNitroCollector(h.pki, { public_key: publicKey }).collect({ binding: bindingDigest(n, key.jktBytes), nonce: n })
      return post(h, '/v1/attest', { tee: 'nitro', nonce, key: key.publicJwk, evidence })
    }
    const r = await attestWith(other.spki)
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('ERR_BINDING_MISMATCH')
    expect((await attestWith(key.spki)).status).toBe(200)
  })

  it('a token without proof of possession, or with a proof by another key, gets nothing', async () => {
    const { key, body } = await attestBody(h)
    const { token } = (await post(h, '/v1/attest', body)).body
    const url = `${h.url}/v1/secrets/db-password`
    const noProof = await fetch(url, { headers: { authorization: `DPoP ${token}` } })
    expect(noProof.status).toBe(401)
    expect(((await noProof.json()) as any).error.code).toBe('ERR_DPOP_INVALID')
    const bearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
    expect(bearer.status).toBe(401)
    const thief = await createSessionKey('ES256')
    const stolen = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: await thief.dpopProof('GET', url, token) } })
    expect(stolen.status).toBe(401)
    expect(((await stolen.json()) as any).error.code).toBe('ERR_DPOP_INVALID')
    // The rightful key succeeds, once per proof.
    const proof = await key.dpopProof('GET', url, token)
    const ok = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof } })
    expect(ok.status).toBe(200)
    const replay = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof } })
    expect(((await replay.json()) as any).error.code).toBe('ERR_DPOP_INVALID')
    // A proof for another URL does not open this one.
    const wrongUrl = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: await key.dpopProof('GET', `${h.url}/v1/secrets/api-key`, token) } })
    expect(wrongUrl.status).toBe(401)
  })

  it('a forged token (signed by another key) is refused', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256')
    const forged = await new SignJWT({ eat_profile: 'tag:github.com,2023:veraison/ear', cnf: { jkt: 'x'.repeat(43) } })
      .setProtectedHeader({ alg: 'ES256', kid: 'testOnly', jwk: await exportJWK(publicKey) } as never)
      .setIssuer('keyward').setAudience('keyward').setIssuedAt().setExpirationTime('5m').setJti(randomUUID())
      .sign(privateKey)
    const r = await fetch(`${h.url}/v1/secrets/db-password`, { headers: { authorization: `DPoP ${forged}`, dpop: 'x.y.z' } })
    expect(r.status).toBe(401)
    expect(((await r.json()) as any).error.code).toBe('ERR_TOKEN_INVALID')
  })

  it('a secret the admitting policy does not grant is refused', async () => {
    const client = clientOf(h)
    await expect(client.getSecret('not-granted')).rejects.toMatchObject({ code: 'ERR_NOT_GRANTED' })
    await client.close()
  })

  it('a tool grant releases a stored API key (not otherwise granted as a secret) JWE-encrypted to the agent key', async () => {
    const client = clientOf(h)
    const c = await client.credential('search-api')
    expect(c).toMatchObject({ tool: 'search-api', kind: 'api-key', token: 'testOnly-search-api-key-51d0', expiresAt: null })
    await expect(client.getSecret('search-api-key')).rejects.toMatchObject({ code: 'ERR_NOT_GRANTED' })
    await client.close()
  })

  it('policy denial: the audit lists the failing condition with expected and actual values; the workload gets a summary', async () => {
    const client = clientOf(h, testOnlyNitroCollector(h.pki, { pcrs: new Map([[0, new Uint8Array(48).fill(9)], [1, new Uint8Array(48).fill(2)], [2, new Uint8Array(48).fill(3)]]) }))
    const err = await client.attest().then(() => null, (e: unknown) => e as { code: string; failures: Array<Record<string, unknown>> })
    expect(err?.code).toBe('ERR_POLICY_DENIED')
    expect(err!.failures).toEqual([])
    const row = (await A.allAuditRows(h.deps)).filter((r) => r.type === 'attestation' && r.decision === 'deny').at(-1)!
    const f = (row.detail.failures as Array<Record<string, unknown>>).find((x) => x.condition === 'pcr0-known')!
    expect(f.actual).toBe('09'.repeat(48))
    await client.close()
  })

  it('admin endpoints refuse requests without a valid credential', async () => {
    for (const auth of [undefined, 'Bearer nope', `Bearer ${h.adminToken}x`, `Bearer ${h.adminToken.replace('kw.admin.', 'kw.rp.')}`]) {
      const r = await fetch(`${h.url}/v1/admin/secrets`, { headers: auth ? { authorization: auth } : {} })
      expect(r.status).toBe(401)
      expect(((await r.json()) as any).error.code).toBe('ERR_UNAUTHORIZED')
    }
    const ok = await fetch(`${h.url}/v1/admin/secrets`, { headers: { authorization: `Bearer ${h.adminToken}` } })
    expect(ok.status).toBe(200)
    const listed = JSON.stringify(await ok.json())
    expect(listed).toContain('db-password')
    expect(listed).not.toContain('testOnly-db-password')
  })

  it('malformed bodies, unknown TEEs, wrong-size nonces and oversized requests get 4xx JSON errors', async () => {
    const cases: Array<[string | object, number, string]> = [
      ['{not json', 400, 'ERR_BAD_REQUEST'],
      [{ tee: 'sgx', nonce: 'a'.repeat(43), key: {}, evidence: {} }, 400, 'ERR_BAD_REQUEST'],
      [{ tee: 'nitro', nonce: 'AAAA', key: { kty: 'EC', crv: 'P-256', x: 'a', y: 'b' }, evidence: {} }, 400, 'ERR_BAD_REQUEST'],
      [{ tee: 'nitro', nonce: 'a'.repeat(43), key: { kty: 'EC', crv: 'P-256', x: 'a', y: 'b' }, evidence: { document: '!!' } }, 400, 'ERR_EVIDENCE_MALFORMED'],
    ]
    for (const [body, status, code] of cases) {
      const r = await post(h, '/v1/attest', body)
      expect(r.status, JSON.stringify(r.body)).toBe(status)
      expect(r.body.error.code).toBe(code)
      expect(JSON.stringify(r.body)).not.toMatch(/at .*\.ts:\d+/)
    }
    // Oversized: checked in-process (over a socket the server answers 413 and closes while the client is still sending).
    const big = await createApp(h.deps).request('/v1/attest', { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(600 * 1024) }, body: 'x'.repeat(600 * 1024) })
    expect(big.status).toBe(413)
    expect(((await big.json()) as any).error.code).toBe('ERR_BODY_TOO_LARGE')
    const wrongType = await fetch(`${h.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' })
    expect(wrongType.status).toBe(415)
    const nothing = await fetch(`${h.url}/v1/nothing`)
    expect(nothing.status).toBe(404)
    expect(((await nothing.json()) as any).error.code).toBe('ERR_NOT_FOUND')
  })

  it('KEK rotation re-wraps every data key and keeps every secret readable', async () => {
    const before = await h.deps.store.allSecretVersions()
    const r = await A.rotateKek(h.deps)
    expect(r.rewrapped).toBe(before.length)
    const after = await h.deps.store.allSecretVersions()
    for (const row of after) expect(row.kekId).toBe(r.kekId)
    // The sealed token-signing keys moved to the new KEK as well.
    expect(r.signingKeys).toBeGreaterThanOrEqual(1)
    for (const k of await h.deps.store.listSigningKeys()) expect(JSON.parse(k.sealedPrivate).kekId).toBe(r.kekId)
    // Ciphertext at rest is untouched; only the wrapped data keys change.
    expect(after.map((x) => Buffer.from(x.ciphertext).toString('hex')).sort()).toEqual(before.map((x) => Buffer.from(x.ciphertext).toString('hex')).sort())
    const client = clientOf(h)
    expect(new TextDecoder().decode(await client.getSecret('api-key'))).toBe('testOnly-api-key-77aa')
    await client.close()
  })

  it('signing-key rotation keeps tokens of the old key valid and publishes both keys', async () => {
    // The token of the old key itself, no client that could silently re-attest.
    const { key, body } = await attestBody(h)
    const { token } = (await post(h, '/v1/attest', body)).body as { token: string }
    const oldKid = decodeProtectedHeader(token).kid
    const kid = await A.rotateSigningKey(h.deps)
    expect(kid).not.toBe(oldKid)
    const jwks = (await (await fetch(`${h.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid, oldKid]))
    const url = `${h.url}/v1/secrets/db-password`
    const r = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: await key.dpopProof('GET', url, token) } })
    expect(r.status).toBe(200)
    // New tokens come from the new key.
    const fresh = (await post(h, '/v1/attest', (await attestBody(h)).body)).body as { token: string }
    expect(decodeProtectedHeader(fresh.token).kid).toBe(kid)
  })

  it('restart keeps all state: tokens, secrets, policies, audit', async () => {
    const { key, body } = await attestBody(h)
    const { token } = (await post(h, '/v1/attest', body)).body as { token: string }
    const auditBefore = (await A.allAuditRows(h.deps)).length
    await h.restart()
    // The token issued before the restart, used as it is.
    const url = `${h.url}/v1/secrets/db-password`
    const proof = await key.dpopProof('GET', url, token)
    const r = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof } })
    expect(r.status).toBe(200)
    const jwe = ((await r.json()) as { jwe: string }).jwe
    // The release is signed by the broker (a key published after the restart too) and bound to this request.
    const releases = createReleaseVerifier({ fetchJwks: async () => (await fetch(`${h.url}/.well-known/jwks.json`)).json() })
    const opened = await releases.open(new TextDecoder().decode(await key.decrypt(jwe)), { kind: 'secret', name: 'db-password', dpopJti: String(decodeJwt(proof).jti), jkt: key.jkt })
    expect(new TextDecoder().decode(opened.value)).toBe('testOnly-db-password-9f2c')
    expect((await A.allAuditRows(h.deps)).length).toBeGreaterThan(auditBefore)
    expect((await A.verifyAudit(h.deps)).ok).toBe(true)
  })

  it('a token issued under an older version of its policy releases nothing once the policy changes', async () => {
    const { key, body } = await attestBody(h)
    const { token } = (await post(h, '/v1/attest', body)).body as { token: string }
    const url = `${h.url}/v1/secrets/db-password`
    const get = async () => fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: await key.dpopProof('GET', url, token) } })
    expect((await get()).status).toBe(200)
    // The same policy name, a new version that still grants the secret: the old token must re-attest.
    await A.applyPolicy(h.deps, TEST_POLICY.replace('secrets: [db-password, api-key]', 'secrets: [db-password, api-key, not-granted]'), 'test')
    try {
      const r = await get()
      expect(r.status).toBe(403)
      expect(((await r.json()) as any).error.code).toBe('ERR_NOT_GRANTED')
    } finally {
      await A.applyPolicy(h.deps, TEST_POLICY, 'test')
    }
  })

  it('revoking a reference value denies at once and revokes tokens granted on it', async () => {
    const client = clientOf(h)
    await client.attest()
    const ref = (await h.deps.store.listReferenceValues('nitro-pcr0')).find((r) => r.revokedAt === null)!
    const r = await A.revokeReferenceValue(h.deps, ref.id, 'test')
    expect(r.attestations).toBeGreaterThanOrEqual(1)
    // The token is revoked (ERR_TOKEN_INVALID); the client re-attests once and is denied.
    await expect(client.getSecret('db-password')).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
    const audit = await A.allAuditRows(h.deps)
    expect(audit.some((e) => e.type === 'release:secret' && e.decision === 'deny' && (e.detail as { code?: string }).code === 'ERR_TOKEN_INVALID')).toBe(true)
    const fresh = clientOf(h)
    await expect(fresh.attest()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
    await A.addReferenceValue(h.deps, { set: 'nitro-pcr0', tee: 'nitro', value: ref.value, source: 're-approved' }, 'test')
    await client.close()
    await fresh.close()
  })

  it('the audit chain detects an edited row; no secret value, token or key reaches the logs or the audit', async () => {
    const rows = await A.allAuditRows(h.deps)
    expect((await A.verifyAudit(h.deps)).ok).toBe(true)
    const text = JSON.stringify(rows) + h.logs.join('')
    for (const secret of ['testOnly-db-password-9f2c', 'testOnly-api-key-77aa', h.adminToken.split('.').pop()!]) expect(text).not.toContain(secret)
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/) // no JWT
    expect(text).not.toMatch(/"d":"/) // no private JWK
    const victim = rows[Math.floor(rows.length / 2)]!
    await h.location.exec(`UPDATE audit_log SET subject = 'tampered' WHERE seq = ${victim.seq}`)
    const v = await A.verifyAudit(h.deps)
    expect(v.ok).toBe(false)
  })
})
