// Alerts and containment (src/broker/alerts.ts, src/broker/containment.ts) through the real
// broker: a local webhook receiver gets signed events from the outbox, verified as
// docs/operations.md §Alerts says; failed deliveries are retried per backoff on the injected
// clock; a policy's containment quarantines a drifted workload until an admin releases it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createServer, type Server } from 'node:http'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, type Harness } from './harness.js'
import { createClient } from '../../enclave-client/src/index.js'
import * as A from '../../src/broker/admin-services.js'
import { hashCredential } from '../../src/sealing/credentials.js'
import { deliverDue } from '../../src/broker/alerts.js'
import { errorCodeOf } from '../helpers/errors.js'
import { runKeywardInProcess } from '../helpers/cli.js'

const SECRET = 'testOnly-webhook-secret-3b9e'
const CONTAINED = TEST_POLICY + '  containment: [quarantine, revoke-tokens, revoke-vault-leases]\n'
const STRICTER = CONTAINED.replace('in refs["nitro-pcr0"]', '== "00"')

interface Received {
  body: string
  signature: string
}

/** The recipe of docs/operations.md §Alerts: HMAC-SHA256 over "<t>.<raw body>", compared in constant time, t within 5 minutes. */
function verifyWebhook(secret: string, header: string, rawBody: string, nowSeconds: number): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header)
  if (!m) return false
  const t = Number(m[1])
  if (Math.abs(nowSeconds - t) > 300) return false
  const expected = createHmac('sha256', secret).update(`${m[1]}.${rawBody}`).digest()
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'))
}

