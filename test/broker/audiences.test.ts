// Every token is for one purpose (RFC 8725 §3.9–3.11): a workload's release token is for
// keyward, a Vault login token is asked for explicitly, a relying party's appraisal result is for
// that relying party only, and tool credentials are typed apart from attestation results, so
// that none is accepted where another is expected.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, type Harness } from './harness.js'
import { createSessionKey, type SessionKey } from '../../enclave-client/src/session-key.js'
import { createClient } from '../../enclave-client/src/index.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import * as A from '../../src/broker/admin-services.js'
import { hashCredential } from '../../src/sealing/credentials.js'

// keyward's own audience is a URL here so that a policy can name it as a tool's audience.
const AUD = 'https://keyward.example'

describe.each(['sqlite', 'postgres'] as const)('token audiences and types on %s', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend, { extraAudiences: ['vault'], audience: AUD })
    // A tool whose credential audience is keyward's own: typ alone must keep it out of releases.
    await A.applyPolicy(h.deps, TEST_POLICY.replace('{ name: search-api,', `{ name: self, audience: '${AUD}', scopes: [x], ttl: 5m }, { name: search-api,`), 'test')
  })
  afterAll(async () => {
    await h?.stop()
  })

  async function evidenceBody(key: SessionKey) {
    const { nonce } = (await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
    const n = Buffer.from(nonce, 'base64url')
    const evidence = await testOnlyNitroCollector(h.pki).collect({ binding: bindingDigest(n, key.jktBytes), nonce: n })
    return { tee: 'nitro', nonce, key: key.publicJwk, evidence }
  }
  async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
    const r = await fetch(h.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    return { status: r.status, body: (await r.json()) as Record<string, any> }
  }
  async function releaseWith(key: SessionKey, token: string) {
    const url = `${h.url}/v1/secrets/db-password`
    const r = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: await key.dpopProof('GET', url, token) } })
    return { status: r.status, body: (await r.json()) as Record<string, any> }
  }

  it('a release token carries only keyward as audience and the attestation typ', async () => {
    const key = await createSessionKey()
    const { body } = await post('/v1/attest', await evidenceBody(key))
    expect(decodeJwt(body.token).aud).toBe(AUD)
    expect(decodeProtectedHeader(body.token).typ).toBe('eat+jwt')
    expect((await releaseWith(key, body.token)).status).toBe(200)
  })

  it('a Vault login token is requested explicitly, carries only vault, and opens nothing at keyward', async () => {
    const key = await createSessionKey()
    const r = await post('/v1/attest', { ...(await evidenceBody(key)), audience: 'vault' })
    expect(r.status).toBe(200)
    expect(decodeJwt(r.body.token).aud).toBe('vault')
    const used = await releaseWith(key, r.body.token)
    expect(used.status).toBe(401)
    expect(used.body.error.code).toBe('ERR_TOKEN_INVALID')
    // Only configured audiences can be asked for.
    const other = await post('/v1/attest', { ...(await evidenceBody(key)), audience: 'https://bank.example' })
    expect(other.status).toBe(400)
    expect(other.body.error.code).toBe('ERR_BAD_REQUEST')
  })

  it("a relying party's appraisal result is for that relying party only: not for Vault, not for keyward", async () => {
    const rp = await A.createCredential(h.deps, 'relying-party', `plugin-${backend}`, hashCredential)
    const key = await createSessionKey()
    const r = await post('/v1/appraise', await evidenceBody(key), { authorization: `Bearer ${rp}` })
    expect(r.body.decision).toBe('allow')
    expect(decodeJwt(r.body.token).aud).toBe(`rp:plugin-${backend}`)
    const jwks = createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`))
    await expect(jwtVerify(r.body.token, jwks, { audience: `rp:plugin-${backend}`, issuer: 'keyward', typ: 'eat+jwt' })).resolves.toBeTruthy()
    await expect(jwtVerify(r.body.token, jwks, { audience: 'vault', issuer: 'keyward' })).rejects.toThrow(/aud/)
    // The client whose key it is binds cannot spend the relying party's token at keyward either.
    expect((await releaseWith(key, r.body.token)).body.error.code).toBe('ERR_TOKEN_INVALID')
    // The relying party cannot choose the audience.
    const chosen = await post('/v1/appraise', { ...(await evidenceBody(key)), audience: 'vault' }, { authorization: `Bearer ${rp}` })
    expect(chosen.status).toBe(400)
  })

  it("a tool credential is typed keyward-tool+jwt: presented as an attestation token (even with keyward's own audience) it is refused, and vice versa", async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const cred = await client.credential('self')
    expect(decodeProtectedHeader(cred.token).typ).toBe('keyward-tool+jwt')
    expect(decodeJwt(cred.token).aud).toBe(AUD)
    const key = await createSessionKey()
    const asRelease = await releaseWith(key, cred.token)
    expect(asRelease.status).toBe(401)
    expect(asRelease.body.error.code).toBe('ERR_TOKEN_INVALID')
    // A credential shaped exactly like an attestation result but typed otherwise: only typ refuses it.
    const a = await client.attest()
    const claims = decodeJwt(a.token)
    const { exp: _e, iat: _i, iss: _s, aud: _a, jti: _j, ...body } = claims
    const mimic = await h.deps.tokens.signJwt(body, { audience: AUD, ttlSeconds: 60, typ: 'keyward-tool+jwt' })
    await expect(h.deps.tokens.verify(mimic.token)).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID', message: expect.stringMatching(/type/) })
    // A tool verifying its credential as docs/ear.md says (typ keyward-tool+jwt) refuses an attestation token,
    // and an RFC 9068 resource server (typ at+jwt) refuses the tool credential.
    const jwks = createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`))
    await expect(jwtVerify(a.token, jwks, { issuer: 'keyward', audience: AUD, typ: 'keyward-tool+jwt' })).rejects.toThrow(/typ/)
    await expect(jwtVerify(cred.token, jwks, { issuer: 'keyward', audience: AUD, typ: 'keyward-tool+jwt' })).resolves.toBeTruthy()
    await expect(jwtVerify(cred.token, jwks, { issuer: 'keyward', audience: AUD, typ: 'at+jwt' })).rejects.toThrow(/typ/)
    await client.close()
  })
})
