// keyward's attestation tokens (EAR, ES256) against the JWT auth role of docs/vault.md, checked
// with the rules Vault's JWT auth applies (vault-jwt-rules.ts), keys fetched from a JWKS over HTTP.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { createRemoteJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type CryptoKey } from 'jose'
import { REPO_ROOT } from '../helpers/vectors.js'
import { vaultJwtLogin, VaultLoginError, type VaultJwtConfig, type VaultJwtRole } from './vault-jwt-rules.js'

const ISS = 'https://keyward.example'
const NOW = 1_800_000_000
const M1 = 'a1'.repeat(48)

/** The role exactly as docs/vault.md gives it. */
function documentedRole(): VaultJwtRole {
  const md = readFileSync(resolve(REPO_ROOT, 'docs/vault.md'), 'utf8')
  const m = /<!-- jwt-role:begin -->\s*```json\n([\s\S]*?)```\s*<!-- jwt-role:end -->/.exec(md)
  if (!m) throw new Error('docs/vault.md has no jwt-role block')
  return JSON.parse(m[1] as string) as VaultJwtRole
}

interface TestKey {
  kid: string
  privateKey: CryptoKey
  publicJwk: JWK
}
async function testOnlyKey(kid: string, alg = 'ES256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } }
}

/** The EAR attestation-result shape keyward issues (draft-ietf-rats-ear-04, docs/ear.md), with its `keyward` extension map. */
function earClaims(over: Record<string, unknown> = {}, ext: Record<string, unknown> = {}): JWTPayload {
  const keyward = Object.fromEntries(Object.entries({ workload: 'snp:' + M1.slice(0, 16), tee: 'sev-snp', policy: 'prod-db', measurement: M1, ...ext }).filter(([, v]) => v !== undefined))
  return {
    eat_profile: 'tag:ietf.org,2026:rats/ear#04',
    ear_status: 'affirming',
    ear_verifier_id: { developer: 'keyward', build: 'keyward 0.1.0' },
    eat_nonce: 'q3VtYmxlLW5vbmNlLTMyLWJ5dGVzLWxvbmctZXhhbXBsZQ',
    submods: { 'sev-snp': { ear_status: 'affirming', ear_trustworthiness_vector: { hardware: 2 }, ear_appraisal_policy_ids: ['prod-db'], keyward: { measurement: M1 } } },
    cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
    sub: keyward.workload,
    keyward,
    ...over,
  }
}

