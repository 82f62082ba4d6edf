// docs/vault.md, docker/vault-setup.sh and docker/jwt-role.json describe one Vault setup; and the
// least-privilege policy for keyward must cover every call keyward makes (and nothing is needed
// beyond it). The calls are observed on the stand-in.
import { describe, it, expect, afterEach } from 'vitest'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { REPO_ROOT } from '../helpers/vectors.js'
import { createTransitKek } from '../../src/sealing/kek-vault-transit.js'
import { createLeaseManager } from '../../src/vault/leases.js'
import { readKvSecret } from '../../src/vault/kv-source.js'
import { startRig, writeFile, type Rig } from './helpers.js'
import { createMemoryLeaseStore } from './memory-lease-store.js'

const doc = readFileSync(resolve(REPO_ROOT, 'docs/vault.md'), 'utf8')
const setup = readFileSync(resolve(REPO_ROOT, 'docker/vault-setup.sh'), 'utf8')

function keywardPolicy(text: string): Array<{ path: string; caps: string[] }> {
  const m = /vault policy write keyward - <<'HCL'\n([\s\S]*?)\nHCL/.exec(text)
  if (!m) throw new Error('no keyward policy')
  return [...(m[1] as string).matchAll(/^path "([^"]+)"\s*\{\s*capabilities = \[([^\]]*)\]\s*\}/gm)].map((x) => ({
    path: x[1] as string,
    caps: [...(x[2] as string).matchAll(/"(\w+)"/g)].map((c) => c[1] as string),
  }))
}

let rig: Rig | undefined
afterEach(async () => {
  await rig?.close()
  rig = undefined
})

describe('Vault setup as documented', () => {
  it('docker/jwt-role.json is the role in docs/vault.md', () => {
    const block = /<!-- jwt-role:begin -->\s*```json\n([\s\S]*?)```/.exec(doc)
    expect(JSON.parse(readFileSync(resolve(REPO_ROOT, 'docker/jwt-role.json'), 'utf8'))).toEqual(JSON.parse(block?.[1] as string))
  })

  it('the setup script writes the documented keyward policy and token role', () => {
    expect(keywardPolicy(setup)).toEqual(keywardPolicy(doc))
    const role = (t: string) => /vault write auth\/token\/roles\/keyward-workload \\\n([\s\S]*?token_explicit_max_ttl=\S+)/.exec(t)?.[1]?.replace(/\s+/g, ' ').trim()
    expect(role(setup)).toBeDefined()
    expect(role(setup)).toBe(role(doc))
    expect(setup).toContain('transit/keys/keyward-kek type=aes256-gcm96 derived=true')
  })

  it('keyward\'s policy covers every call keyward makes, with the right capability', async () => {
    rig = await startRig()
    const v = rig.vault
    v.addTokenRole('keyward-workload', { allowed_policies: ['app-read'], orphan: true })
    v.createTransitKey('keyward-kek', { derived: true })
    v.kvPut('secret', 'keyward/demo', { password: 'x' })
    const ids = v.addAppRole('keyward', { policies: ['keyward'], token_ttl: 1, token_max_ttl: 60 })
    const client = rig.client({ auth: { kind: 'approle', roleId: ids.roleId, secretIdFile: writeFile(rig.dir, 'sid', ids.secretId) }, renewFraction: 0.2 })
    const leases = createLeaseManager({ client, store: createMemoryLeaseStore(), audit: () => undefined })
    const att = { jti: 'j', jkt: 'k', tee: 'tpm', measurement: 'm', policy: 'p', referenceIds: [], workload: 'w' }
    await leases.mintForAttestation(att, { role: 'keyward-workload', policies: ['app-read'], ttl: 60, num_uses: 1, wrap_ttl: 30 })
    await leases.revokeFor({ jkt: 'k' }, 'test')
    await readKvSecret(client, { mount: 'secret', path: 'keyward/demo', version: 1, field: 'password' })
    const kek = createTransitKek(client, 'keyward-kek')
    const aad = new Uint8Array([1])
    const w = await kek.wrap(new Uint8Array(32), aad)
    await kek.rotate()
    await kek.unwrap(await kek.rewrap(w, aad), aad)
    await new Promise((r) => setTimeout(r, 300)) // a renewal
    await rig.client().start() // token-file mode: lookup-self
    const policy = keywardPolicy(doc)
    const needed = new Set<string>()
    for (const l of v.log.filter((x) => x.path !== 'auth/approle/login' && x.path !== 'sys/health')) {
      const cap = l.method === 'GET' ? 'read' : 'update'
      const rule = policy.find((p) => (p.path.endsWith('*') ? l.path.startsWith(p.path.slice(0, -1)) : l.path === p.path))
      expect(rule, `${l.method} ${l.path}`).toBeDefined()
      expect(rule?.caps).toContain(cap)
      needed.add(rule?.path as string)
    }
    // Least privilege: every rule in the policy is used by some operation.
    expect([...needed].sort()).toEqual(policy.map((p) => p.path).sort())
  })
})
