// Abuse controls through the public HTTP API (app.request over a real store, SQLite and
// PostgreSQL): an unauthenticated flood leaves the audit chain and the store bounded, bursts get
// 429 with Retry-After, path parameters are validated, and a legitimate release in the middle
// of it all still succeeds and is audited. Time moves by the harness clock, never by sleeping.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startHarness, testOnlyNitroCollector, type Harness } from './harness.js'
import { createSessionKey, type SessionKey } from '../../enclave-client/src/session-key.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import { createApp } from '../../src/broker/app.js'
import type { BrokerDeps } from '../../src/broker/deps.js'
import * as A from '../../src/broker/admin-services.js'
import { hashCredential } from '../../src/sealing/credentials.js'

type App = ReturnType<typeof createApp>
const from = (addr: string) => ({ incoming: { socket: { remoteAddress: addr } } })
const json = { 'content-type': 'application/json' }

function appWith(h: Harness, limits: Partial<BrokerDeps['config']['limits']> = {}, over: Partial<BrokerDeps['config']> = {}): App {
  const config = { ...h.deps.config, ...over, limits: { ...h.deps.config.limits, ...limits } }
  return createApp({ ...h.deps, config })
}

async function attestBody(app: App, h: Harness, addr: string, over: Record<string, unknown> = {}) {
  const key = await createSessionKey('ES256')
  const res = await app.request('/v1/challenge', { method: 'POST' }, from(addr))
  expect(res.status, 'challenge').toBe(200)
  const ch = (await res.json()) as { nonce: string }
  const nonce = Buffer.from(ch.nonce, 'base64url')
  const evidence = await testOnlyNitroCollector(h.pki, over).collect({ binding: bindingDigest(nonce, key.jktBytes), nonce })
  return { key, body: JSON.stringify({ tee: 'nitro', nonce: ch.nonce, key: key.publicJwk, evidence }) }
}

async function attestVia(app: App, h: Harness, addr: string): Promise<{ key: SessionKey; token: string; status: number }> {
  const { key, body } = await attestBody(app, h, addr)
  const r = await app.request('/v1/attest', { method: 'POST', headers: json, body }, from(addr))
  return { key, token: ((await r.json()) as { token: string }).token, status: r.status }
}

/** Evidence whose PCR0 is not in the reference set, so policy test-enclave denies it. */
const WRONG_PCRS = { pcrs: new Map([[0, new Uint8Array(48).fill(9)], [1, new Uint8Array(48).fill(2)], [2, new Uint8Array(48).fill(3)]]) }

async function releaseVia(app: App, addr: string, a: { key: SessionKey; token: string }, name = 'db-password') {
  const url = `http://localhost/v1/secrets/${name}`
  const r = await app.request(url, { headers: { authorization: `DPoP ${a.token}`, dpop: await a.key.dpopProof('GET', url, a.token) } }, from(addr))
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as Record<string, any> }
}

async function auditRows(h: Harness) {
  return A.allAuditRows(h.deps)
}

/**
 * An attest request whose body the test ends: the route holds it in flight until then. `read`
 * resolves when the route first asks for the body, that is, once the request has been admitted.
 */
function heldAttest(app: App, addr = '198.51.100.7') {
  let end!: () => void
  let reading!: () => void
  const held = { read: false }
  const read = new Promise<void>((r) => (reading = r)).then(() => void (held.read = true))
  const body = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      reading()
      await new Promise<void>((r) => (end = r))
      ctl.enqueue(new TextEncoder().encode('{}'))
      ctl.close()
    },
  }, { highWaterMark: 0 }) // pulled only when read
  const res = app.request(new Request('http://localhost/v1/attest', { method: 'POST', headers: json, body, duplex: 'half' } as RequestInit), undefined, from(addr))
  return { res, read, held, end: () => end() }
}

