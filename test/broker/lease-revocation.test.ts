// Issue 13 item 4: a denied attestation revokes a key's Vault leases only when the request proves
// possession of that key (a DPoP proof over the attest request, nonce = the challenge) and the
// evidence verified as the workload the leases were minted for. A stranger holding only the
// victim's public key (it is in every DPoP header) and denied evidence of the same image revokes
// nothing; the attempt is audited.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, type Harness } from './harness.js'
import { startVaultStandIn, type VaultStandIn } from '../vault/vault-api-stand-in.js'
import { createClient, createSessionKey } from '../../enclave-client/src/index.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import * as A from '../../src/broker/admin-services.js'

const POLICY = TEST_POLICY.replace('  grants:\n', `    - name: pcr1-known\n      expr: claims.details.pcrs["1"] == "${'02'.repeat(48)}"\n  grants:\n    vault: { role: payments, policies: [payments-read], ttl: 15m, num_uses: 0 }\n`)
/** The same image (PCR0, so the same workload id) with another PCR1: verifies, and the policy denies it. */
const DENIED_PCRS = new Map([[0, new Uint8Array(48).fill(1)], [1, new Uint8Array(48).fill(7)], [2, new Uint8Array(48).fill(3)]])

let vault: VaultStandIn
let tokenFile: string
beforeAll(async () => {
  vault = await startVaultStandIn()
  vault.addTokenRole('payments', { allowed_policies: ['payments-read'], orphan: true })
  tokenFile = join(mkdtempSync(join(tmpdir(), 'kw-lease-')), 'token')
  writeFileSync(tokenFile, vault.rootToken, { mode: 0o600 })
})
afterAll(async () => vault?.close())

describe.each(['sqlite', 'postgres'] as const)('denials and Vault leases (%s)', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend, { vault: { addr: vault.addr, tokenFile, timeoutMs: 2000 } })
    await A.applyPolicy(h.deps, POLICY, 'test')
  })
  afterAll(async () => h?.stop())

  const challenge = async (): Promise<string> =>
    ((await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }).nonce

  /** Denied evidence of the victim's image bound to the victim's key, sent with the given headers. */
  async function deniedAttest(victimJwk: unknown, jkt: string, headers: (nonce: string, url: string) => Promise<Record<string, string>>) {
    const nonce = await challenge()
    const n = Buffer.from(nonce, 'base64url')
    const evidence = await testOnlyNitroCollector(h.pki, { pcrs: DENIED_PCRS }).collect({ binding: bindingDigest(n, Buffer.from(jkt, 'base64url')), nonce: n })
    const url = `${h.url}/v1/attest`
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(await headers(nonce, url)) }, body: JSON.stringify({ tee: 'nitro', nonce, key: victimJwk, evidence }) })
    return { status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code }
  }

  async function victimWithLease() {
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const a = await client.attest()
    const vt = await client.vaultToken()
    const jkt = (decodeJwt(a.token) as { cnf: { jkt: string } }).cnf.jkt
    const jwk = (await client.evidence()).key
    return { client, vt, jkt, jwk }
  }

  it("a stranger with the victim's public key and denied evidence of the same workload revokes nothing; the attempt is audited", async () => {
    const v = await victimWithLease()
    const before = (await h.deps.store.listAudit({ limit: 1000 })).length
    expect(await deniedAttest(v.jwk, v.jkt, async () => ({}))).toEqual({ status: 403, code: 'ERR_POLICY_DENIED' })
    expect(vault.tokenByAccessor(v.vt.accessor!)!.revoked).toBe(false)
    expect(await h.deps.store.listLiveVaultLeases({ jkt: v.jkt })).toHaveLength(1)
    const audit = (await h.deps.store.listAudit({ limit: 1000 })).slice(before)
    expect(audit.some((e) => e.type === 'vault.token.revoke' && e.decision === 'deny' && e.subject === v.jkt)).toBe(true)

    // A DPoP proof signed by the stranger's own key is refused outright (and spends no nonce).
    const stranger = await createSessionKey('ES256')
    expect(await deniedAttest(v.jwk, v.jkt, async (nonce, url) => ({ dpop: await stranger.dpopProof('POST', url, undefined, nonce) }))).toEqual({ status: 401, code: 'ERR_DPOP_INVALID' })
    expect(vault.tokenByAccessor(v.vt.accessor!)!.revoked).toBe(false)
    await v.client.close()
  })

  it('the key holder proving possession over the attest request loses its own leases when its evidence is denied', async () => {
    // The real client sends the DPoP proof on every attest; its host's PCR1 changes.
    let compromised = false
    const good = testOnlyNitroCollector(h.pki)
    const bad = testOnlyNitroCollector(h.pki, { pcrs: DENIED_PCRS })
    const client = createClient({ broker: h.url, collector: { tee: 'nitro', available: async () => true, collect: (r) => (compromised ? bad : good).collect(r) }, retries: 0 })
    const a = await client.attest()
    const vt = await client.vaultToken()
    const jkt = (decodeJwt(a.token) as { cnf: { jkt: string } }).cnf.jkt
    compromised = true
    await expect(client.attest()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
    expect(vault.tokenByAccessor(vt.accessor!)!.revoked).toBe(true)
    expect(await h.deps.store.listLiveVaultLeases({ jkt })).toHaveLength(0)
    await client.close()
  })

  it("a proof of possession with another workload's denied evidence revokes nothing", async () => {
    const v = await victimWithLease()
    // The attacker holds its own key and leases; the victim's leases are under another key.
    const key = await createSessionKey('ES256')
    const jkt = key.jkt
    const other = new Map([[0, new Uint8Array(48).fill(9)]])
    const nonce = await challenge()
    const n = Buffer.from(nonce, 'base64url')
    const evidence = await testOnlyNitroCollector(h.pki, { pcrs: other }).collect({ binding: bindingDigest(n, Buffer.from(jkt, 'base64url')), nonce: n })
    const url = `${h.url}/v1/attest`
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', dpop: await key.dpopProof('POST', url, undefined, nonce) }, body: JSON.stringify({ tee: 'nitro', nonce, key: key.publicJwk, evidence }) })
    expect(r.status).toBe(403)
    expect(vault.tokenByAccessor(v.vt.accessor!)!.revoked).toBe(false)
    await v.client.close()
  })
})
