import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest'
import { inspect } from 'node:util'
import { KeywardError } from '../../src/errors.js'
import { httpStatus } from '../../src/broker/http/errors.js'
import { createVaultClient } from '../../src/vault/client.js'
import { startRig, writeFile, FAST_BACKOFF, type Rig } from './helpers.js'
import { startVaultStandIn } from './vault-api-stand-in.js'
import { rejectionOf } from '../helpers/errors.js'

let rig: Rig
beforeEach(async () => {
  rig = await startRig()
  rig.vault.addTokenRole('keyward-workload', { allowed_policies: ['app-read', 'app-write'], orphan: true })
})
afterEach(async () => {
  await rig.close()
})


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('token creation through a token role', () => {
  it('creates a token with policies, ttl, num_uses and metadata, sending the namespace header', async () => {
    const c = rig.client({ namespace: 'team-a' })
    const meta = { keyward_jkt: 'abc', keyward_tee: 'sev-snp', keyward_measurement: 'ff00', keyward_policy: 'prod' }
    const t = await c.createToken('keyward-workload', { policies: ['app-read'], ttl: '15m', numUses: 3, meta })
    expect(t.token).toMatch(/^hvs\./)
    expect(t.wrapToken).toBeUndefined()
    expect(t.leaseDuration).toBe(900)
    const minted = rig.vault.tokenByAccessor(t.accessor)
    expect(minted?.id).toBe(t.token)
    expect(minted?.meta).toEqual(meta)
    expect(minted?.policies).toEqual(['app-read'])
    expect(minted?.numUses).toBe(3)
    const req = rig.vault.log.find((l) => l.path === 'auth/token/create/keyward-workload')
    expect(req?.namespace).toBe('team-a')
    expect(req?.body).toMatchObject({ ttl: '900s', num_uses: 3, renewable: false })
  })

  it('response-wraps the token when wrapTtl is set: only a single-use wrapping token comes back', async () => {
    const c = rig.client()
    const t = await c.createToken('keyward-workload', { policies: ['app-read'], ttl: 600, numUses: 0, meta: { keyward_jkt: 'k' }, wrapTtl: '60s' })
    expect(t.token).toBeUndefined()
    expect(t.wrapToken).toBeDefined()
    expect(t.wrapTtl).toBe(60)
    expect(rig.vault.log.at(-1)?.wrapTtl).toBe('60s')
    // The workload unwraps it (sys/wrapping/unwrap): the inner response carries the token and its accessor.
    const unwrap = () => fetch(`${rig.vault.addr}/v1/sys/wrapping/unwrap`, { method: 'POST', headers: { 'X-Vault-Token': t.wrapToken as string } })
    const r = await unwrap()
    expect(r.status).toBe(200)
    const body = (await r.json()) as { auth: { client_token: string; accessor: string; metadata: Record<string, string> } }
    expect(body.auth.accessor).toBe(t.accessor)
    expect(body.auth.metadata.keyward_jkt).toBe('k')
    expect((await unwrap()).status).toBe(403) // single use
  })

  it('rejects policies outside the role with ERR_VAULT_ERROR and bad parameters before any request', async () => {
    const c = rig.client()
    const e = await rejectionOf(c.createToken('keyward-workload', { policies: ['root'], ttl: 60, numUses: 0, meta: {} }))
    expect(e.code).toBe('ERR_VAULT_ERROR')
    expect(e.detail?.status).toBe(400)
    const before = rig.vault.log.length
    expect((await rejectionOf(c.createToken('../sys', { policies: [], ttl: 60, numUses: 0, meta: {} }))).code).toBe('ERR_BAD_REQUEST')
    expect((await rejectionOf(c.createToken('keyward-workload', { policies: [], ttl: 'forever', numUses: 0, meta: {} }))).code).toBe('ERR_BAD_REQUEST')
    expect(rig.vault.log.length).toBe(before)
  })

  it('revokes by accessor', async () => {
    const c = rig.client()
    const t = await c.createToken('keyward-workload', { policies: ['app-read'], ttl: 60, numUses: 0, meta: {} })
    await c.revokeAccessor(t.accessor)
    expect(rig.vault.tokenByAccessor(t.accessor)?.revoked).toBe(true)
  })
})

