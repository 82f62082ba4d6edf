// The authorization server's state in the store, on both backends: access-token rows
// (introspection and RFC 7009 revocation read them on every replica) and the revocation of a
// key's attestations after a failed re-attestation (only that key, only that workload).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createLocation, type TestLocation } from '../store/helpers.js'
import type { AttestationRow, OAuthTokenRow, Store } from '../../src/store/types.js'
import type { BrokerDeps } from '../../src/broker/deps.js'
import { PERIODIC_JOBS } from '../../src/broker/replication.js'

const T0 = 1_790_000_000_000

const token = (jti: string, expiresAt = T0 + 300_000): OAuthTokenRow => ({
  jti, attestationJti: 'att-1', clientId: 'tpm:agent-1', jkt: 'jkt-a', resource: 'https://tools.example/mcp', scope: 'tools:call', issuedAt: T0, expiresAt, revokedAt: null,
})
const attestation = (jti: string, jkt: string, workload: string): AttestationRow => ({
  jti, jkt, tee: 'tpm', policy: 'agents', policyVersion: 1, measurement: 'ab'.repeat(32), referenceIds: '[]', workload, issuedAt: T0, expiresAt: T0 + 300_000, revokedAt: null, akName: null,
})

describe.each(['sqlite', 'postgres'] as const)('OAuth token state in the store (%s)', (backend) => {
  let location: TestLocation
  let store: Store
  beforeAll(async () => {
    location = await createLocation(backend)
    store = await location.open()
  })
  afterAll(async () => {
    await store?.close()
    await location?.cleanup()
  })

  it('the periodic prune-oauth-tokens job removes expired rows and keeps live ones', async () => {
    await store.insertOAuthToken(token('job-live', T0 + 600_000))
    await store.insertOAuthToken(token('job-expired', T0 + 10))
    const job = PERIODIC_JOBS.find((j) => j.name === 'prune-oauth-tokens')!
    // The job reads only the store and the clock of the broker's dependencies.
    await job.run({ store, clock: () => new Date(T0 + 1000) } as unknown as BrokerDeps)
    expect(await store.getOAuthToken('job-expired')).toBeNull()
    expect(await store.getOAuthToken('job-live')).not.toBeNull()
  })

  it('stores a token row, revokes it exactly once, and prunes expired rows only', async () => {
    await store.insertOAuthToken(token('t1'))
    await store.insertOAuthToken(token('t2', T0 + 1000))
    expect(await store.getOAuthToken('t1')).toEqual(token('t1'))
    expect(await store.getOAuthToken('nope')).toBeNull()
    expect(await store.revokeOAuthToken('t1', T0 + 5)).toBe(true)
    expect(await store.revokeOAuthToken('t1', T0 + 6)).toBe(false)
    expect(await store.revokeOAuthToken('nope', T0 + 6)).toBe(false)
    expect((await store.getOAuthToken('t1'))?.revokedAt).toBe(T0 + 5)
    expect(await store.pruneOAuthTokens(T0 + 2000)).toBe(1)
    expect(await store.getOAuthToken('t2')).toBeNull()
    expect(await store.getOAuthToken('t1')).not.toBeNull()
  })

  it('revokeAttestationsByKey revokes the live attestations of that key as that workload, nothing else', async () => {
    await store.insertAttestation(attestation('a1', 'jkt-a', 'tpm:agent-1'))
    await store.insertAttestation(attestation('a2', 'jkt-a', 'tpm:other'))
    await store.insertAttestation(attestation('a3', 'jkt-b', 'tpm:agent-1'))
    const hit = await store.revokeAttestationsByKey('jkt-a', 'tpm:agent-1', T0 + 7)
    expect(hit.map((r) => r.jti)).toEqual(['a1'])
    expect(await store.revokeAttestationsByKey('jkt-a', 'tpm:agent-1', T0 + 8)).toEqual([])
    expect((await store.getAttestation('a1'))?.revokedAt).toBe(T0 + 7)
    expect((await store.getAttestation('a2'))?.revokedAt).toBeNull()
    expect((await store.getAttestation('a3'))?.revokedAt).toBeNull()
  })
})
