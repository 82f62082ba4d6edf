// Test-only in-memory implementation of the three Store methods the lease manager uses.
// The real stores (SQLite, PostgreSQL) live in src/store and are tested there.
import type { VaultLeaseRow } from '../../src/store/types.js'
import type { LeaseStore } from '../../src/vault/leases.js'

export interface MemoryLeaseStore extends LeaseStore {
  rows: VaultLeaseRow[]
  failInsert: boolean
}

export function createMemoryLeaseStore(): MemoryLeaseStore {
  const s: MemoryLeaseStore = {
    rows: [],
    failInsert: false,
    async insertVaultLease(row) {
      if (s.failInsert) throw new Error('disk full')
      if (s.rows.some((r) => r.accessor === row.accessor)) throw new Error('duplicate accessor')
      s.rows.push({ ...row })
    },
    async listLiveVaultLeases(f) {
      return s.rows
        .filter((r) => r.revokedAt === null)
        .filter((r) => (f.jkt === undefined || r.jkt === f.jkt) && (f.policy === undefined || r.policy === f.policy))
        .filter((r) => f.referenceId === undefined || (JSON.parse(r.referenceIds) as string[]).includes(f.referenceId))
        .map((r) => ({ ...r }))
    },
    async markVaultLeaseRevoked(accessor, at) {
      const r = s.rows.find((x) => x.accessor === accessor)
      if (r && r.revokedAt === null) r.revokedAt = at
    },
  }
  return s
}
