// Issue 13 items 1 and 3 through the HTTP API with two swtpm TPMs whose EK certificates chain to
// trusted CAs: a TPM cannot take another workload's name without an authority's say (approval,
// an enrolment token, the EK allow list), names stay in their namespace, and revoking an AK with
// --deny-ek stops the host (its live tokens and Vault leases, every new AK, every other AK).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { startHarness, type Harness } from './harness.js'
import { startSwtpm, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { startVaultStandIn, type VaultStandIn } from '../vault/vault-api-stand-in.js'
import { createClient, type KeywardClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import * as A from '../../src/broker/admin-services.js'
import * as E from '../../src/broker/enrolment.js'
import { workloadId } from '../../src/broker/attest.js'
import type { NitroClaims, TpmClaims } from '../../src/protocol/claims.js'

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: payments
spec:
  tees: [tpm]
  conditions:
    - name: enrolled-as-payments
      expr: claims.details.akTrust.workload == "svc-payments"
  grants:
    secrets: [payments-secret]
    vault: { role: payments, policies: [payments-read], ttl: 15m, num_uses: 0 }
`

let victimTpm: Swtpm
let attackerTpm: Swtpm
let dir: string
let caFile: string
let vault: VaultStandIn
let tokenFile: string

beforeAll(async () => {
  ;[victimTpm, attackerTpm] = await Promise.all([startSwtpm({ ekCert: true }), startSwtpm({ ekCert: true })])
  dir = mkdtempSync(join(tmpdir(), 'kw-enrol-'))
  caFile = join(dir, 'ek-cas.pem')
  writeFileSync(caFile, [victimTpm, attackerTpm].map((t) => `${t.caIntermediate}\n${t.caRoot}`).join('\n'))
  vault = await startVaultStandIn()
  vault.addTokenRole('payments', { allowed_policies: ['payments-read'], orphan: true })
  tokenFile = join(dir, 'vault-token')
  writeFileSync(tokenFile, vault.rootToken, { mode: 0o600 })
}, 120_000)

afterAll(async () => {
  await Promise.all([victimTpm?.stop(), attackerTpm?.stop()])
  await vault?.close()
})

describe.each(["sqlite", "postgres"] as const)('TPM enrolment (%s)', (backend) => {
  let h: Harness
  let n = 0
  const clients: KeywardClient[] = []
  /** A client with a fresh AK (its own state dir) on the given TPM, or the AK of `state`. */
  const clientOn = (tpm: Swtpm, state = `${backend}-state-${n++}`): KeywardClient => {
    const c = createClient({ broker: h.url, collector: createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, state) }), retries: 0 })
    clients.push(c)
    return c
  }
  const adminApi = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const r = await fetch(`${h.url}/v1/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${h.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    return { status: r.status, body: r.status === 204 ? null : await r.json() }
  }
  const issueToken = async (workload: string, ttlSeconds?: number): Promise<string> => {
    const r = await adminApi('POST', '/enrolments/tokens', { workload, ...(ttlSeconds ? { ttlSeconds } : {}) })
    expect(r.status).toBe(201)
    return r.body.token as string
  }

  beforeAll(async () => {
    h = await startHarness(backend, { tpm: { ekCaFiles: [caFile] }, vault: { addr: vault.addr, tokenFile, timeoutMs: 2000 } })
    await A.applyPolicy(h.deps, POLICY, 'test')
    await A.putSecret(h.deps, 'payments-secret', { text: 'testOnly-payments-secret-31e7' }, 'test')
  }, 60_000)
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await h?.stop()
  })

  it("a TPM registering under another workload's name gets a pending AK that admits nothing", async () => {
    const attacker = clientOn(attackerTpm)
    const reg = await attacker.register('svc-payments')
    expect(reg).toMatchObject({ workload: 'svc-payments', status: 'pending' })
    await expect(attacker.getSecret('payments-secret')).rejects.toMatchObject({ code: 'ERR_ENROLMENT_PENDING' })
    await expect(attacker.attest()).rejects.toMatchObject({ code: 'ERR_ENROLMENT_PENDING' })
    const pending = await adminApi('GET', '/enrolments')
    expect(pending.body.enrolments).toEqual(expect.arrayContaining([expect.objectContaining({ name: reg.akName, workload: 'svc-payments', status: 'pending' })]))
    // Rejected, it stays out for good.
    expect((await adminApi('POST', `/enrolments/${reg.akName}/reject`)).body).toMatchObject({ status: 'rejected' })
    await expect(attacker.attest()).rejects.toMatchObject({ code: 'ERR_AK_UNTRUSTED' })
    expect((await adminApi('POST', `/enrolments/${reg.akName}/approve`)).body.error.code).toBe('ERR_CONFLICT')
  })

  it('an enrolment token enrols its name exactly once; a used, foreign or expired token enrols nothing', async () => {
    const token = await issueToken('svc-payments')
    const victim = clientOn(victimTpm)
    expect(await victim.register('svc-payments', { enrolToken: token })).toMatchObject({ status: 'enrolled' })
    const a = await victim.attest()
    expect(a.claims.workload).toBe('tpm:svc-payments')
    expect(decodeJwt(a.token).sub).toBe('tpm:svc-payments')
    expect(new TextDecoder().decode(await victim.getSecret('payments-secret'))).toBe('testOnly-payments-secret-31e7')

    // The attacker replays the (used) token, a token for another name, an expired one.
    const reused = await clientOn(attackerTpm).register('svc-payments', { enrolToken: token })
    expect(reused).toMatchObject({ status: 'pending' })
    const foreign = await clientOn(attackerTpm).register('svc-payments', { enrolToken: await issueToken('svc-other') })
    expect(foreign).toMatchObject({ status: 'pending' })
    const short = await issueToken('svc-payments', 1)
    h.advance(2000)
    const expired = clientOn(attackerTpm)
    expect(await expired.register('svc-payments', { enrolToken: short })).toMatchObject({ status: 'pending' })
    await expect(expired.getSecret('payments-secret')).rejects.toMatchObject({ code: 'ERR_ENROLMENT_PENDING' })
  })

  it('an admin approves a pending enrolment; approval binds only the name asked for', async () => {
    const c = clientOn(attackerTpm)
    const reg = await c.register('svc-batch')
    expect(reg.status).toBe('pending')
    expect((await adminApi('POST', `/enrolments/${reg.akName}/approve`)).body).toMatchObject({ status: 'enrolled', workload: 'svc-batch' })
    // Enrolled now, as svc-batch: the payments policy does not match it.
    await expect(c.attest()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
  })

  it('an EK on the allow list enrols that TPM for that name only, without approval', async () => {
    const victimAk = (await h.deps.store.listAks()).find((a) => a.status === 'enrolled' && a.workload === 'svc-payments')!
    expect((await adminApi('POST', '/eks', { workload: 'svc-payments', ek: victimAk.ekFingerprint })).status).toBe(201)
    expect(await clientOn(victimTpm).register('svc-payments')).toMatchObject({ status: 'enrolled' })
    expect(await clientOn(victimTpm).register('svc-other')).toMatchObject({ status: 'pending' })
    // The attacker's EK is not on the list.
    expect(await clientOn(attackerTpm).register('svc-payments')).toMatchObject({ status: 'pending' })
  })

  it('workload names cannot be chosen in another namespace', async () => {
    // One AK for every name (refused on the name alone, the AK is never stored): a fresh AK costs seconds on swtpm.
    const state = `${backend}-state-${n++}`
    for (const name of ['nitro:0101', 'sev-snp:ab', 'tpm:svc', 'Svc-Payments', '../x', '']) {
      await expect(clientOn(attackerTpm, state).register(name)).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' })
    }
    expect(await clientOn(attackerTpm, state).register('svc-namespaced')).toMatchObject({ workload: 'svc-namespaced', status: 'pending' })
    await expect(E.issueEnrolmentToken(h.deps, 'nitro:0101', 60, 'test')).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' })
  })

  it('revoking an AK with --deny-ek stops the host: live tokens, Vault leases, new AKs and other AKs of its TPM, until undeny', { timeout: 120_000 }, async () => {
    const victim = clientOn(victimTpm)
    expect(await victim.register('svc-payments', { enrolToken: await issueToken('svc-payments') })).toMatchObject({ status: 'enrolled' })
    const other = clientOn(victimTpm)
    expect(await other.register('svc-payments')).toMatchObject({ status: 'enrolled' }) // the allow-listed EK
    await other.attest()
    const a = await victim.attest()
    const vt = await victim.vaultToken()
    expect(vault.tokenByAccessor(vt.accessor!)!.revoked).toBe(false)
    const akName = (decodeJwt(a.token) as { submods: { tpm: { keyward: { details: { akName: string } } } } }).submods.tpm.keyward.details.akName

    const r = await adminApi('POST', `/aks/${akName}/revoke`, { denyEk: true })
    expect(r.status).toBe(200)
    expect(r.body.attestations).toBeGreaterThanOrEqual(2) // this AK's and the other AK's live tokens
    expect(vault.tokenByAccessor(vt.accessor!)!.revoked).toBe(true)

    // The live token is refused at release (the client then re-attests, which the EK denial stops).
    const since = (await h.deps.store.listAudit({ limit: 1000 })).length
    await expect(victim.getSecret('payments-secret')).rejects.toMatchObject({ code: 'ERR_EK_DENIED' })
    const after = (await h.deps.store.listAudit({ limit: 1000 })).slice(since)
    expect(after.some((e) => e.type === 'release:secret' && e.detail.code === 'ERR_TOKEN_INVALID')).toBe(true)
    await expect(other.attest()).rejects.toMatchObject({ code: 'ERR_EK_DENIED' })
    await expect(clientOn(victimTpm).register('svc-payments', { enrolToken: await issueToken('svc-payments') })).rejects.toMatchObject({ code: 'ERR_EK_DENIED' })
    // Approving a pending AK of a denied EK is refused too.
    const ekDigest = (await h.deps.store.getAk(akName))!.ekFingerprint!
    expect((await adminApi('GET', '/eks')).body.eks).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'deny', ek: ekDigest })]))

    // Until an admin lifts the denial.
    expect((await adminApi('DELETE', `/eks/denied/${ekDigest}`)).status).toBe(200)
    const back = clientOn(victimTpm)
    expect(await back.register('svc-payments', { enrolToken: await issueToken('svc-payments') })).toMatchObject({ status: 'enrolled' })
    expect(new TextDecoder().decode(await back.getSecret('payments-secret'))).toBe('testOnly-payments-secret-31e7')
    await expect(victim.attest()).rejects.toMatchObject({ code: 'ERR_AK_UNTRUSTED' }) // the revoked AK stays revoked
  })
})

