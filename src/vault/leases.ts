// Vault tokens for attested workloads (issue 9). A token is minted through a token role
// (auth/token/create/:role_name) with metadata naming what admitted it; its accessor is kept so
// keyward can revoke it (auth/token/revoke-accessor) when the workload fails re-attestation, a
// reference value it relied on is revoked, or its policy changes. Every mint and revocation is
// audited. Nothing is returned unless the lease row and the audit entry were both written.
import { z } from 'zod'
import { KeywardError, isKeywardError, type ErrorCode } from '../errors.js'
import type { AuditInput, Store } from '../store/types.js'
import { parseVaultDuration } from './duration.js'
import type { VaultClient } from './client.js'

export type LeaseStore = Pick<Store, 'insertVaultLease' | 'listLiveVaultLeases' | 'markVaultLeaseRevoked'>
export type AuditSink = (entry: AuditInput) => Promise<unknown> | unknown

/** What a successful attestation established (from the attestation token and its row). */
export interface AttestedWorkload {
  jti: string
  /** RFC 7638 thumbprint of the bound key, base64url. */
  jkt: string
  tee: string
  measurement: string
  policy: string
  referenceIds: string[]
  workload: string
}

const duration = z.union([z.string(), z.number()]).refine((v) => (parseVaultDuration(v) ?? 0) > 0, 'a positive Vault duration')

/** A policy's `vault:` grant. */
export const vaultGrantSchema = z
  .object({
    role: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/),
    policies: z.array(z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/)).min(1).max(32),
    ttl: duration,
    num_uses: z.number().int().min(0).max(1_000_000),
    wrap_ttl: duration.optional(),
  })
  .strict()
export type VaultGrant = z.infer<typeof vaultGrantSchema>

export interface MintedVaultToken {
  /** The Vault token (absent when wrapped). Secret: encrypt it to the workload's key, never log it. */
  token?: string
  /** Single-use wrapping token (present when the grant has wrap_ttl). Secret as well. */
  wrapToken?: string
  wrapTtl?: number
  accessor: string
  leaseDuration: number
  /** Epoch ms. */
  expiresAt: number
}

export type RevokeFilter = { jkt: string } | { jti: string } | { referenceId: string } | { policy: string }
const revokeFilterSchema = z.union([
  z.object({ jkt: z.string().min(1) }).strict(),
  z.object({ jti: z.string().min(1) }).strict(),
  z.object({ referenceId: z.string().min(1) }).strict(),
  z.object({ policy: z.string().min(1) }).strict(),
])

export interface RevokeOutcome {
  revoked: string[]
  failed: Array<{ accessor: string; code: ErrorCode }>
}

export interface LeaseManager {
  mintForAttestation(attested: AttestedWorkload, grant: VaultGrant): Promise<MintedVaultToken>
  revokeFor(filter: RevokeFilter, reason: string): Promise<RevokeOutcome>
}

export interface LeaseManagerDeps {
  client: Pick<VaultClient, 'createToken' | 'revokeAccessor'>
  store: LeaseStore
  audit: AuditSink
  now?: () => number
}

/** Token metadata keys (Vault: map<string|string>), documented in docs/vault.md. */
export function leaseMetadata(a: AttestedWorkload): Record<string, string> {
  return { keyward_jkt: a.jkt, keyward_tee: a.tee, keyward_measurement: a.measurement, keyward_policy: a.policy }
}

const codeOf = (e: unknown): ErrorCode => (isKeywardError(e) ? e.code : 'ERR_INTERNAL')

export function createLeaseManager(deps: LeaseManagerDeps): LeaseManager {
  const now = deps.now ?? Date.now

  /** Best effort: a token we could not record must not outlive the failure. */
  async function undo(accessor: string): Promise<boolean> {
    try {
      await deps.client.revokeAccessor(accessor)
      return true
    } catch {
      return false
    }
  }

  return {
    async mintForAttestation(attested, grantIn) {
      const g = vaultGrantSchema.safeParse(grantIn)
      if (!g.success) throw new KeywardError('ERR_POLICY_INVALID', 'invalid vault grant', { detail: { issues: g.error.issues.map((i) => i.path.join('.')) } })
      const grant = g.data
      const base = { jti: attested.jti, role: grant.role, policies: grant.policies, policy: attested.policy, workload: attested.workload }
      let created
      try {
        created = await deps.client.createToken(grant.role, {
          policies: grant.policies,
          ttl: grant.ttl,
          numUses: grant.num_uses,
          meta: leaseMetadata(attested),
          ...(grant.wrap_ttl !== undefined ? { wrapTtl: grant.wrap_ttl } : {}),
        })
      } catch (e) {
        await deps.audit({ type: 'vault.token.mint', subject: attested.jkt, decision: 'deny', detail: { ...base, code: codeOf(e) } })
        throw e
      }
      const at = now()
      const expiresAt = at + created.leaseDuration * 1000
      try {
        await deps.store.insertVaultLease({
          accessor: created.accessor,
          jti: attested.jti,
          jkt: attested.jkt,
          policy: attested.policy,
          referenceIds: JSON.stringify(attested.referenceIds),
          role: grant.role,
          createdAt: at,
          expiresAt,
          revokedAt: null,
        })
        await deps.audit({
          type: 'vault.token.mint',
          subject: attested.jkt,
          decision: 'allow',
          detail: { ...base, accessor: created.accessor, ttl: created.leaseDuration, wrapped: created.wrapToken !== undefined },
        })
      } catch (e) {
        const undone = await undo(created.accessor)
        if (undone) await deps.store.markVaultLeaseRevoked(created.accessor, now()).catch(() => undefined)
        throw new KeywardError('ERR_STORE', 'could not record the Vault token', { detail: { code: codeOf(e), revoked: undone } })
      }
      return {
        ...(created.token !== undefined ? { token: created.token } : {}),
        ...(created.wrapToken !== undefined ? { wrapToken: created.wrapToken, wrapTtl: created.wrapTtl } : {}),
        accessor: created.accessor,
        leaseDuration: created.leaseDuration,
        expiresAt,
      }
    },

    async revokeFor(filterIn, reason) {
      const f = revokeFilterSchema.safeParse(filterIn)
      if (!f.success) throw new KeywardError('ERR_BAD_REQUEST', 'revoke filter needs exactly one of jkt, jti, referenceId, policy')
      const leases = await deps.store.listLiveVaultLeases(f.data)
      const out: RevokeOutcome = { revoked: [], failed: [] }
      for (const lease of leases) {
        const detail = { accessor: lease.accessor, jti: lease.jti, role: lease.role, policy: lease.policy, reason, filter: f.data }
        let gone = false
        try {
          await deps.client.revokeAccessor(lease.accessor)
        } catch (e) {
          // 400 "invalid accessor": the token already expired or was revoked in Vault.
          if (isKeywardError(e) && e.code === 'ERR_VAULT_ERROR' && e.detail?.status === 400) gone = true
          else {
            out.failed.push({ accessor: lease.accessor, code: codeOf(e) })
            await deps.audit({ type: 'vault.token.revoke', subject: lease.jkt, decision: 'info', detail: { ...detail, outcome: 'failed', code: codeOf(e) } })
            continue
          }
        }
        await deps.store.markVaultLeaseRevoked(lease.accessor, now())
        out.revoked.push(lease.accessor)
        await deps.audit({ type: 'vault.token.revoke', subject: lease.jkt, decision: 'info', detail: { ...detail, outcome: gone ? 'already-gone' : 'revoked' } })
      }
      return out
    },
  }
}
