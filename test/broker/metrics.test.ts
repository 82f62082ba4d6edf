// Prometheus metrics of the attest and release paths (src/broker/metrics.ts) through the real
// server: verification latency per TEE, outcomes per TEE and reason, failing conditions, releases
// per secret, and the drifted-workloads gauge read from the store (allowed, then denied).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startHarness, testOnlyNitroCollector, TEST_POLICY, type Harness } from './harness.js'
import { createClient } from '../../enclave-client/src/index.js'
import * as A from '../../src/broker/admin-services.js'
import { errorCodeOf } from '../helpers/errors.js'

let h: Harness
beforeAll(async () => {
  h = await startHarness('sqlite')
})
afterAll(async () => {
  await h?.stop()
})

/** The value of one sample on /metrics, 0 when absent. */
async function sample(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`) || (labels === '' && l.startsWith(`${name} `)))
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0
}

describe('metrics', () => {
  it('count verification latency per TEE, outcomes, failing conditions, releases per secret and drifted workloads', async () => {
    expect(await sample('keyward_drifted_workloads', '')).toBe(0)
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    await client.close()
    expect(await sample('keyward_verify_duration_seconds_count', 'tee="nitro"')).toBe(1)
    expect(await sample('keyward_attestations_total', 'tee="nitro",result="allow"')).toBe(1)
    expect(await sample('keyward_secret_releases_total', 'secret="db-password"')).toBe(1)

    // The same workload, denied under a stricter policy: a failing condition, and drift.
    await A.applyPolicy(h.deps, TEST_POLICY.replace('in refs["nitro-pcr0"]', '== "00"'), 'test')
    const denied = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect(await errorCodeOf(denied.attest())).toBe('ERR_POLICY_DENIED')
    await denied.close()
    expect(await sample('keyward_attestations_total', 'tee="nitro",result="ERR_POLICY_DENIED"')).toBe(1)
    expect(await sample('keyward_policy_failures_total', 'tee="nitro",condition="pcr0-known"')).toBe(1)
    expect(await sample('keyward_verify_duration_seconds_count', 'tee="nitro"')).toBe(2)
    expect(await sample('keyward_drifted_workloads', '')).toBe(1)
  })
})