describe('workloadId (token sub) from the typed claims', () => {
  const core = { debug: false, issuedAt: null, bindingData: new Uint8Array(32), nonce: null, publicKey: null, pcrs: {} }
  const tpm = (name: string | null, workload: string | null): TpmClaims => ({
    ...core, tee: 'tpm', measurement: 'cd'.repeat(32),
    ak: { name, trust: workload === null ? null : { via: 'credential-activation', workload } },
    // details that claim another workload count for nothing
    details: { akName: 'ff'.repeat(34), akTrust: { via: 'pinned', workload: 'svc-forged' } },
  })
  it('names an enrolled TPM by its workload, an unenrolled one by its AK name, other TEEs by measurement', () => {
    expect(workloadId(tpm('000b' + 'ab'.repeat(32), 'svc-payments'))).toBe('tpm:svc-payments')
    expect(workloadId(tpm('000b' + 'ab'.repeat(32), 'Not A Name'))).toBe(`tpm-ak:000b${'ab'.repeat(10)}`)
    expect(workloadId(tpm(null, null))).toBe(`tpm-ak:${'cd'.repeat(12)}`)
    const nitro: NitroClaims = { ...core, tee: 'nitro', measurement: '01'.repeat(48), details: { akTrust: { workload: 'svc-payments' } } }
    expect(workloadId(nitro)).toBe(`nitro:${'01'.repeat(12)}`)
  })
})
