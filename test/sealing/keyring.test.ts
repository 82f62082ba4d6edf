// The local keyring: created 0600 on first start, refused when group/world accessible, versioned
// KEKs with AAD-bound wraps, rotation persisted atomically and seen by other instances.
import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { openLocalKeyring, KEYRING_FILE } from '../../src/sealing/keyring.js'
import { errorCodeOf } from '../helpers/errors.js'

const enc = new TextEncoder()
let dir: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-keyring-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})


describe('local keyring', () => {
  it('creates keyring.json with mode 0600 and one KEK on first start', async () => {
    const k = await openLocalKeyring(join(dir, 'data'))
    const st = statSync(join(dir, 'data', KEYRING_FILE))
    expect(st.mode & 0o777).toBe(0o600)
    expect(k.currentId()).toBe('local:1')
    expect(k.ids()).toEqual(['local:1'])
    const file = JSON.parse(readFileSync(k.path, 'utf8')) as { keys: { key: string }[] }
    expect(Buffer.from(file.keys[0]!.key, 'base64url')).toHaveLength(32)
    // reopening keeps the same key
    const again = await openLocalKeyring(join(dir, 'data'))
    const dk = new Uint8Array(randomBytes(32))
    expect(await again.unwrap(await k.wrap(dk, enc.encode('a')), enc.encode('a'))).toEqual(dk)
  })

  it.each([0o640, 0o604, 0o644, 0o660])('refuses to start when the file mode is %o', async (mode) => {
    await openLocalKeyring(dir)
    chmodSync(join(dir, KEYRING_FILE), mode)
    expect(await errorCodeOf(openLocalKeyring(dir))).toBe('ERR_CONFIG')
  })

  it('refuses a malformed keyring', async () => {
    writeFileSync(join(dir, KEYRING_FILE), '{"format":"keyward-keyring-v1","keys":[]}', { mode: 0o600 })
    expect(await errorCodeOf(openLocalKeyring(dir))).toBe('ERR_CONFIG')
    writeFileSync(join(dir, KEYRING_FILE), 'not json', { mode: 0o600 })
    expect(await errorCodeOf(openLocalKeyring(dir))).toBe('ERR_CONFIG')
  })

  it('binds the AAD and the KEK id, and rejects tampered wraps with ERR_UNSEAL', async () => {
    const k = await openLocalKeyring(dir)
    const dk = new Uint8Array(randomBytes(32))
    const aad = enc.encode('keyward-secret-v1\0db\x001')
    const w = await k.wrap(dk, aad)
    expect(w.kekId).toBe('local:1')
    expect(w.wrapped).toHaveLength(12 + 32 + 16)
    expect(await k.unwrap(w, aad)).toEqual(dk)
    expect(await errorCodeOf(k.unwrap(w, enc.encode('keyward-secret-v1\0db\x002')))).toBe('ERR_UNSEAL')
    for (const i of [0, 20, w.wrapped.length - 1]) {
      const bad = new Uint8Array(w.wrapped)
      bad[i]! ^= 1
      expect(await errorCodeOf(k.unwrap({ ...w, wrapped: bad }, aad))).toBe('ERR_UNSEAL')
    }
    expect(await errorCodeOf(k.unwrap({ ...w, wrapped: w.wrapped.subarray(0, 20) }, aad))).toBe('ERR_UNSEAL')
    expect(await errorCodeOf(k.unwrap({ ...w, kekId: 'local:9' }, aad))).toBe('ERR_UNSEAL')
    // relabelling under another (real) KEK id fails as well
    await k.rotate()
    expect(await errorCodeOf(k.unwrap({ ...w, kekId: 'local:2' }, aad))).toBe('ERR_UNSEAL')
  })

  it('rotates: later wraps use the new version, old wraps still open, rewrap moves them', async () => {
    const k = await openLocalKeyring(dir)
    const aad = enc.encode('x')
    const dk = new Uint8Array(randomBytes(32))
    const w1 = await k.wrap(dk, aad)
    expect(await k.rotate()).toBe('local:2')
    expect(await k.rotate()).toBe('local:3')
    expect(k.ids()).toEqual(['local:1', 'local:2', 'local:3'])
    const w3 = await k.wrap(dk, aad)
    expect(w3.kekId).toBe('local:3')
    expect(await k.unwrap(w1, aad)).toEqual(dk)
    const moved = await k.rewrap(w1, aad)
    expect(moved.kekId).toBe('local:3')
    expect(await k.unwrap(moved, aad)).toEqual(dk)
    // written atomically: still 0600, no temp or lock files left behind
    expect(statSync(k.path).mode & 0o777).toBe(0o600)
    expect(readdirSync(dir)).toEqual([KEYRING_FILE])
    expect(existsSync(`${k.path}.lock`)).toBe(false)
  })

  it('lets a second instance on the same directory see a rotation (CLI rotates, server wraps)', async () => {
    const server = await openLocalKeyring(dir)
    const cli = await openLocalKeyring(dir)
    const aad = enc.encode('y')
    const dk = new Uint8Array(randomBytes(32))
    expect(await cli.rotate()).toBe('local:2')
    const w = await cli.wrap(dk, aad)
    expect(await server.unwrap(w, aad)).toEqual(dk) // unknown id → reload
    expect((await server.wrap(dk, aad)).kekId).toBe('local:2') // changed file → reload
    // two instances rotating in turn never reuse a version
    expect(await server.rotate()).toBe('local:3')
    expect(await cli.rotate()).toBe('local:4')
    expect(server.ids()).toEqual(['local:1', 'local:2', 'local:3'])
    expect((await openLocalKeyring(dir)).ids()).toEqual(['local:1', 'local:2', 'local:3', 'local:4'])
  })

  it('a lock or temp file left by a killed rotation (dead pid on this host) does not block the next rotation', async () => {
    const k = await openLocalKeyring(dir)
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!
    writeFileSync(`${k.path}.lock`, `${dead} ${hostname()}\n`, { mode: 0o600 })
    const orphan = `${k.path}.${dead}.0123456789ab.tmp`
    writeFileSync(orphan, 'key material', { mode: 0o600 })
    // (a lock younger than a minute from a live holder would make this ERR_SEAL after 10 s)
    expect(await k.rotate()).toBe('local:2')
    expect(existsSync(`${k.path}.lock`)).toBe(false)
    expect(existsSync(orphan)).toBe(false)
    // A live holder (this process) is waited for, never broken.
    writeFileSync(`${k.path}.lock`, `${process.pid} ${hostname()}\n`, { mode: 0o600 })
    expect(await errorCodeOf(k.rotate())).toBe('ERR_SEAL')
    expect(k.ids()).toEqual(['local:1', 'local:2'])
  }, 30_000)
})