describe('KV v2', () => {
  it('reads the latest and a given version; deleted, destroyed and missing ones are ERR_NOT_FOUND', async () => {
    rig.vault.kvPut('secret', 'apps/db', { password: 'one' })
    rig.vault.kvPut('secret', 'apps/db', { password: 'two' })
    rig.vault.kvPut('secret', 'apps/db', { password: 'three' })
    rig.vault.kvDelete('secret', 'apps/db', 2)
    rig.vault.kvDestroy('secret', 'apps/db', 3)
    const c = rig.client()
    expect(await c.kvRead('secret', 'apps/db', 1)).toEqual({ data: { password: 'one' }, version: 1 })
    expect((await rejectionOf(c.kvRead('secret', 'apps/db', 2))).code).toBe('ERR_NOT_FOUND')
    expect((await rejectionOf(c.kvRead('secret', 'apps/db'))).code).toBe('ERR_NOT_FOUND')
    expect((await rejectionOf(c.kvRead('secret', 'apps/none'))).code).toBe('ERR_NOT_FOUND')
    rig.vault.kvPut('secret', 'apps/db', { password: 'four' })
    expect(await c.kvRead('secret', 'apps/db')).toEqual({ data: { password: 'four' }, version: 4 })
    expect(rig.vault.log.some((l) => l.path === 'secret/data/apps/db' && l.query === '?version=1')).toBe(true)
  })

  it.each(['../sys/seal', 'a/../b', '/abs', 'a//b', 'a?version=1', 'a b', ''])('refuses path %j without a request', async (p) => {
    const c = rig.client()
    const before = rig.vault.log.length
    expect((await rejectionOf(c.kvRead('secret', p))).code).toBe('ERR_BAD_REQUEST')
    expect(rig.vault.log.length).toBe(before)
  })
})

describe('transit', () => {
  it('encrypts, decrypts, rotates and rewraps with a derived key and context', async () => {
    rig.vault.createTransitKey('kek', { derived: true })
    const c = rig.client()
    const ctx = new Uint8Array([1, 2, 3])
    const pt = new Uint8Array(32).fill(7)
    const ct = await c.transitEncrypt('kek', pt, ctx)
    expect(ct.ciphertext).toMatch(/^vault:v1:/)
    expect(ct.keyVersion).toBe(1)
    expect(await c.transitDecrypt('kek', ct.ciphertext, ctx)).toEqual(pt)
    expect((await rejectionOf(c.transitDecrypt('kek', ct.ciphertext, new Uint8Array([9])))).code).toBe('ERR_VAULT_ERROR')
    expect(await c.transitRotate('kek')).toBe(2)
    const re = await c.transitRewrap('kek', ct.ciphertext, ctx)
    expect(re.keyVersion).toBe(2)
    expect(await c.transitDecrypt('kek', re.ciphertext, ctx)).toEqual(pt)
    expect(await c.transitKeyInfo('kek')).toEqual({ type: 'aes256-gcm96', derived: true, latestVersion: 2 })
  })

  it('reads the new version after a rotate answered with 204 (older Vault)', async () => {
    rig.vault.createTransitKey('kek', { derived: true })
    rig.vault.setRotateNoContent(true)
    const c = rig.client()
    expect(await c.transitRotate('kek')).toBe(2)
    expect(await c.transitRotate('kek')).toBe(3)
  })
})