describe.each(['sqlite', 'postgres'] as const)('alerts and containment on %s', (backend) => {
  let h: Harness
  let receiver: Server
  const received: Received[] = []
  /** Statuses the receiver answers, in order; 200 once empty. */
  const statuses: number[] = []

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        received.push({ body, signature: String(req.headers['x-keyward-signature'] ?? '') })
        res.statusCode = statuses.shift() ?? 200
        res.end()
      })
    })
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
    const port = (receiver.address() as { port: number }).port
    const secretFile = join(mkdtempSync(join(tmpdir(), 'keyward-hook-')), 'secret')
    writeFileSync(secretFile, SECRET + '\n')
    h = await startHarness(backend, {
      alerts: {
        webhooks: [{ url: `http://127.0.0.1:${port}/hook`, secretFile, events: ['drift', 'denial-after-allow', 'revocation', 'enrolment-request', 'containment'] }],
        maxAttempts: 3,
      },
    })
  })
  afterAll(async () => {
    await h?.stop()
    await new Promise((r) => receiver?.close(r))
  })

  /** deliverDue at a pinned instant of the broker's clock. */
  const deliverAt = (at: Date) => deliverDue({ ...h.deps, clock: () => at })
  const events = () => received.map((r) => JSON.parse(r.body) as { id: string; type: string; workload?: string; detail: Record<string, unknown> })

  it('a drift is delivered signed; containment quarantines the workload until an admin releases it, each action audited', async () => {
    await A.applyPolicy(h.deps, CONTAINED, 'test')
    const first = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    const admitted = await first.attest()
    expect(new TextDecoder().decode(await first.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')

    // The same workload, now denied: drift, denial after allow, containment.
    await A.applyPolicy(h.deps, STRICTER, 'test')
    const second = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect(await errorCodeOf(second.attest())).toBe('ERR_POLICY_DENIED')
    await second.close()

    // The first token's release is refused with the stable code, and audited as a denial.
    expect(await errorCodeOf(first.getSecret('db-password'))).toBe('ERR_QUARANTINED')
    const workload = String(admitted.claims.workload)
    // Attesting again, even under the policy that admitted it, gives no attestation result.
    await A.applyPolicy(h.deps, CONTAINED, 'test')
    const third = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect(await errorCodeOf(third.attest())).toBe('ERR_QUARANTINED')
    await third.close()

    const audit = await h.deps.store.listAudit({ limit: 1000 })
    const of = (type: string) => audit.filter((e) => e.type === type && e.subject === workload)
    expect(of('containment.quarantine')[0]?.detail).toMatchObject({ policy: 'test-enclave', quarantined: true })
    expect(of('containment.revoke-tokens')[0]?.detail.attestations).toBeGreaterThanOrEqual(1)
    expect(of('containment.revoke-vault-leases')[0]?.detail).toMatchObject({ vaultTokens: 0 })
    expect(audit.some((e) => e.type === 'release:secret' && e.decision === 'deny' && e.detail.code === 'ERR_QUARANTINED')).toBe(true)

    // Delivery: drift, denial-after-allow and containment, each validly signed.
    const at = h.deps.clock()
    expect((await deliverAt(at)).delivered).toBe(3)
    const got = events()
    expect(got.map((e) => e.type).sort()).toEqual(['containment', 'denial-after-allow', 'drift'])
    expect(got.find((e) => e.type === 'drift')).toMatchObject({ workload, detail: { reason: 'denied after allow', admittedBy: 'test-enclave', failedConditions: ['pcr0-known'] } })
    const nowS = Math.floor(at.getTime() / 1000)
    for (const r of received) expect(verifyWebhook(SECRET, r.signature, r.body, nowS)).toBe(true)
    // Nothing secret in a body: no secret value, no token.
    for (const r of received) expect(r.body).not.toMatch(/testOnly-db-password|eyJ/)
    // A forged signature (another secret), a tampered body or a stale timestamp fails verification.
    const one = received[0]!
    expect(verifyWebhook('testOnly-other-secret', one.signature, one.body, nowS)).toBe(false)
    expect(verifyWebhook(SECRET, one.signature, one.body.replace('"drift"', '"draft"').replace('"containment"', '"contained"').replace('"denial-after-allow"', '"denial"'), nowS)).toBe(false)
    expect(verifyWebhook(SECRET, one.signature, one.body, nowS + 301)).toBe(false)
    // Delivered rows are not sent again.
    expect((await deliverAt(new Date(at.getTime() + 3600_000))).delivered).toBe(0)

    // The admin releases the quarantine (unauthenticated callers cannot).
    const path = `/v1/admin/workloads/${encodeURIComponent(workload)}/release-quarantine`
    expect((await fetch(h.url + path, { method: 'POST' })).status).toBe(401)
    const cleared = await fetch(h.url + path, { method: 'POST', headers: { authorization: `Bearer ${h.adminToken}` } })
    expect(cleared.status).toBe(204)
    const again = await fetch(h.url + path, { method: 'POST', headers: { authorization: `Bearer ${h.adminToken}` } })
    expect(again.status).toBe(404)
    expect((await h.deps.store.listAudit({ limit: 1000 })).some((e) => e.type === 'quarantine.release' && e.subject === workload && e.detail.by === 'admin:tester')).toBe(true)
    // The contained token stays revoked (revoke-tokens); the client re-attests and the release works again.
    expect((await h.deps.store.getAttestation(String(decodeJwt(admitted.token).jti)))?.revokedAt).not.toBeNull()
    expect(new TextDecoder().decode(await first.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    await first.close()
  })

  // Registered on SQLite only: there the CLI opens the harness's store by --data-dir.
  if (backend === 'sqlite') it('keyward workload release NAME clears a quarantine (audited); a missing NAME is a usage error', async () => {
    await h.deps.store.quarantineWorkload({ workload: 'nitro:cli-test', at: h.deps.clock().getTime(), reason: 'test' })
    const r = await runKeywardInProcess(['workload', 'release', 'nitro:cli-test', '--data-dir', h.config.dataDir])
    expect(r.code).toBe(0)
    expect(await h.deps.store.getQuarantine('nitro:cli-test')).toBeNull()
    expect((await h.deps.store.listAudit({ limit: 1000 })).some((e) => e.type === 'quarantine.release' && e.subject === 'nitro:cli-test')).toBe(true)
    expect((await runKeywardInProcess(['workload', 'release', '--data-dir', h.config.dataDir])).code).toBe(2)
    expect((await runKeywardInProcess(['workload', 'release', 'nitro:cli-test', '--data-dir', h.config.dataDir])).stderr).toContain('ERR_NOT_FOUND')
  })

  it('revoking a reference value and a pending TPM enrolment raise revocation and enrolment-request alerts', async () => {
    received.length = 0
    const id = await A.addReferenceValue(h.deps, { set: 'alerts-extra', tee: 'nitro', value: 'ab'.repeat(48), source: 'testOnly' }, 'test')
    await A.revokeReferenceValue(h.deps, id, 'admin:tester')
    // What the TPM registration flow audits when an AK registers without an authority's say (src/broker/tpm-registration.ts).
    await h.deps.audit({ type: 'tpm.activate', subject: 'tpm-ak:alerts-pending', decision: 'info', detail: { status: 'pending', workload: 'tpm:alerts-wanted' } })
    await h.deps.audit({ type: 'tpm.activate', subject: 'tpm-ak:alerts-enrolled', decision: 'info', detail: { status: 'enrolled', workload: 'tpm:alerts-ok' } })
    expect((await deliverAt(new Date(h.deps.clock().getTime()))).delivered).toBe(2)
    expect(events()).toMatchObject([
      { type: 'revocation', detail: { what: 'reference', subject: id, by: 'admin:tester' } },
      { type: 'enrolment-request', detail: { akName: 'tpm-ak:alerts-pending', workload: 'tpm:alerts-wanted' } },
    ])
    const now = Math.floor(h.deps.clock().getTime() / 1000)
    for (const r of received) expect(verifyWebhook(SECRET, r.signature, r.body, now)).toBe(true)
  })

  it('a failed delivery is retried at +2^n s on the injected clock, and given up after maxAttempts', async () => {
    received.length = 0
    // A revocation alert (hooked into the audit of credential revoke).
    await A.createCredential(h.deps, 'relying-party', 'alerts-rp', hashCredential)
    await A.revokeCredential(h.deps, 'relying-party', 'alerts-rp', 'admin:tester')
    const t0 = h.deps.clock().getTime()
    statuses.push(500)
    expect(await deliverAt(new Date(t0))).toEqual({ delivered: 0, retried: 1, failed: 0 })
    expect(await deliverAt(new Date(t0 + 1999))).toEqual({ delivered: 0, retried: 0, failed: 0 })
    expect(await deliverAt(new Date(t0 + 2000))).toEqual({ delivered: 1, retried: 0, failed: 0 })
    expect(received).toHaveLength(2)
    expect(received[0]!.body).toBe(received[1]!.body)
    expect(events()[1]).toMatchObject({ type: 'revocation', detail: { what: 'credential', subject: 'rp:alerts-rp', by: 'admin:tester' } })

    // Always failing: attempts at t0, +2 s, +4 s more, then marked failed and counted.
    received.length = 0
    await A.createCredential(h.deps, 'relying-party', 'alerts-rp2', hashCredential)
    await A.revokeCredential(h.deps, 'relying-party', 'alerts-rp2', 'admin:tester')
    const t1 = h.deps.clock().getTime()
    statuses.push(503, 503, 503)
    expect((await deliverAt(new Date(t1))).retried).toBe(1)
    expect((await deliverAt(new Date(t1 + 2000))).retried).toBe(1)
    expect(await deliverAt(new Date(t1 + 5999))).toEqual({ delivered: 0, retried: 0, failed: 0 })
    expect(await deliverAt(new Date(t1 + 6000))).toEqual({ delivered: 0, retried: 0, failed: 1 })
    expect(await deliverAt(new Date(t1 + 3600_000))).toEqual({ delivered: 0, retried: 0, failed: 0 })
    expect(received).toHaveLength(3)
    const rows = (await h.deps.store.listAlerts()).filter((r) => r.body === received[0]!.body)
    expect(rows).toMatchObject([{ status: 'failed', attempts: 3, lastError: 'HTTP 503' }])
    const metrics = await h.deps.metrics.registry.getSingleMetricAsString('keyward_alert_deliveries_total')
    expect(metrics).toContain('keyward_alert_deliveries_total{type="revocation",result="failed"} 1')
  })
})
