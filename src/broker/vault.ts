// Wires Vault (src/vault) into the broker: keyward's own Vault session, the lease manager that
// mints and revokes attestation-bound tokens, and KV v2 as a secret source.
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { BrokerConfig } from './config.js'
import type { Store } from '../store/types.js'
import type { VaultServices } from './deps.js'
import { KeywardError, isKeywardError } from '../errors.js'
import { createVaultClient, type VaultClient } from '../vault/client.js'
import { createLeaseManager } from '../vault/leases.js'
import { readKvSecret } from '../vault/kv-source.js'
import type { Metrics } from './metrics.js'

export async function createVaultServices(
  config: BrokerConfig,
  store: Store,
  logger: Logger,
  clock: () => Date,
): Promise<{ client: VaultClient; services: VaultServices }> {
  const v = config.vault!
  const roleId = v.approle ? (v.approle.roleId ?? readFileSync(v.approle.roleIdFile!, 'utf8').trim()) : undefined
  const auth = v.approle
    ? ({ kind: 'approle', roleId: roleId!, secretIdFile: v.approle.secretIdFile, ...(v.approle.mount ? { mount: v.approle.mount } : {}) } as const)
    : v.tokenFile
      ? ({ kind: 'token-file', path: v.tokenFile } as const)
      : undefined
  if (!auth) throw new KeywardError('ERR_CONFIG', 'vault needs tokenFile or approle')
  const client = createVaultClient({
    addr: v.addr,
    ...(v.namespace ? { namespace: v.namespace } : {}),
    auth,
    timeoutMs: v.timeoutMs,
    logger: { info: (o, m) => logger.info(o, m), warn: (o, m) => logger.warn(o, m) },
    now: () => clock().getTime(),
  })
  const leases = createLeaseManager({
    client,
    store,
    audit: (entry) => store.appendAudit(entry, clock().getTime()),
    now: () => clock().getTime(),
  })
  return {
    client,
    services: {
      async mintToken(attested, grant) {
        const minted = await leases.mintForAttestation(attested, {
          role: grant.role,
          policies: grant.policies,
          ttl: grant.ttlSeconds,
          num_uses: grant.numUses,
          ...(grant.wrapTtlSeconds ? { wrap_ttl: grant.wrapTtlSeconds } : {}),
        })
        return {
          ...(minted.token ? { token: minted.token } : {}),
          ...(minted.wrapToken ? { wrapToken: minted.wrapToken } : {}),
          accessor: minted.accessor,
          leaseDuration: minted.leaseDuration,
        }
      },
      async revokeFor(filter, reason) {
        const f = filter.jkt ? { jkt: filter.jkt } : filter.jti ? { jti: filter.jti } : filter.referenceId ? { referenceId: filter.referenceId } : { policy: filter.policy! }
        const out = await leases.revokeFor(f, reason)
        if (out.failed.length > 0) logger.warn({ failed: out.failed.length }, 'some Vault tokens could not be revoked; they stay listed as live and are retried')
        return out.revoked.length
      },
      readKv: (ref) => readKvSecret(client, { mount: ref.mount, path: ref.path, ...(ref.version ? { version: ref.version } : {}), ...(ref.field ? { field: ref.field } : {}) }),
    },
  }
}

/** Counts every Vault call of the broker's Vault services by operation and result. */
export function instrumentVault(v: VaultServices, metrics: Pick<Metrics, 'vaultCalls'>): VaultServices {
  const count = async <T>(op: string, fn: () => Promise<T>): Promise<T> => {
    try {
      const out = await fn()
      metrics.vaultCalls.inc({ op, result: 'ok' })
      return out
    } catch (e) {
      metrics.vaultCalls.inc({ op, result: isKeywardError(e) ? e.code : 'error' })
      throw e
    }
  }
  return {
    mintToken: (attested, grant) => count('mint', () => v.mintToken(attested, grant)),
    revokeFor: (filter, reason) => count('revoke', () => v.revokeFor(filter, reason)),
    readKv: (ref) => count('kv-read', () => v.readKv(ref)),
  }
}