async function sign(key: TestKey, claims: JWTPayload, o: { aud?: string | string[]; iat?: number; exp?: number; alg?: string } = {}): Promise<string> {
  const iat = o.iat ?? NOW
  return new SignJWT(claims)
    .setProtectedHeader({ alg: o.alg ?? 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(ISS)
    .setAudience(o.aud ?? 'vault')
    .setIssuedAt(iat)
    .setExpirationTime(o.exp ?? iat + 300)
    .setJti(`jti-${Math.random()}`)
    .sign(key.privateKey)
}

let server: Server
let config: VaultJwtConfig
let current: TestKey
let previous: TestKey
let outsider: TestKey
let rsa: TestKey
const role = documentedRole()
const login = (jwt: string, r: VaultJwtRole = role, now = NOW) => vaultJwtLogin(jwt, 'keyward-attested', config, r, now)
async function loginError(jwt: string, r: VaultJwtRole = role, now = NOW): Promise<string> {
  const e = await login(jwt, r, now).then(() => undefined, (x: unknown) => x)
  expect(e).toBeInstanceOf(VaultLoginError)
  return (e as Error).message
}

beforeAll(async () => {
  ;[current, previous, outsider, rsa] = await Promise.all([testOnlyKey('k2'), testOnlyKey('k1'), testOnlyKey('k1'), testOnlyKey('r1', 'RS256')])
  const jwks = JSON.stringify({ keys: [current.publicJwk, previous.publicJwk, rsa.publicJwk] })
  server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'application/json' }).end(jwks)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`)
  config = { jwks: createRemoteJWKSet(url), jwt_supported_algs: ['ES256'], bound_issuer: ISS }
})
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()))
})

describe('Vault JWT auth with the documented role', () => {
  it('accepts an attestation token and maps claims into token metadata', async () => {
    const r = await login(await sign(current, earClaims()))
    expect(r.aliasName).toBe('snp:' + M1.slice(0, 16))
    expect(r.metadata).toEqual({ role: 'keyward-attested', tee: 'sev-snp', measurement: M1, policy: 'prod-db', jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' })
    expect(r.policies).toEqual(['app-read'])
  })

  it('accepts a token signed by the previous key still in the JWKS (rotation)', async () => {
    expect((await login(await sign(previous, earClaims()))).aliasName).toMatch(/^snp:/)
  })

  it('rejects a signature from a key not in the JWKS, a tampered payload, and an algorithm outside jwt_supported_algs', async () => {
    expect(await loginError(await sign(outsider, earClaims()))).toMatch(/^error verifying token/)
    const [h, p, s] = (await sign(current, earClaims())).split('.') as [string, string, string]
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), keyward: { policy: 'prod-db', measurement: 'b2'.repeat(48) }, exp: NOW + 9999 })).toString('base64url')
    expect(await loginError(`${h}.${forged}.${s}`)).toMatch(/^error verifying token/)
    expect(await loginError(await sign(rsa, earClaims(), { alg: 'RS256' }))).toMatch(/^error verifying token/)
  })

  it('enforces bound_audiences, and refuses an aud when the role binds none', async () => {
    expect(await loginError(await sign(current, earClaims(), { aud: 'https://keyward.example/rp/other' }))).toMatch(/aud claim does not match/)
    expect((await login(await sign(current, earClaims(), { aud: ['other', 'vault'] }))).metadata.policy).toBe('prod-db')
    const { bound_audiences: _, ...noAud } = role
    expect(await loginError(await sign(current, earClaims()), noAud)).toMatch(/no audiences bound to the role/)
  })

  it('enforces expiry with clock_skew_leeway (30 s in the documented role)', async () => {
    const jwt = await sign(current, earClaims(), { iat: NOW - 300, exp: NOW })
    expect((await login(jwt, role, NOW + 29)).aliasName).toMatch(/^snp:/)
    expect(await loginError(jwt, role, NOW + 31)).toMatch(/token is expired/)
    expect(await loginError(await sign(current, earClaims(), { iat: NOW + 120, exp: NOW + 420 }))).toMatch(/not valid yet|future/)
  })

  it('enforces bound_claims: exact policy, measurement from the list, claim present', async () => {
    expect(await loginError(await sign(current, earClaims({}, { policy: 'staging' })))).toMatch(/"\/keyward\/policy" does not match/)
    expect((await login(await sign(current, earClaims({}, { measurement: 'b2'.repeat(48) })))).metadata.measurement).toBe('b2'.repeat(48))
    expect(await loginError(await sign(current, earClaims({}, { measurement: 'c3'.repeat(48) })))).toMatch(/"\/keyward\/measurement" does not match/)
    expect(await loginError(await sign(current, earClaims({}, { policy: undefined })))).toMatch(/"\/keyward\/policy" is missing/)
    // A map cannot be bound as a string: roles point into it (/keyward/policy).
    expect(await loginError(await sign(current, earClaims()), { ...role, bound_claims: { keyward: 'x' } })).toMatch(/not a string or list/)
  })

  it('supports glob bound claims and JSON-pointer claims', async () => {
    const globRole: VaultJwtRole = { ...role, bound_claims_type: 'glob', bound_claims: { '/keyward/policy': 'prod-*', '/submods/sev-snp/ear_status': 'affirming' } }
    expect((await login(await sign(current, earClaims({}, { policy: 'prod-payments' })), globRole)).metadata.policy).toBe('prod-payments')
    expect(await loginError(await sign(current, earClaims({}, { policy: 'dev-prod' })), globRole)).toMatch(/does not match/)
    const warn = earClaims({ submods: { 'sev-snp': { ear_status: 'warning', ear_trustworthiness_vector: { 'runtime-opaque': 32 }, ear_appraisal_policy_ids: ['prod-db'], keyward: {} } } })
    expect(await loginError(await sign(current, warn), globRole)).toMatch(/ear_status" does not match/)
  })

  it('fails when user_claim is missing or a claim mapping is not a string', async () => {
    expect(await loginError(await sign(current, earClaims({ sub: undefined })))).toMatch(/claim "sub" not found/)
    expect(await loginError(await sign(current, earClaims()), { ...role, claim_mappings: { submods: 'submods' } })).toMatch(/error converting claim/)
  })
})
