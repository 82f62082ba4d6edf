// Admin and relying-party credentials: a fast keyed-free hash for 256-bit random values (no
// scrypt on the request path), the same answer on every failing path, legacy scrypt rows
// re-hashed on first use, and revocation (admin API and CLI) that holds at once on every replica.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startHarness, type Harness } from './harness.js'
import { createApp } from '../../src/broker/app.js'
import { buildDeps } from '../../src/broker/server.js'
import { createLogger } from '../../src/broker/logger.js'
import type { BrokerDeps } from '../../src/broker/deps.js'
import * as A from '../../src/broker/admin-services.js'
import { hashCredential, hashLegacyScrypt } from '../../src/sealing/credentials.js'
import { runKeywardInProcess } from '../helpers/cli.js'

const get = (app: ReturnType<typeof createApp>, token: string) => app.request('/v1/admin/secrets', { headers: { authorization: `Bearer ${token}` } })

describe.each(['sqlite', 'postgres'] as const)('admin credentials on %s', (backend) => {
  let h: Harness
  let replica: BrokerDeps
  beforeAll(async () => {
    h = await startHarness(backend)
    // A second broker process over the same store, as another replica would be.
    replica = await buildDeps(h.config, createLogger('silent', undefined), { clock: h.deps.clock })
  })
  afterAll(async () => {
    await replica?.store.close()
    await h?.stop()
  })

  it('new credentials are stored as a fast SHA-256 form, never the token, and authenticate', async () => {
    const token = await A.createCredential(h.deps, 'admin', 'fast', hashCredential)
    const row = (await h.deps.store.getCredential('admin:fast'))!
    expect(row.hash).toMatch(/^sha256\$[A-Za-z0-9_-]{43}$/)
    expect(row.hash).not.toContain(token.split('.').at(-1))
    expect((await get(createApp(h.deps), token)).status).toBe(200)
  })

  it('unknown name, wrong secret, wrong kind and revoked credential get the same 401 answer', async () => {
    const app = createApp(h.deps)
    const token = await A.createCredential(h.deps, 'admin', 'same-answer', hashCredential)
    const secret = token.split('.').at(-1)!
    const revoked = await A.createCredential(h.deps, 'admin', 'gone', hashCredential)
    await A.revokeCredential(h.deps, 'admin', 'gone', 'test')
    const bodies = new Set<string>()
    for (const t of [`kw.admin.nobody.${secret}`, `kw.admin.same-answer.${'A'.repeat(43)}`, `kw.rp.same-answer.${secret}`, revoked]) {
      const r = await get(app, t)
      expect(r.status, t).toBe(401)
      bodies.add(await r.text())
    }
    expect([...bodies]).toEqual(['{"error":{"code":"ERR_UNAUTHORIZED","message":"admin credential required"}}'])
  })

  it('a legacy scrypt row still authenticates once and is re-hashed to the fast form; wrong secrets fail', async () => {
    const secret = 'testOnlyLegacySecret0123456789abcdefghijk'
    await h.deps.store.putCredential({ id: 'admin:legacy', kind: 'admin', hash: await hashLegacyScrypt(secret, { N: 1024, r: 8, p: 1 }), createdAt: 0, revokedAt: null })
    const app = createApp(h.deps)
    expect((await get(app, `kw.admin.legacy.${secret}x`)).status).toBe(401)
    expect((await h.deps.store.getCredential('admin:legacy'))!.hash).toMatch(/^scrypt\$/)
    expect((await get(app, `kw.admin.legacy.${secret}`)).status).toBe(200)
    expect((await h.deps.store.getCredential('admin:legacy'))!.hash).toBe(await hashCredential(secret))
    expect((await get(app, `kw.admin.legacy.${secret}`)).status).toBe(200)
  })

  it('revocation through the admin API holds at once on another replica (no cached credential)', async () => {
    const victim = await A.createCredential(h.deps, 'admin', 'victim', hashCredential)
    const here = createApp(h.deps)
    const there = createApp(replica)
    expect((await get(there, victim)).status).toBe(200)
    const del = await here.request('/v1/admin/credentials/admin/victim', { method: 'DELETE', headers: { authorization: `Bearer ${h.adminToken}` } })
    expect(del.status).toBe(204)
    expect((await get(there, victim)).status).toBe(401)
    expect((await get(here, victim)).status).toBe(401)
    const again = await here.request('/v1/admin/credentials/admin/victim', { method: 'DELETE', headers: { authorization: `Bearer ${h.adminToken}` } })
    expect(again.status).toBe(404)
    const audit = await A.allAuditRows(h.deps)
    expect(audit.filter((r) => r.type === 'credential.revoke' && r.subject === 'admin:victim')).toHaveLength(1)
  })

  it('a relying-party credential is revoked for /v1/appraise at once', async () => {
    const rp = await A.createCredential(h.deps, 'relying-party', 'plugin', hashCredential)
    const there = createApp(replica)
    const appraise = () => there.request('/v1/appraise', { method: 'POST', headers: { authorization: `Bearer ${rp}`, 'content-type': 'application/json' }, body: '{}' })
    expect((await appraise()).status).toBe(400) // authenticated, then the empty body is refused
    const del = await createApp(h.deps).request('/v1/admin/credentials/relying-party/plugin', { method: 'DELETE', headers: { authorization: `Bearer ${h.adminToken}` } })
    expect(del.status).toBe(204)
    expect((await appraise()).status).toBe(401)
  })
})

describe('keyward credential revoke (CLI)', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness('sqlite')
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('revokes an admin credential in the store; a running broker refuses it at once; unknown names exit 1 with ERR_NOT_FOUND', async () => {
    const token = await A.createCredential(h.deps, 'admin', 'ops', hashCredential)
    const app = createApp(h.deps)
    expect((await get(app, token)).status).toBe(200)
    const r = await runKeywardInProcess(['credential', 'revoke', 'ops', '--data-dir', h.config.dataDir], { DATABASE_URL: '' })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('revoked admin credential ops')
    expect((await get(app, token)).status).toBe(401)
    const unknown = await runKeywardInProcess(['credential', 'revoke', 'relying-party', 'nobody', '--data-dir', h.config.dataDir], { DATABASE_URL: '' })
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('ERR_NOT_FOUND')
  })
})