describe('keyward\'s own credential', () => {
  it('logs in with AppRole without sending a token, and renews before expiry', async () => {
    // A controllable clock for the stand-in and the client, and fake timers for the renewal
    // schedule: the test moves time itself and waits for each renewal to arrive, never on wall time.
    let clock = Date.now()
    const vault = await startVaultStandIn({ now: () => clock })
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const ids = vault.addAppRole('keyward', { policies: ['keyward'], token_ttl: 1, token_max_ttl: 60 })
      const secretIdFile = writeFile(rig.dir, 'secret-id', `${ids.secretId}\n`)
      const c = createVaultClient({ addr: vault.addr, auth: { kind: 'approle', roleId: ids.roleId, secretIdFile }, renewFraction: 0.3, now: () => clock, timeoutMs: 2000, backoff: FAST_BACKOFF })
      await c.start()
      expect(c.status()).toMatchObject({ authenticated: true, logins: 1, renewals: 0 })
      expect(vault.log[0]).toMatchObject({ path: 'auth/approle/login', hadToken: false })
      // Three renewal periods (0.3 of the 1 s TTL each): past the first token's expiry, only renewals keep it alive.
      for (let n = 1; n <= 4; n++) {
        clock += 300
        await vi.advanceTimersByTimeAsync(300)
        while (c.status().renewals < n) await new Promise((r) => setImmediate(r))
      }
      const s = c.status()
      expect(s.renewals).toBe(4)
      expect(s.logins).toBe(1)
      vault.kvPut('secret', 'x', { v: 1 })
      expect((await c.kvRead('secret', 'x')).version).toBe(1) // still a live token, 1.2 s after a 1 s login
      c.stop()
      const renewals = vault.log.filter((l) => l.path === 'auth/token/renew-self').length
      expect(renewals).toBe(4)
      clock += 10_000
      await vi.advanceTimersByTimeAsync(10_000)
      expect(vault.log.filter((l) => l.path === 'auth/token/renew-self').length).toBe(renewals)
    } finally {
      vi.useRealTimers()
      await vault.close()
    }
  })

  it('logs in again when token_max_ttl caps the renewal', async () => {
    const ids = rig.vault.addAppRole('keyward', { policies: ['keyward'], token_ttl: 1, token_max_ttl: 1 })
    const secretIdFile = writeFile(rig.dir, 'secret-id', ids.secretId)
    const c = rig.client({ auth: { kind: 'approle', roleId: ids.roleId, secretIdFile }, renewFraction: 0.5 })
    await c.start()
    await sleep(900)
    expect(c.status().logins).toBeGreaterThanOrEqual(2)
  })

  it('fails with ERR_CONFIG for a missing token file and ERR_VAULT_ERROR for a wrong secret_id', async () => {
    const missing = rig.client({ auth: { kind: 'token-file', path: `${rig.dir}/nope` } })
    expect((await rejectionOf(missing.kvRead('secret', 'x'))).code).toBe('ERR_CONFIG')
    const bad = rig.client({ auth: { kind: 'approle', roleId: 'r', secretIdFile: writeFile(rig.dir, 's', 'wrong') } })
    expect((await rejectionOf(bad.start())).code).toBe('ERR_VAULT_ERROR')
    expect(() => createVaultClient({ addr: 'file:///etc/passwd', auth: { kind: 'token-file', path: rig.tokenFile } })).toThrow(KeywardError)
  })
})

