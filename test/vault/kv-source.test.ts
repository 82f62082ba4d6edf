import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { KeywardError } from '../../src/errors.js'
import { parseKvSecretRef, readKvSecret, readKvSecretVersioned } from '../../src/vault/kv-source.js'
import { startRig, type Rig } from './helpers.js'
import { rejectionOf } from '../helpers/errors.js'

let rig: Rig
beforeEach(async () => {
  rig = await startRig()
  rig.vault.kvPut('secret', 'apps/db', { password: 'p1', port: 5432 })
  rig.vault.kvPut('secret', 'apps/db', { password: 'p2', port: 5432, tls: { ca: 'x' } })
})
afterEach(async () => {
  await rig.close()
})

const text = (b: Uint8Array) => new TextDecoder().decode(b)


describe('Vault KV v2 as a secret source', () => {
  it('releases a field of a pinned version, the latest version, or the whole data as JSON', async () => {
    const c = rig.client()
    expect(text(await readKvSecret(c, { mount: 'secret', path: 'apps/db', version: 1, field: 'password' }))).toBe('p1')
    expect(text(await readKvSecret(c, { mount: 'secret', path: 'apps/db', field: 'password' }))).toBe('p2')
    expect(text(await readKvSecret(c, { mount: 'secret', path: 'apps/db', field: 'port' }))).toBe('5432')
    expect(JSON.parse(text(await readKvSecret(c, { mount: 'secret', path: 'apps/db' })))).toEqual({ password: 'p2', port: 5432, tls: { ca: 'x' } })
    expect((await readKvSecretVersioned(c, { mount: 'secret', path: 'apps/db' })).version).toBe(2)
  })

  it('is ERR_NOT_FOUND for a missing field, a deleted version and a missing path', async () => {
    const c = rig.client()
    expect((await rejectionOf(readKvSecret(c, { mount: 'secret', path: 'apps/db', field: 'user' }))).code).toBe('ERR_NOT_FOUND')
    expect((await rejectionOf(readKvSecret(c, { mount: 'secret', path: 'apps/db', field: 'constructor' }))).code).toBe('ERR_NOT_FOUND')
    rig.vault.kvDelete('secret', 'apps/db', 1)
    expect((await rejectionOf(readKvSecret(c, { mount: 'secret', path: 'apps/db', version: 1 }))).code).toBe('ERR_NOT_FOUND')
    expect((await rejectionOf(readKvSecret(c, { mount: 'secret', path: 'apps/none' }))).code).toBe('ERR_NOT_FOUND')
  })

  it('releases nothing when Vault is sealed or denies', async () => {
    const c = rig.client()
    await rig.vault.setMode('sealed')
    expect((await rejectionOf(readKvSecret(c, { mount: 'secret', path: 'apps/db' }))).code).toBe('ERR_VAULT_SEALED')
    await rig.vault.setMode('denied')
    expect((await rejectionOf(readKvSecret(c, { mount: 'secret', path: 'apps/db' }))).code).toBe('ERR_VAULT_DENIED')
  })

  it('parses a stored source reference strictly', () => {
    expect(parseKvSecretRef('{"kind":"vault-kv2","mount":"secret","path":"apps/db","version":2,"field":"password"}')).toEqual({ kind: 'vault-kv2', mount: 'secret', path: 'apps/db', version: 2, field: 'password' })
    for (const bad of ['nope', '{}', '{"mount":"secret","path":"a","version":0}', '{"mount":"secret","path":"a","extra":1}']) {
      expect(() => parseKvSecretRef(bad)).toThrow(KeywardError)
    }
  })
})
