// A broker keeps policies, reference values and quarantines cached between requests
// (src/broker/decision-state.ts). Each test first warms a second broker's cache through a full
// attest + release, then changes the state somewhere else: through the first broker (another
// replica), or in SQL as an operator or a restore script would. The very next request to the
// second broker must see the change; no notification, TTL or wait is involved.
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest'
import { decodeJwt } from 'jose'
import { startHarness, testOnlyNitroCollector, TEST_PCR0, TEST_POLICY, type Harness } from './harness.js'
import { createClient } from '../../enclave-client/src/index.js'
import { buildDeps, startServer, type RunningServer } from '../../src/broker/server.js'
import { createLogger } from '../../src/broker/logger.js'
import * as A from '../../src/broker/admin-services.js'
import type { BrokerDeps } from '../../src/broker/deps.js'
import { errorCodeOf } from '../helpers/errors.js'

describe.each(['sqlite', 'postgres'] as const)('a change is enforced by a broker that has the decision state cached (%s)', (backend) => {
  let h: Harness
  let replica: BrokerDeps
  let server: RunningServer
  const clientOfReplica = () => createClient({ broker: `http://127.0.0.1:${server.port}`, collector: testOnlyNitroCollector(h.pki), retries: 0 })

  beforeAll(async () => {
    h = await startHarness(backend)
    replica = await buildDeps(h.config, createLogger('silent'))
    replica.trust.nitroRoots = [h.pki.root.cert]
    server = await startServer(replica)
  })
  afterAll(async () => {
    await server?.close()
    await replica?.store.close()
    await h?.stop()
  })

  /** A client that attested to the replica and opened a release there: the replica's cache is warm. */
  async function warmClient() {
    const c = clientOfReplica()
    const a = await c.attest()
    expect(new TextDecoder().decode(await c.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    return { c, token: a.token }
  }

  beforeEach(async () => {
    // Each test starts from the harness's state: its policy active, its reference value live, nothing quarantined.
    await A.applyPolicy(h.deps, TEST_POLICY, 'test')
    const live = (await h.deps.store.listReferenceValues('nitro-pcr0')).filter((r) => r.revokedAt === null && r.value === TEST_PCR0)
    if (live.length === 0) await A.addReferenceValue(h.deps, { set: 'nitro-pcr0', tee: 'nitro', value: TEST_PCR0, source: 'testOnly fixtures' }, 'test')
    await h.location.exec('DELETE FROM quarantines')
  })

  it('a reference value revoked through the other broker: the next attestation here is denied', async () => {
    const { c } = await warmClient()
    for (const r of await h.deps.store.listReferenceValues('nitro-pcr0')) if (r.revokedAt === null) await A.revokeReferenceValue(h.deps, r.id, 'test')
    expect(await errorCodeOf(clientOfReplica().attest())).toBe('ERR_POLICY_DENIED')
    await c.close()
  })

  it('a reference value revoked in SQL, by no broker: the next attestation here is denied', async () => {
    const { c } = await warmClient()
    await h.location.exec(`UPDATE reference_values SET revoked_at = ?, revoked_by = 'sql' WHERE revoked_at IS NULL`.replace('?', backend === 'sqlite' ? '?' : '$1'), [Date.now()])
    expect(await errorCodeOf(clientOfReplica().attest())).toBe('ERR_POLICY_DENIED')
    await c.close()
  })

  it('a policy changed through the other broker: a token admitted by the old version opens nothing here', async () => {
    const { c } = await warmClient()
    await A.applyPolicy(h.deps, TEST_POLICY.replace('secrets: [db-password, api-key]', 'secrets: [api-key]'), 'test')
    expect(await errorCodeOf(c.getSecret('db-password'))).toBe('ERR_NOT_GRANTED')
    await c.close()
  })

  it('a policy deactivated in SQL: the next attestation and the next release here are refused', async () => {
    const { c } = await warmClient()
    await h.location.exec(`UPDATE policies SET active = ${backend === 'sqlite' ? 0 : 'false'}`)
    expect(await errorCodeOf(c.getSecret('db-password'))).toBe('ERR_NOT_GRANTED')
    expect(await errorCodeOf(clientOfReplica().attest())).toBe('ERR_POLICY_DENIED')
    await c.close()
  })

  it('a workload quarantined (through the store, as containment does, or in SQL): neither a release nor an attestation here', async () => {
    const { c, token } = await warmClient()
    const workload = (await h.deps.store.getAttestation(decodeJwt(token).jti!))!.workload
    await h.deps.store.quarantineWorkload({ workload, at: Date.now(), reason: 'test' })
    expect(await errorCodeOf(c.getSecret('db-password'))).toBe('ERR_QUARANTINED')
    expect(await errorCodeOf(clientOfReplica().attest())).toBe('ERR_QUARANTINED')
    // Cleared in SQL: the replica releases again on the next request.
    await h.location.exec('DELETE FROM quarantines')
    expect(new TextDecoder().decode(await c.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    const { c: again } = await warmClient()
    await h.location.exec(`INSERT INTO quarantines (workload, at, reason) VALUES ('${workload}', 1, 'sql')`)
    expect(await errorCodeOf(again.getSecret('db-password'))).toBe('ERR_QUARANTINED')
    await c.close()
    await again.close()
  })
})
