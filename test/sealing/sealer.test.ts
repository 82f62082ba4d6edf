// Envelope sealing: AAD binds name and version, tampering gives ERR_UNSEAL, KEK rotation re-wraps
// every data key (both store backends) without touching the value ciphertext, sealed JSON blobs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { openLocalKeyring, type LocalKeyring } from '../../src/sealing/keyring.js'
import { createSealer, storeSecret, secretAad, type Sealer } from '../../src/sealing/sealer.js'
import { createLocation, type Backend, type TestLocation } from '../store/helpers.js'
import type { Store } from '../../src/store/types.js'
import { errorCodeOf } from '../helpers/errors.js'

const enc = new TextEncoder()
const dec = new TextDecoder()
const T0 = 1_790_000_000_000


function flip(b: Uint8Array, i: number): Uint8Array {
  const c = new Uint8Array(b)
  c[i]! ^= 0x80
  return c
}

describe('sealer', () => {
  let dir: string
  let kek: LocalKeyring
  let sealer: Sealer
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-sealer-'))
    kek = await openLocalKeyring(dir)
    sealer = createSealer(kek)
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('round-trips a value and uses a fresh data key and iv per seal', async () => {
    const value = enc.encode('testOnlyDatabasePassword')
    const a = await sealer.seal('db', 1, value)
    const b = await sealer.seal('db', 1, value)
    expect(a.kekId).toBe(kek.currentId())
    expect(a.iv).toHaveLength(12)
    expect(a.ciphertext).toHaveLength(value.length + 16)
    expect(Buffer.from(a.ciphertext).includes(Buffer.from(value))).toBe(false)
    expect(a.iv).not.toEqual(b.iv)
    expect(a.wrappedKey).not.toEqual(b.wrappedKey)
    expect(dec.decode(await sealer.unseal({ name: 'db', version: 1, ...a }))).toBe('testOnlyDatabasePassword')
    expect(await sealer.unseal({ name: 'db', version: 1, ...await sealer.seal('db', 1, new Uint8Array()) })).toEqual(new Uint8Array())
  })

  it('binds name and version: a row moved elsewhere fails with ERR_UNSEAL', async () => {
    const s = await sealer.seal('db', 2, enc.encode('v'))
    expect(await errorCodeOf(sealer.unseal({ name: 'db', version: 3, ...s }))).toBe('ERR_UNSEAL')
    expect(await errorCodeOf(sealer.unseal({ name: 'dc', version: 2, ...s }))).toBe('ERR_UNSEAL')
    expect(dec.decode(secretAad('db', 2))).toBe('keyward-secret-v1\0db\x002')
    // ciphertext of one version with the wrapped key of another fails too
    const other = await sealer.seal('db', 2, enc.encode('w'))
    expect(await errorCodeOf(sealer.unseal({ name: 'db', version: 2, ...s, wrappedKey: other.wrappedKey }))).toBe('ERR_UNSEAL')
  })

  it('rejects every tampered field with ERR_UNSEAL and a fixed message', async () => {
    const s = await sealer.seal('api', 1, enc.encode('testOnlyToken'))
    const row = { name: 'api', version: 1, ...s }
    const bad = [
      { ...row, ciphertext: flip(s.ciphertext, 0) },
      { ...row, ciphertext: flip(s.ciphertext, s.ciphertext.length - 1) }, // GCM tag
      { ...row, ciphertext: s.ciphertext.subarray(0, 10) },
      { ...row, iv: flip(s.iv, 3) },
      { ...row, iv: s.iv.subarray(0, 8) },
      { ...row, wrappedKey: flip(s.wrappedKey, 30) },
      { ...row, kekId: 'local:77' },
      { ...row, kekId: 'transit:other:1' },
    ]
    for (const r of bad) {
      const e = await sealer.unseal(r).then(() => undefined, (x: unknown) => x as { code: string; message: string })
      expect(e).toMatchObject({ code: 'ERR_UNSEAL', message: 'unseal failed' })
    }
  })

  it('refuses a version that is not a positive integer', async () => {
    for (const v of [0, -1, 1.5, Number.NaN]) expect(await errorCodeOf(sealer.seal('x', v, enc.encode('v')))).toBe('ERR_BAD_REQUEST')
  })

  it('seals JSON bound to a label', async () => {
    const jwk = { kty: 'EC', crv: 'P-256', d: 'testOnlyPrivateScalar', x: 'x', y: 'y' }
    const blob = await sealer.sealJson('kid-1', jwk)
    expect(blob).not.toContain('testOnlyPrivateScalar')
    expect(JSON.parse(blob)).toMatchObject({ v: 1, kekId: kek.currentId() })
    expect(await sealer.unsealJson('kid-1', blob)).toEqual(jwk)
    expect(await errorCodeOf(sealer.unsealJson('kid-2', blob))).toBe('ERR_UNSEAL')
    const parsed = JSON.parse(blob) as { ciphertext: string }
    const c = Buffer.from(parsed.ciphertext, 'base64url')
    c[0]! ^= 1
    expect(await errorCodeOf(sealer.unsealJson('kid-1', JSON.stringify({ ...parsed, ciphertext: c.toString('base64url') })))).toBe('ERR_UNSEAL')
    for (const junk of ['', 'null', '{}', '{"v":2}', blob.slice(0, -5), JSON.stringify({ ...parsed, iv: '***' })]) {
      expect(await errorCodeOf(sealer.unsealJson('kid-1', junk))).toBe('ERR_UNSEAL')
    }
    expect(await errorCodeOf(sealer.sealJson('k', undefined))).toBe('ERR_SEAL')
  })
})