describe.each(['sqlite', 'postgres'] as const)('abuse controls on %s', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend)
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('a 500-request unauthenticated flood adds no audit rows and keeps challenges under the cap; a release in the middle succeeds and is audited', async () => {
    const cap = 30
    // A short challenge lifetime, so the clock can pass it without leaving the DPoP iat window.
    const app = appWith(h, { perAddress: { ratePerSecond: 1, burst: 10_000 }, maxOutstandingNonces: cap }, { nonceTtlSeconds: 10 })
    const before = await auditRows(h)
    const attacker = '203.0.113.9'
    const garbageToken = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'
    const flood: Array<() => Response | Promise<Response>> = [
      () => app.request('/v1/secrets/x', {}, from(attacker)),
      () => app.request(`/v1/credentials/${'t'.repeat(4000)}`, { method: 'POST' }, from(attacker)),
      () => app.request('/v1/credentials/github', { method: 'POST' }, from(attacker)),
      () => app.request('/v1/secrets/db-password', { headers: { authorization: `DPoP ${garbageToken}`, dpop: garbageToken } }, from(attacker)),
      () => app.request('/v1/attest', { method: 'POST', headers: json, body: JSON.stringify({ tee: 'nitro', nonce: Buffer.alloc(32, 1).toString('base64url'), key: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }, evidence: { document: 'AAAA' } }) }, from(attacker)),
      () => app.request('/v1/attest', { method: 'POST', headers: json, body: '{"tee":' }, from(attacker)),
      () => app.request('/v1/tpm/activate', { method: 'POST', headers: json, body: JSON.stringify({ activationId: 'nope', secret: 'AAAA' }) }, from(attacker)),
      () => app.request('/v1/challenge', { method: 'POST' }, from(attacker)),
    ]
    const statuses = new Map<number, number>()
    let legit: Awaited<ReturnType<typeof releaseVia>> | undefined
    for (let i = 0; i < 500; i++) {
      if (i === 250) {
        // Challenges are at the cap by now: the flood's challenges expire and are pruned first.
        h.advance(11_000)
        legit = await releaseVia(app, '198.51.100.7', await attestVia(app, h, '198.51.100.7'))
      }
      const r = await flood[i % flood.length]!()
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
    }
    h.advance(-11_000)
    expect(legit?.status).toBe(200)
    expect(legit?.body.name).toBe('db-password')
    // Nothing but 4xx for the attacker, and none of it chained into the audit.
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500 || s === 200)).toBe(true)
    const added = (await auditRows(h)).slice(before.length)
    expect(added.map((r) => `${r.type}:${r.decision}`)).toEqual(['attestation:allow', 'release:secret:allow'])
    expect((await A.verifyAudit(h.deps)).ok).toBe(true)
    // Stored challenges never exceed the cap (the flood asked for 62 of them).
    expect(await h.deps.store.countNonces()).toBeLessThanOrEqual(cap)
    expect(statuses.get(429)).toBeGreaterThan(0)
    // The noise is counted, by route and code.
    const metrics = await h.deps.metrics.registry.getSingleMetricAsString('keyward_rejected_requests_total')
    expect(metrics).toMatch(/route="\/v1\/credentials\/:tool",code="ERR_BAD_REQUEST"} 6[0-9]/)
    expect(metrics).toMatch(/route="\/v1\/secrets\/:name",code="ERR_UNAUTHORIZED"}/)
    expect(metrics).toMatch(/route="\/v1\/attest",code="ERR_EVIDENCE_MALFORMED"}/)
  })

  it('the outstanding-challenge cap answers 429 ERR_TOO_MANY_PENDING with Retry-After, and expired challenges are pruned', async () => {
    const ttl = h.deps.config.nonceTtlSeconds * 1000
    let moved = 2 * ttl
    h.advance(moved) // earlier tests' challenges have expired
    try {
      const cap = 3
      const app = appWith(h, { maxOutstandingNonces: cap })
      await h.deps.store.pruneNonces(h.deps.clock().getTime())
      for (let i = 0; i < cap; i++) {
        const r = await app.request('/v1/challenge', { method: 'POST' }, from(`192.0.2.${i}`))
        expect(r.status, await r.text()).toBe(200)
      }
      const full = await app.request('/v1/challenge', { method: 'POST' }, from('192.0.2.99'))
      expect(full.status).toBe(429)
      expect(full.headers.get('retry-after')).toBe(String(h.deps.config.nonceTtlSeconds))
      expect(((await full.json()) as any).error.code).toBe('ERR_TOO_MANY_PENDING')
      h.advance(ttl + 1000)
      moved += ttl + 1000
      expect((await app.request('/v1/challenge', { method: 'POST' }, from('192.0.2.99'))).status).toBe(200)
      expect(await h.deps.store.countNonces()).toBe(1)
    } finally {
      h.advance(-moved)
    }
  })

  it('spent challenges do not hold the cap: at the cap they are pruned first, so attesting clients are never refused; a replay of one is still refused; unspent ones still fill the cap', async () => {
    const ttl = h.deps.config.nonceTtlSeconds * 1000
    h.advance(2 * ttl) // earlier tests' challenges have expired
    try {
      await h.deps.store.pruneSpentNonces(h.deps.clock().getTime())
      // Earlier tests may leave live challenges behind (their clock moved back): room for 3 more.
      const cap = (await h.deps.store.countNonces()) + 3
      const app = appWith(h, { maxOutstandingNonces: cap })
      const first = await attestBody(app, h, '192.0.2.40')
      const attestFirst = () => app.request('/v1/attest', { method: 'POST', headers: json, body: first.body }, from('192.0.2.40'))
      expect((await attestFirst()).status).toBe(200)
      // Three times the cap of challenge → attest flows, none of them left waiting, within one TTL.
      for (let i = 0; i < 3 * cap; i++) {
        const a = await attestVia(app, h, `192.0.2.${41 + i}`)
        expect(a.status, `flow ${i}`).toBe(200)
      }
      expect(await h.deps.store.countNonces()).toBeLessThanOrEqual(cap)
      // The first nonce's row was pruned as spent: its replay is refused all the same.
      const replay = await attestFirst()
      expect(replay.status).toBe(403)
      expect(['ERR_NONCE_USED', 'ERR_NONCE_UNKNOWN']).toContain(((await replay.json()) as any).error.code)
      // Challenges nobody answers are outstanding: they still fill the cap.
      await h.deps.store.pruneSpentNonces(h.deps.clock().getTime())
      const room = cap - (await h.deps.store.countNonces())
      for (let i = 0; i < room; i++) expect((await app.request('/v1/challenge', { method: 'POST' }, from(`192.0.2.${60 + i}`))).status).toBe(200)
      const full = await app.request('/v1/challenge', { method: 'POST' }, from('192.0.2.70'))
      expect(full.status).toBe(429)
      expect(((await full.json()) as any).error.code).toBe('ERR_TOO_MANY_PENDING')
    } finally {
      h.advance(-2 * ttl)
    }
  })

  it('a burst from one address gets 429 ERR_RATE_LIMITED with Retry-After; other addresses are served; the bucket refills with time', async () => {
    const app = appWith(h, { perAddress: { ratePerSecond: 2, burst: 5 } })
    const codes: number[] = []
    for (let i = 0; i < 8; i++) codes.push((await app.request('/v1/secrets/x', {}, from('203.0.113.50'))).status)
    expect(codes).toEqual([401, 401, 401, 401, 401, 429, 429, 429])
    const limited = await app.request('/v1/secrets/x', {}, from('203.0.113.50'))
    expect(limited.headers.get('retry-after')).toBe('1')
    expect(((await limited.json()) as any).error.code).toBe('ERR_RATE_LIMITED')
    expect((await app.request('/v1/secrets/x', {}, from('203.0.113.51'))).status).toBe(401)
    h.advance(1000)
    try {
      expect((await app.request('/v1/secrets/x', {}, from('203.0.113.50'))).status).toBe(401)
    } finally {
      h.advance(-1000)
    }
  })

  it('admission: past maxInflightRequests a request waits with its body unread, past maxQueuedRequests it gets 503 ERR_OVERLOADED with Retry-After; health and metrics still answer; waiters run in arrival order', async () => {
    const app = appWith(h, { maxInflightRequests: 1, maxQueuedRequests: 2 })
    const first = heldAttest(app)
    await first.read
    const second = heldAttest(app)
    const third = heldAttest(app)

    const refused = await app.request('/v1/challenge', { method: 'POST' }, from('198.51.100.8'))
    expect(refused.status).toBe(503)
    expect(refused.headers.get('retry-after')).toBe('1')
    expect(((await refused.json()) as any).error.code).toBe('ERR_OVERLOADED')
    expect((await app.request('/healthz')).status).toBe(200)
    expect((await app.request('/readyz')).status).toBe(200)
    const metrics = await (await app.request('/metrics')).text()
    expect(metrics).toContain('code="ERR_OVERLOADED"')
    expect(metrics).toContain('keyward_http_requests_admitted{state="running"} 1')
    expect(metrics).toContain('keyward_http_requests_admitted{state="queued"} 2')
    expect([second.held.read, third.held.read], 'waiting requests have not started reading their bodies').toEqual([false, false])

    first.end()
    expect((await first.res).status).toBe(400) // {} is not an attest request
    expect(await Promise.race([second.read.then(() => 'second'), third.read.then(() => 'third')]), 'the first waiter goes first').toBe('second')
    expect(third.held.read).toBe(false)
    second.end()
    expect((await second.res).status).toBe(400)
    await third.read
    third.end()
    expect((await third.res).status).toBe(400)
    expect((await app.request('/v1/challenge', { method: 'POST' }, from('198.51.100.8'))).status, 'the slots are free again').toBe(200)
  })

  it('one address gets at most maxInflightPerAddress requests running or waiting: the next is 429 ERR_RATE_LIMITED with Retry-After; other addresses are served', async () => {
    const app = appWith(h, { maxInflightRequests: 10, maxInflightPerAddress: 2 })
    const held = [heldAttest(app, '198.51.100.20'), heldAttest(app, '198.51.100.20')]
    await Promise.all(held.map((r) => r.read))
    const third = await app.request('/v1/challenge', { method: 'POST' }, from('198.51.100.20'))
    expect(third.status).toBe(429)
    expect(third.headers.get('retry-after')).toBe('1')
    expect(((await third.json()) as any).error.code).toBe('ERR_RATE_LIMITED')
    expect((await app.request('/v1/challenge', { method: 'POST' }, from('198.51.100.21'))).status, 'another address').toBe(200)
    held[0]!.end()
    expect((await held[0]!.res).status).toBe(400)
    expect((await app.request('/v1/challenge', { method: 'POST' }, from('198.51.100.20'))).status, 'a slot of its own again').toBe(200)
    held[1]!.end()
    await held[1]!.res
  })

  it('releases are rate-limited per attested key: 429 with Retry-After, not audited; another key is served', async () => {
    // The bucket refills with the broker's clock: hold it still, so a slow machine cannot refill it mid-test.
    const at = h.deps.clock()
    const app = createApp({ ...h.deps, clock: () => at, config: { ...h.deps.config, limits: { ...h.deps.config.limits, perWorkload: { ratePerSecond: 1, burst: 2 } } } })
    const a = await attestVia(app, h, '198.51.100.20')
    expect(a.status).toBe(200)
    const before = (await auditRows(h)).length
    expect((await releaseVia(app, '198.51.100.20', a)).status).toBe(200)
    expect((await releaseVia(app, '198.51.100.21', a)).status).toBe(200)
    const third = await releaseVia(app, '198.51.100.22', a)
    expect(third.status).toBe(429)
    expect(third.body.error.code).toBe('ERR_RATE_LIMITED')
    expect(third.retryAfter).toBe('1')
    const added = (await auditRows(h)).slice(before)
    expect(added.map((r) => `${r.type}:${r.decision}`)).toEqual(['release:secret:allow', 'release:secret:allow'])
    const b = await attestVia(app, h, '198.51.100.20')
    expect((await releaseVia(app, '198.51.100.20', b)).status).toBe(200)
  })

  it('an authenticated denial is still audited with its reasons and the caller', async () => {
    const app = appWith(h)
    const a = await attestVia(app, h, '198.51.100.30')
    const before = (await auditRows(h)).length
    const r = await releaseVia(app, '198.51.100.30', a, 'not-granted')
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('ERR_NOT_GRANTED')
    const [row, ...rest] = (await auditRows(h)).slice(before)
    expect(rest).toEqual([])
    expect(row).toMatchObject({ type: 'release:secret', decision: 'deny', subject: a.key.jkt, detail: { name: 'not-granted', code: 'ERR_NOT_GRANTED' } })
  })

  it('an attestation that spent a nonce is audited even when its evidence is refused', async () => {
    const app = appWith(h)
    const key = await createSessionKey('ES256')
    const other = await createSessionKey('ES256')
    const ch = (await (await app.request('/v1/challenge', { method: 'POST' }, from('198.51.100.40'))).json()) as { nonce: string }
    const nonce = Buffer.from(ch.nonce, 'base64url')
    const evidence = await testOnlyNitroCollector(h.pki).collect({ binding: bindingDigest(nonce, other.jktBytes), nonce })
    const before = (await auditRows(h)).length
    const r = await app.request('/v1/attest', { method: 'POST', headers: json, body: JSON.stringify({ tee: 'nitro', nonce: ch.nonce, key: key.publicJwk, evidence }) }, from('198.51.100.40'))
    expect(r.status).toBe(403)
    const added = (await auditRows(h)).slice(before)
    expect(added).toHaveLength(1)
    expect(added[0]).toMatchObject({ type: 'attestation', decision: 'deny', detail: { code: 'ERR_BINDING_MISMATCH' } })
  })

  it('tool names in the path are validated: over-long or odd names get 400 ERR_BAD_REQUEST', async () => {
    const app = appWith(h)
    for (const tool of ['t'.repeat(129), '%00x', '-x', 'a%20b']) {
      const r = await app.request(`/v1/credentials/${tool}`, { method: 'POST' }, from('198.51.100.50'))
      expect(r.status, tool).toBe(400)
      expect(((await r.json()) as any).error.code).toBe('ERR_BAD_REQUEST')
    }
    // A well-formed name passes validation and meets authentication.
    expect((await app.request('/v1/credentials/search-api', { method: 'POST' }, from('198.51.100.50'))).status).toBe(401)
  })

  it('a denied workload gets a summary (code and count), not conditions, expressions or reference-set names; the audit keeps them all', async () => {
    const app = appWith(h)
    const { body } = await attestBody(app, h, '198.51.100.60', WRONG_PCRS)
    const before = (await auditRows(h)).length
    const r = await app.request('/v1/attest', { method: 'POST', headers: json, body }, from('198.51.100.60'))
    expect(r.status).toBe(403)
    const text = await r.text()
    expect(JSON.parse(text)).toEqual({ error: { code: 'ERR_POLICY_DENIED', message: 'policy denied the attestation: 1 condition(s) failed (details are in the audit)' } })
    for (const leak of ['pcr0-known', 'nitro-pcr0', 'refs[', '09'.repeat(48)]) expect(text).not.toContain(leak)
    const [row] = (await auditRows(h)).slice(before)
    expect(row).toMatchObject({ type: 'attestation', decision: 'deny', detail: { code: 'ERR_POLICY_DENIED', failures: [{ condition: 'pcr0-known', actual: '09'.repeat(48) }] } })
  })

  it('denialDetail: full shows the workload every failure; a relying party on /v1/appraise (authenticated) always sees them', async () => {
    const full = appWith(h, {}, { denialDetail: 'full' })
    const a = await attestBody(full, h, '198.51.100.61', WRONG_PCRS)
    const r = (await (await full.request('/v1/attest', { method: 'POST', headers: json, body: a.body }, from('198.51.100.61'))).json()) as any
    expect(r.error.failures).toEqual([expect.objectContaining({ condition: 'pcr0-known', actual: '09'.repeat(48) })])

    const app = appWith(h)
    const rp = await A.createCredential(h.deps, 'relying-party', 'abuse-rp', hashCredential)
    const b = await attestBody(app, h, '198.51.100.62', WRONG_PCRS)
    const ap = await app.request('/v1/appraise', { method: 'POST', headers: { ...json, authorization: `Bearer ${rp}` }, body: b.body }, from('198.51.100.62'))
    expect(ap.status).toBe(200)
    const out = (await ap.json()) as any
    expect(out.decision).toBe('deny')
    expect(out.error.failures).toEqual([expect.objectContaining({ condition: 'pcr0-known' })])
  })
})
