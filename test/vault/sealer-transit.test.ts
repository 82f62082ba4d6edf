// The broker's sealer (src/sealing/sealer.ts) with Vault Transit as its KEK: the same code path
// secrets take at rest when config selects the vault-transit provider.
import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { KeywardError } from '../../src/errors.js'
import { createSealer } from '../../src/sealing/sealer.js'
import { createTransitKek } from '../../src/sealing/kek-vault-transit.js'
import type { SecretVersionRow, Store } from '../../src/store/types.js'
import { startRig, type Rig } from './helpers.js'

let rig: Rig
beforeEach(async () => {
  rig = await startRig()
  rig.vault.createTransitKey('keyward-kek', { derived: true })
})
afterEach(async () => {
  await rig.close()
})

const bytes = (s: string) => new TextEncoder().encode(s)

/** Test-only: the Store methods KEK rotation uses, over an array (no signing keys here). */
function rowsStore(rows: SecretVersionRow[]): Store {
  return {
    allSecretVersions: async () => rows.map((r) => ({ ...r })),
    listSigningKeys: async () => [],
    updateWrappedKey: async (name: string, version: number, wrappedKey: Uint8Array, kekId: string) => {
      const r = rows.find((x) => x.name === name && x.version === version)
      if (r) Object.assign(r, { wrappedKey, kekId })
    },
  } as unknown as Store
}

describe('sealer over the Vault Transit KEK', () => {
  it('seals and unseals; a row moved to another name or version does not open', async () => {
    const sealer = createSealer(createTransitKek(rig.client(), 'keyward-kek'))
    const s = await sealer.seal('db-password', 1, bytes('hunter2'))
    expect(s.kekId).toBe('transit:keyward-kek:1')
    expect(new TextDecoder().decode(await sealer.unseal({ name: 'db-password', version: 1, ...s }))).toBe('hunter2')
    await expect(sealer.unseal({ name: 'db-password', version: 2, ...s })).rejects.toMatchObject({ code: 'ERR_UNSEAL' })
    await expect(sealer.unseal({ name: 'other', version: 1, ...s })).rejects.toMatchObject({ code: 'ERR_UNSEAL' })
  })

  it('rotates the Transit key and rewraps every data key (keys rotate --kek), values unchanged', async () => {
    const sealer = createSealer(createTransitKek(rig.client(), 'keyward-kek'))
    const rows: SecretVersionRow[] = []
    for (const [name, version, value] of [['a', 1, 'one'], ['a', 2, 'two'], ['b', 1, 'three']] as const) {
      const s = await sealer.seal(name, version, bytes(value))
      rows.push({ name, version, ...s, source: null, createdAt: 0, createdBy: 'test' })
    }
    const before = rows.map((r) => Buffer.from(r.ciphertext).toString('hex'))
    const n = rig.vault.log.length
    const res = await sealer.rewrapAll(rowsStore(rows))
    // Rotation moved wrapped keys inside Vault: no data key was decrypted out of it.
    expect(rig.vault.log.slice(n).map((l) => l.path).sort()).toEqual(['transit/keys/keyward-kek/rotate', ...Array(3).fill('transit/rewrap/keyward-kek')].sort())
    expect(res).toEqual({ kekId: 'transit:keyward-kek:2', total: 3, rewrapped: 3, unchanged: 0, failed: [], signingKeys: 0 })
    expect(rows.every((r) => r.kekId === 'transit:keyward-kek:2')).toBe(true)
    expect(rows.map((r) => Buffer.from(r.ciphertext).toString('hex'))).toEqual(before)
    expect(await Promise.all(rows.map(async (r) => new TextDecoder().decode(await sealer.unseal(r))))).toEqual(['one', 'two', 'three'])
  })

  it('opens nothing while Vault is sealed', async () => {
    const sealer = createSealer(createTransitKek(rig.client(), 'keyward-kek'))
    const s = await sealer.seal('db-password', 1, bytes('hunter2'))
    await rig.vault.setMode('sealed')
    const e = await sealer.unseal({ name: 'db-password', version: 1, ...s }).then(() => undefined, (x: unknown) => x)
    expect(e).toBeInstanceOf(KeywardError)
    // A sealed Vault is a 503 the caller can retry, not a broken secret: the code passes through.
    expect((e as KeywardError).code).toBe('ERR_VAULT_SEALED')
  })
})
