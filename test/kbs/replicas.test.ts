// KBS sessions and nonces are shared through the store: two brokers over one PostgreSQL database
// (in-process apps, each with its own deps), the client's auth on one, attest on the other, the
// resource from the first; the same Attestation posted to both at once is accepted once.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startHarness, type Harness } from '../broker/harness.js'
import { createApp } from '../../src/broker/app.js'
import { buildDeps } from '../../src/broker/server.js'
import { createLogger } from '../../src/broker/logger.js'
import type { BrokerDeps } from '../../src/broker/deps.js'
import * as A from '../../src/broker/admin-services.js'
import { RcarClient, type Fetch } from './rcar-client.js'
import { testOnlySnp, withArk, type TestOnlySnp } from './snp.js'

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: coco-replicas
spec:
  tees: [sev-snp]
  conditions:
    - name: measurement-known
      expr: claims.measurement in refs["coco-measurements"]
  grants:
    secrets: ["kbs:///tenant-a/tls/key"]
`

describe('KBS protocol across two replicas on PostgreSQL', () => {
  let h: Harness
  let other: BrokerDeps
  let snp: TestOnlySnp
  let a: ReturnType<typeof createApp>
  let b: ReturnType<typeof createApp>
  const via = (app: ReturnType<typeof createApp>): Fetch => async (path, init) => app.request(`http://localhost${path}`, init)

  beforeAll(async () => {
    h = await startHarness('postgres')
    snp = await testOnlySnp()
    other = await buildDeps(h.config, createLogger('silent'))
    for (const d of [h.deps, other]) d.verifiers['sev-snp'] = withArk(d.verifiers['sev-snp']!, snp.ark)
    a = createApp(h.deps)
    b = createApp(other)
    await A.applyPolicy(h.deps, POLICY, 'test')
    await A.addReferenceValue(h.deps, { set: 'coco-measurements', tee: 'sev-snp', value: snp.measurement, source: 'testOnly SNP report' }, 'test')
    await A.putSecret(h.deps, 'kbs:///tenant-a/tls/key', { text: 'testOnly-replicated-kbs' }, 'test')
  })
  afterAll(async () => {
    await other?.store.close()
    await h?.stop()
  })

  it('auth on replica A, attest on replica B, resource from A; one Attestation posted to both at once is accepted once', async () => {
    const route: Fetch = (path, init) => (path.endsWith('/attest') ? via(b) : via(a))(path, init)
    const c = new RcarClient({ fetch: route, tee: 'snp', evidence: (d) => snp.evidence(d) })
    await c.handshake()
    expect(new TextDecoder().decode(await c.getResource('kbs:///tenant-a/tls/key'))).toBe('testOnly-replicated-kbs')

    // A session whose first Attestation was malformed (refused before its nonce is spent), then the real one posted to both replicas at once.
    const e = new RcarClient({ fetch: via(a), tee: 'snp', evidence: (x) => snp.evidence(x) })
    let evidence: unknown
    await e.handshake({ primary: async (digest) => ((evidence = await snp.evidence(digest)), { withheld: true }) }).catch(() => undefined)
    const cookie = `kbs-session-id=${e.cookies.get('kbs-session-id')}`
    const body = JSON.stringify({ ...(e.sent.at(-1)!.body as object), 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } })
    const post = (app: ReturnType<typeof createApp>) => app.request('http://localhost/kbs/v0/attest', { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body })
    const statuses = (await Promise.all([post(a), post(b)])).map((r) => r.status).sort()
    expect(statuses).toEqual([200, 401])
  })
})
