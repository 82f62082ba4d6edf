// Test helpers for the Vault tests: a stand-in plus a client logged in with a token file.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createVaultClient, type VaultClient, type VaultClientConfig } from '../../src/vault/client.js'
import { startVaultStandIn, type VaultStandIn } from './vault-api-stand-in.js'

export interface Rig {
  vault: VaultStandIn
  dir: string
  tokenFile: string
  client(over?: Partial<VaultClientConfig>): VaultClient
  close(): Promise<void>
}

/** Fast, deterministic backoff so retry tests take milliseconds. */
export const FAST_BACKOFF = { baseDelayMs: 5, maxDelayMs: 20, random: () => 0.5 }

export async function startRig(): Promise<Rig> {
  const vault = await startVaultStandIn()
  const dir = mkdtempSync(join(tmpdir(), 'keyward-vault-'))
  const tokenFile = join(dir, 'token')
  writeFileSync(tokenFile, `${vault.rootToken}\n`, { mode: 0o600 })
  const clients: VaultClient[] = []
  return {
    vault,
    dir,
    tokenFile,
    client(over = {}) {
      const c = createVaultClient({ addr: vault.addr, auth: { kind: 'token-file', path: tokenFile }, timeoutMs: 2000, backoff: FAST_BACKOFF, ...over })
      clients.push(c)
      return c
    },
    async close() {
      for (const c of clients) c.stop()
      await vault.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export function writeFile(dir: string, name: string, text: string): string {
  const p = join(dir, name)
  writeFileSync(p, text, { mode: 0o600 })
  return p
}
