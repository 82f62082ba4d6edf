// Integration with Vault through the test-only Vault API stand-in: attestation-bound Vault
// tokens (metadata, wrapping, revocation), KV v2 as a secret source, Transit as the KEK, tool
// credentials for agents, tokens that Vault's JWT auth accepts, and the background-check
// (appraise) flow a Vault auth plugin runs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt, jwtVerify, createRemoteJWKSet } from 'jose'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, type Harness } from './harness.js'
import { startVaultStandIn, type VaultStandIn } from '../vault/vault-api-stand-in.js'
import { vaultJwtLogin, type VaultJwtRole, type VaultJwtConfig } from '../vault/vault-jwt-rules.js'
import { createClient } from '../../enclave-client/src/index.js'
import { createSessionKey } from '../../enclave-client/src/session-key.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import * as A from '../../src/broker/admin-services.js'
import { hashCredential } from '../../src/sealing/credentials.js'
import { REPO_ROOT } from '../helpers/vectors.js'

const VAULT_POLICY = TEST_POLICY.replace(
  "    tools: [{ name: github, audience: https://api.github.com, scopes: [repo:read], ttl: 10m }, { name: search-api, apiKeySecret: search-api-key }]",
  `    secrets: [db-password, api-key, kv-db]
    vault: { role: payments, policies: [payments-read], ttl: 15m, num_uses: 0 }
    tools: [{ name: github, audience: https://api.github.com, scopes: [repo:read], ttl: 10m }]`,
)
  .replace('    secrets: [db-password, api-key]\n', '')
  // The testOnly fixtures fill PCR i with i+1: PCR1 is 02…02 on an unchanged host.
  .replace('  grants:\n', `    - name: pcr1-known\n      expr: claims.details.pcrs["1"] == "${'02'.repeat(48)}"\n  grants:\n`)