describe('failure modes', () => {
  it('down: connection refused is ERR_VAULT_UNAVAILABLE (503) after bounded retries, also for token creation', async () => {
    const c = rig.client({ retries: 2 })
    await c.start()
    await rig.vault.setMode('down')
    const e = await rejectionOf(c.kvRead('secret', 'x'))
    expect([e.code, httpStatus(e), e.detail?.attempts, e.detail?.delivered]).toEqual(['ERR_VAULT_UNAVAILABLE', 503, 3, false])
    const t = await rejectionOf(c.createToken('keyward-workload', { policies: [], ttl: 60, numUses: 0, meta: {} }))
    expect([t.code, t.detail?.attempts]).toEqual(['ERR_VAULT_UNAVAILABLE', 3])
    await rig.vault.setMode('up')
    rig.vault.kvPut('secret', 'x', { v: 1 })
    expect((await c.kvRead('secret', 'x')).data).toEqual({ v: 1 })
  })

  it('403 is ERR_VAULT_DENIED (502) without retries', async () => {
    const c = rig.client()
    await c.start()
    await rig.vault.setMode('denied')
    const n = rig.vault.log.length
    const e = await rejectionOf(c.transitEncrypt('kek', new Uint8Array(1)))
    expect([e.code, httpStatus(e)]).toEqual(['ERR_VAULT_DENIED', 502])
    expect(rig.vault.log.length - n).toBe(1)
  })

  it('sealed is ERR_VAULT_SEALED (503); health reports it', async () => {
    const c = rig.client()
    await c.start()
    await rig.vault.setMode('sealed')
    const e = await rejectionOf(c.revokeAccessor('abc'))
    expect([e.code, httpStatus(e)]).toEqual(['ERR_VAULT_SEALED', 503])
    expect(await c.health()).toMatchObject({ initialized: true, sealed: true })
    await rig.vault.setMode('up')
    expect((await c.health()).sealed).toBe(false)
  })

  it('slow: a request past timeoutMs is ERR_VAULT_UNAVAILABLE', async () => {
    const c = rig.client({ timeoutMs: 150, retries: 1 })
    await c.start()
    rig.vault.setSlow(400)
    const e = await rejectionOf(c.kvRead('secret', 'x'))
    expect([e.code, e.detail?.attempts]).toEqual(['ERR_VAULT_UNAVAILABLE', 2])
    rig.vault.setSlow(0)
  })

  it('retries transient 5xx on reads (bounded) but never token creation once delivered', async () => {
    rig.vault.kvPut('secret', 'x', { v: 1 })
    const c = rig.client({ retries: 2 })
    await c.start()
    rig.vault.failNext(2, 502)
    expect((await c.kvRead('secret', 'x')).version).toBe(1)
    rig.vault.failNext(10, 502)
    let n = rig.vault.log.length
    expect((await rejectionOf(c.kvRead('secret', 'x'))).detail?.attempts).toBe(3)
    expect(rig.vault.log.length - n).toBe(3)
    rig.vault.failNext(10, 503, ['standby'])
    n = rig.vault.log.length
    const e = await rejectionOf(c.createToken('keyward-workload', { policies: [], ttl: 60, numUses: 0, meta: {} }))
    expect([e.code, rig.vault.log.length - n]).toEqual(['ERR_VAULT_UNAVAILABLE', 1])
    rig.vault.failNext(0, 500)
  })

  it('never carries keyward\'s token or secret_id in an error', async () => {
    const ids = rig.vault.addAppRole('keyward', { policies: ['keyward'], token_ttl: 60, token_max_ttl: 60 })
    const c = createVaultClient({ addr: rig.vault.addr, auth: { kind: 'approle', roleId: ids.roleId, secretIdFile: writeFile(rig.dir, 'sid', ids.secretId) }, backoff: FAST_BACKOFF, timeoutMs: 100, retries: 0 })
    try {
      await c.start()
      expect(c.status().logins).toBe(1)
      for (const mode of ['denied', 'sealed', 'slow', 'down'] as const) {
        if (mode === 'slow') rig.vault.setSlow(300)
        else await rig.vault.setMode(mode)
        const e = await rejectionOf(c.kvRead('secret', 'x'))
        const text = inspect(e, { depth: 10, showHidden: true }) + JSON.stringify(e) + JSON.stringify(e.detail)
        expect(text).not.toContain(ids.secretId)
        expect(text).not.toMatch(/hvs\./)
        expect(e.cause).toBeUndefined()
        rig.vault.setSlow(0)
        await rig.vault.setMode('up')
      }
    } finally {
      c.stop()
    }
  })
})

describe('configuration is explicit', () => {
  it('ignores VAULT_TOKEN, VAULT_NAMESPACE and VAULT_PREFIX from the environment', async () => {
    const saved = { t: process.env.VAULT_TOKEN, n: process.env.VAULT_NAMESPACE, p: process.env.VAULT_PREFIX }
    process.env.VAULT_TOKEN = 'hvs.from-env'
    process.env.VAULT_NAMESPACE = 'env-ns'
    process.env.VAULT_PREFIX = '/env-prefix'
    try {
      const ids = rig.vault.addAppRole('keyward', { policies: ['keyward'], token_ttl: 60, token_max_ttl: 60 })
      const c = rig.client({ auth: { kind: 'approle', roleId: ids.roleId, secretIdFile: writeFile(rig.dir, 'sid', ids.secretId) } })
      await c.start()
      rig.vault.kvPut('secret', 'x', { v: 1 })
      await c.kvRead('secret', 'x')
      expect(rig.vault.log.map((l) => [l.path, l.hadToken, l.namespace])).toEqual([
        ['auth/approle/login', false, undefined],
        ['secret/data/x', true, undefined],
      ])
    } finally {
      for (const [k, v] of [['VAULT_TOKEN', saved.t], ['VAULT_NAMESPACE', saved.n], ['VAULT_PREFIX', saved.p]] as const) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
  })
})
