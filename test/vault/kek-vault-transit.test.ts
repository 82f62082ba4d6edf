import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { randomBytes } from 'node:crypto'
import { createTransitKek } from '../../src/sealing/kek-vault-transit.js'
import type { KekProvider } from '../../src/sealing/kek.js'
import { startRig, type Rig } from './helpers.js'
import { rejectionOf } from '../helpers/errors.js'

let rig: Rig
let kek: KekProvider
const aad = (name: string, version: number) => new TextEncoder().encode(`${name}\0${version}`)

beforeEach(async () => {
  rig = await startRig()
  rig.vault.createTransitKey('keyward-kek', { derived: true })
  kek = createTransitKek(rig.client(), 'keyward-kek')
})
afterEach(async () => {
  await rig.close()
})


describe('Vault Transit KEK provider', () => {
  it('wraps and unwraps a data key bound to its aad', async () => {
    const dk = new Uint8Array(randomBytes(32))
    const w = await kek.wrap(dk, aad('db', 1))
    expect(kek.name).toBe('vault-transit')
    expect(w.kekId).toBe('transit:keyward-kek:1')
    expect(new TextDecoder().decode(w.wrapped)).toMatch(/^vault:v1:/)
    expect(await kek.unwrap(w, aad('db', 1))).toEqual(dk)
    // Same wrapped key presented for another secret or version: the derived key differs.
    expect((await rejectionOf(kek.unwrap(w, aad('db', 2)))).code).toBe('ERR_UNSEAL')
    expect((await rejectionOf(kek.unwrap(w, aad('other', 1)))).code).toBe('ERR_UNSEAL')
    // The context sent is a digest, never the aad itself.
    const enc = rig.vault.log.find((l) => l.path === 'transit/encrypt/keyward-kek')?.body as { context: string }
    expect(Buffer.from(enc.context, 'base64')).toHaveLength(32)
  })

  it('rejects tampered ciphertext and a kekId that does not match the ciphertext version', async () => {
    const w = await kek.wrap(new Uint8Array(32), aad('db', 1))
    const text = new TextDecoder().decode(w.wrapped)
    const flipped = text.slice(0, -4) + (text.at(-4) === 'A' ? 'B' : 'A') + text.slice(-3)
    expect((await rejectionOf(kek.unwrap({ ...w, wrapped: new TextEncoder().encode(flipped) }, aad('db', 1)))).code).toBe('ERR_UNSEAL')
    const n = rig.vault.log.length
    expect((await rejectionOf(kek.unwrap({ ...w, kekId: 'transit:keyward-kek:2' }, aad('db', 1)))).code).toBe('ERR_UNSEAL')
    expect((await rejectionOf(kek.unwrap({ ...w, wrapped: new Uint8Array([0xff, 0xfe]) }, aad('db', 1)))).code).toBe('ERR_UNSEAL')
    expect(rig.vault.log.length).toBe(n) // refused before asking Vault
  })

  it('rotates, rewraps inside Vault, and keeps old wraps readable', async () => {
    const dk = new Uint8Array(randomBytes(32))
    const w1 = await kek.wrap(dk, aad('db', 1))
    expect(await kek.rotate()).toBe('transit:keyward-kek:2')
    const w2 = await kek.rewrap(w1, aad('db', 1))
    expect(w2.kekId).toBe('transit:keyward-kek:2')
    expect(await kek.unwrap(w2, aad('db', 1))).toEqual(dk)
    expect(await kek.unwrap(w1, aad('db', 1))).toEqual(dk)
    expect((await kek.wrap(dk, aad('db', 2))).kekId).toBe('transit:keyward-kek:2')
    // rewrap never sends or receives the plaintext
    const rewrap = rig.vault.log.find((l) => l.path === 'transit/rewrap/keyward-kek')?.body as Record<string, unknown>
    expect(Object.keys(rewrap).sort()).toEqual(['ciphertext', 'context'])
    expect((await rejectionOf(kek.rewrap(w1, aad('db', 9)))).code).toBe('ERR_UNSEAL')
  })

  it('refuses a non-derived key (its context would be ignored) before encrypting anything', async () => {
    rig.vault.createTransitKey('plain')
    const p = createTransitKek(rig.client(), 'plain')
    expect((await rejectionOf(p.wrap(new Uint8Array(32), aad('db', 1)))).code).toBe('ERR_CONFIG')
    expect(rig.vault.log.some((l) => l.path === 'transit/encrypt/plain')).toBe(false)
  })

  it('keeps Vault availability codes: sealed → ERR_VAULT_SEALED, down → ERR_VAULT_UNAVAILABLE', async () => {
    const w = await kek.wrap(new Uint8Array(32), aad('db', 1))
    await rig.vault.setMode('sealed')
    expect((await rejectionOf(kek.unwrap(w, aad('db', 1)))).code).toBe('ERR_VAULT_SEALED')
    expect((await rejectionOf(kek.wrap(new Uint8Array(32), aad('db', 1)))).code).toBe('ERR_VAULT_SEALED')
    await rig.vault.setMode('down')
    expect((await rejectionOf(kek.rewrap(w, aad('db', 1)))).code).toBe('ERR_VAULT_UNAVAILABLE')
  })
})