describe.each<Backend>(['sqlite', 'postgres'])('sealed secrets in a store (%s)', (backend) => {
  let loc: TestLocation
  let store: Store
  let dir: string
  let kek: LocalKeyring
  let sealer: Sealer
  beforeAll(async () => {
    loc = await createLocation(backend)
    store = await loc.open()
    dir = mkdtempSync(join(tmpdir(), 'keyward-sealer-store-'))
    kek = await openLocalKeyring(dir)
    sealer = createSealer(kek)
  })
  afterAll(async () => {
    await store?.close()
    await loc?.cleanup()
    rmSync(dir, { recursive: true, force: true })
  })

  it('stores concurrent puts of one name under distinct versions, each readable', async () => {
    const values = Array.from({ length: 10 }, (_, i) => `testOnlyValue-${i}`)
    const versions = await Promise.all(values.map((v) =>
      storeSecret(store, sealer, { name: 'multi', value: enc.encode(v), createdBy: 'admin:t', createdAt: T0 })))
    expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
    for (let i = 0; i < values.length; i++) {
      const row = await store.getSecretVersion('multi', versions[i])
      expect(dec.decode(await sealer.unseal(row!))).toBe(values[i])
    }
  })

  it('rotates the KEK and rewraps every data key; every secret stays readable', async () => {
    const expected = new Map<string, string>()
    for (let i = 0; i < 8; i++) {
      const value = `testOnly-${randomBytes(8).toString('hex')}`
      const v = await storeSecret(store, sealer, { name: `s${i % 4}`, value: enc.encode(value), createdBy: 'admin:t', createdAt: T0 })
      expected.set(`s${i % 4}@${v}`, value)
    }
    await storeSecret(store, sealer, { name: 'gone', value: enc.encode('x'), createdBy: 'admin:t', createdAt: T0 })
    await store.deleteSecret('gone', 'admin:t')
    const before = await store.allSecretVersions()
    const oldKek = kek.currentId()
    expect(before.every((r) => r.kekId === oldKek)).toBe(true)

    const res = await sealer.rewrapAll(store)
    expect(res.kekId).not.toBe(oldKek)
    expect(res).toMatchObject({ total: before.length, rewrapped: before.length, unchanged: 0, failed: [] })

    const after = await store.allSecretVersions()
    expect(after).toHaveLength(before.length)
    for (const r of after) {
      const old = before.find((b) => b.name === r.name && b.version === r.version)!
      expect(r.kekId).toBe(res.kekId)
      expect(r.wrappedKey).not.toEqual(old.wrappedKey)
      // the value ciphertext at rest is untouched: only data keys were re-wrapped
      expect(r.ciphertext).toEqual(old.ciphertext)
      expect(r.iv).toEqual(old.iv)
      expect(dec.decode(await sealer.unseal(r))).toBe(expected.get(`${r.name}@${r.version}`) ?? dec.decode(await sealer.unseal(old)))
    }
    for (const [key, value] of expected) {
      const [name, v] = key.split('@')
      expect(dec.decode(await sealer.unseal((await store.getSecretVersion(name!, Number(v)))!))).toBe(value)
    }

    // a second rotation moves everything again; a fresh sealer over a reopened keyring reads all
    const res2 = await sealer.rewrapAll(store)
    expect(res2.kekId).not.toBe(res.kekId)
    const fresh = createSealer(await openLocalKeyring(dir))
    for (const r of await store.allSecretVersions()) {
      expect(r.kekId).toBe(res2.kekId)
      await expect(fresh.unseal(r)).resolves.toBeInstanceOf(Uint8Array)
    }
  })

  it('reports a row it cannot unwrap and leaves it as it was', async () => {
    const s = await sealer.seal('broken', 1, enc.encode('v'))
    await store.putSecretVersion({ name: 'broken', version: 1, ...s, wrappedKey: flip(s.wrappedKey, 5), source: null, createdAt: T0, createdBy: 'a' })
    const res = await sealer.rewrapAll(store)
    expect(res.failed).toEqual(['broken@1'])
    expect((await store.getSecretVersion('broken', 1))?.kekId).toBe(s.kekId)
    expect(res.rewrapped).toBe(res.total - 1)
  })
})