describe('broker with Vault (stand-in)', () => {
  let vault: VaultStandIn
  let h: Harness
  beforeAll(async () => {
    vault = await startVaultStandIn()
    vault.addTokenRole('payments', { allowed_policies: ['payments-read'], orphan: true })
    vault.createTransitKey('keyward', { derived: true })
    vault.kvPut('secret', 'app/db', { password: 'testOnly-kv-password-v1' })
    vault.kvPut('secret', 'app/db', { password: 'testOnly-kv-password-v2' })
    const dir = mkdtempSync(join(tmpdir(), 'keyward-vault-token-'))
    const tokenFile = join(dir, 'token')
    writeFileSync(tokenFile, vault.rootToken, { mode: 0o600 })
    h = await startHarness('sqlite', {
      vault: { addr: vault.addr, tokenFile, timeoutMs: 2000 },
      kek: { provider: 'vault-transit', key: 'keyward' },
      extraAudiences: ['vault'],
    })
    await A.applyPolicy(h.deps, VAULT_POLICY, 'test')
    await A.putSecret(h.deps, 'kv-db', { vaultKv: { mount: 'secret', path: 'app/db', version: 1, field: 'password' } }, 'test')
  })
  afterAll(async () => {
    await h?.stop()
    await vault?.close()
  })

  it('secrets are sealed under Vault Transit and released; a KV v2 reference is read at its version', async () => {
    const rows = await h.deps.store.allSecretVersions()
    expect(rows.every((r) => r.kekId.startsWith('transit:keyward:'))).toBe(true)
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    expect(new TextDecoder().decode(await client.getSecret('kv-db'))).toBe('testOnly-kv-password-v1')
    await client.close()
  })

  it('mints a Vault token through the token role with metadata, and revokes it when the workload fails re-attestation', async () => {
    // One client session (one key) on one enclave image (PCR0); its PCR1 changes between attestations.
    let compromised = false
    const good = testOnlyNitroCollector(h.pki)
    const pcrs = new Map([[0, new Uint8Array(48).fill(1)], [1, new Uint8Array(48).fill(7)], [2, new Uint8Array(48).fill(3)]])
    const bad = testOnlyNitroCollector(h.pki, { pcrs })
    const client = createClient({ broker: h.url, collector: { tee: 'nitro', available: async () => true, collect: (r) => (compromised ? bad : good).collect(r) }, retries: 0 })
    const a = await client.attest()
    const vt = await client.vaultToken()
    expect(vt.token).toBeTruthy()
    const t = vault.tokenByAccessor(vt.accessor!)!
    expect(t.policies).toContain('payments-read')
    const jkt = (decodeJwt(a.token) as { cnf: { jkt: string } }).cnf.jkt
    expect(t.meta).toMatchObject({ keyward_jkt: jkt, keyward_tee: 'nitro', keyward_policy: 'test-enclave' })
    expect(t.revoked).toBe(false)
    expect(await h.deps.store.listLiveVaultLeases({ jkt })).toHaveLength(1)
    compromised = true
    await expect(client.attest()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
    expect(vault.tokenByAccessor(vt.accessor!)!.revoked).toBe(true)
    expect(await h.deps.store.listLiveVaultLeases({ jkt })).toHaveLength(0)
    await client.close()
  })

  it("denied evidence from another workload bound to someone's public key does not revoke that key's Vault tokens", async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const a = await client.attest()
    const vt = await client.vaultToken()
    const jkt = (decodeJwt(a.token) as { cnf: { jkt: string } }).cnf.jkt
    // Anyone can compute a binding for a public key: another image (PCR0) binds its evidence to this key.
    const victimJwk = (await client.evidence()).key // the public JWK the victim's session attests with
    const { nonce } = (await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
    const n = Buffer.from(nonce, 'base64url')
    const other = await testOnlyNitroCollector(h.pki, { pcrs: new Map([[0, new Uint8Array(48).fill(9)]]) }).collect({ binding: bindingDigest(n, Buffer.from(jkt, 'base64url')), nonce: n })
    const r = await fetch(`${h.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tee: 'nitro', nonce, key: victimJwk, evidence: other }) })
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('ERR_POLICY_DENIED')
    expect(vault.tokenByAccessor(vt.accessor!)!.revoked).toBe(false)
    await client.close()
  })

  it('response-wraps the Vault token on request', async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const vt = await client.vaultToken({ wrap: true })
    expect(vt.wrapToken).toBeTruthy()
    expect(vt.token).toBeUndefined()
    await client.close()
  })

  it('revoking a reference value revokes the Vault tokens granted on it', async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const vt = await client.vaultToken()
    const ref = (await h.deps.store.listReferenceValues('nitro-pcr0')).find((r) => r.revokedAt === null)!
    const r = await A.revokeReferenceValue(h.deps, ref.id, 'test')
    expect(r.vaultTokens).toBeGreaterThanOrEqual(1)
    expect(vault.tokenByAccessor(vt.accessor!)!.revoked).toBe(true)
    const audit = await A.allAuditRows(h.deps)
    expect(audit.some((e) => e.type.startsWith('vault') && JSON.stringify(e.detail).includes(vt.accessor!))).toBe(true)
    await A.addReferenceValue(h.deps, { set: 'nitro-pcr0', tee: 'nitro', value: ref.value, source: 're-approved' }, 'test')
    await client.close()
  })

  it('Vault down, denying or sealed gives a 5xx with a code and releases nothing', async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    await client.attest()
    for (const [mode, code] of [['sealed', 'ERR_VAULT_SEALED'], ['denied', 'ERR_VAULT_DENIED'], ['down', 'ERR_VAULT_UNAVAILABLE']] as const) {
      await vault.setMode(mode)
      try {
        await expect(client.vaultToken()).rejects.toMatchObject({ code })
      } finally {
        await vault.setMode('up')
      }
    }
    await client.close()
  })

  it('issues short-lived tool credentials bound to the agent key', async () => {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const cred = await client.credential('github')
    const jwks = createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`))
    const { payload } = await jwtVerify(cred.token, jwks, { audience: 'https://api.github.com', issuer: 'keyward' })
    expect(payload.scope).toBe('repo:read')
    expect((payload.exp as number) - (payload.iat as number)).toBe(600)
    expect((payload.cnf as { jkt: string }).jkt).toBeTruthy()
    await expect(client.credential('gitlab')).rejects.toMatchObject({ code: 'ERR_NOT_GRANTED' })
    await client.close()
  })

  it("attestation tokens pass Vault's JWT auth rules with the documented role, against keyward's real JWKS", async () => {
    const md = readFileSync(join(REPO_ROOT, 'docs/vault.md'), 'utf8')
    const role = JSON.parse(/<!-- jwt-role:begin -->\s*```json\n([\s\S]*?)```/.exec(md)![1]!) as VaultJwtRole
    // A Vault login token is asked for explicitly (audience vault); release tokens carry keyward only.
    const { nonce } = (await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
    const key = await createSessionKey('ES256')
    const evidence = await testOnlyNitroCollector(h.pki).collect({ binding: bindingDigest(Buffer.from(nonce, 'base64url'), key.jktBytes), nonce: Buffer.from(nonce, 'base64url') })
    const a = (await (await fetch(`${h.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tee: 'nitro', nonce, key: key.publicJwk, evidence, audience: 'vault' }) })).json()) as { token: string }
    const claims = decodeJwt(a.token) as { keyward: Record<string, string> }
    const bound: VaultJwtRole = { ...role, bound_claims: { '/keyward/policy': 'test-enclave', '/keyward/measurement': [claims.keyward.measurement!] } }
    // Vault's jwks_url: keyward's published JWKS, fetched over HTTP as Vault would.
    const config: VaultJwtConfig = { jwks: createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`)), jwt_supported_algs: ['ES256'], bound_issuer: 'keyward' }
    const now = Math.floor(Date.now() / 1000)
    const login = await vaultJwtLogin(a.token, 'keyward-attested', config, bound, now)
    expect(login.metadata).toMatchObject({ policy: 'test-enclave', tee: 'nitro' })
    await expect(vaultJwtLogin(a.token, 'keyward-attested', config, { ...bound, bound_claims: { '/keyward/policy': 'other' } }, now)).rejects.toThrow(/claim/)
    await expect(vaultJwtLogin(a.token, 'keyward-attested', config, bound, now + 400)).rejects.toThrow(/expired/)
    // A release token (aud keyward) does not log in at Vault.
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    await expect(vaultJwtLogin((await client.attest()).token, 'keyward-attested', config, bound, now)).rejects.toThrow(/aud/)
    await client.close()
  })

  it('a relying party (Vault auth plugin) appraises its client evidence in the background-check model', async () => {
    const rpToken = await A.createCredential(h.deps, 'relying-party', 'vault-plugin', hashCredential)
    // The plugin fetches a challenge for its client, the client returns evidence bound to it.
    const { nonce } = (await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
    const key = await createSessionKey('ES256')
    const binding = bindingDigest(Buffer.from(nonce, 'base64url'), key.jktBytes)
    const evidence = await testOnlyNitroCollector(h.pki).collect({ binding, nonce: Buffer.from(nonce, 'base64url') })
    const body = JSON.stringify({ tee: 'nitro', nonce, key: key.publicJwk, evidence })
    const noCred = await fetch(`${h.url}/v1/appraise`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(noCred.status).toBe(401)
    const adminAsRp = await fetch(`${h.url}/v1/appraise`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${h.adminToken}` }, body })
    expect(adminAsRp.status).toBe(401)
    const r = await fetch(`${h.url}/v1/appraise`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${rpToken}` }, body })
    expect(r.status).toBe(200)
    const out = (await r.json()) as { decision: string; token: string; policy: string }
    expect(out.decision).toBe('allow')
    expect(out.policy).toBe('test-enclave')
    const { payload } = await jwtVerify(out.token, createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`)), { audience: 'rp:vault-plugin', issuer: 'keyward' })
    expect((payload.cnf as { jkt: string }).jkt).toBe(key.jkt)
    expect(payload.aud).toBe('rp:vault-plugin')
    // A denied client: the plugin gets a decision with reasons, not an error.
    const { nonce: n2 } = (await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }
    const bad = await testOnlyNitroCollector(h.pki, { pcrs: new Map([[0, new Uint8Array(48).fill(9)]]) }).collect({ binding: bindingDigest(Buffer.from(n2, 'base64url'), key.jktBytes), nonce: Buffer.from(n2, 'base64url') })
    const denied = await fetch(`${h.url}/v1/appraise`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${rpToken}` }, body: JSON.stringify({ tee: 'nitro', nonce: n2, key: key.publicJwk, evidence: bad }) })
    const d = (await denied.json()) as { decision: string; error: { failures: Array<{ condition: string }> } }
    expect(d.decision).toBe('deny')
    expect(d.error.failures.map((f) => f.condition)).toContain('pcr0-known')
  })
})
