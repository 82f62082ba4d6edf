// What every decision reads: the active policies, the reference values, the quarantines and, for
// TPM evidence, the AK rows and EK list entries, cached in this process under the store's
// decision-state version (SQLite migrations 0007 and 0008, PostgreSQL 0008 and 0010: a trigger
// gives it a new random token in the same transaction as any change to those tables, whoever
// makes it). A decision reads the token, one single-row read, and the rows only when the
// token changed, so an applied policy, a revoked reference value or AK, a quarantine or an EK
// denial still takes effect on the very next request on every replica. The change feed (src/store/changes.ts) is not
// enough for that: its NOTIFY reaches other processes some time after the commit.
// Order matters: the token is read before the rows, so rows are never older than their token.
import type { AkRow, EkListRow, PolicyRow, QuarantineRow, ReferenceValueRow, Store } from '../store/types.js'
import { remember } from '../util/bounded-map.js'

/** One consistent view for one request: read once, used for its appraisal, grants and quarantine check. */
export interface DecisionState {
  policies: readonly PolicyRow[]
  referenceValues: readonly ReferenceValueRow[]
  /** The workload's quarantine, if any (looked up once per token and workload). */
  quarantine(workload: string): Promise<QuarantineRow | null>
  /** A TPM attestation key's row, if registered (looked up once per token and name). */
  ak(name: string): Promise<AkRow | null>
  /** The EK list entries for any of these EK digests (looked up once per token and set of digests). */
  listEkEntries(eks: string[]): Promise<EkListRow[]>
}

/** Lookups of each kind kept per token: more keys than this are looked up again. */
const MAX_LOOKUPS = 4096

/** One lookup per key while the token holds; a failed lookup is not kept, the next request reads again. */
function lookups<T>(read: (key: string) => Promise<T>): (key: string) => Promise<T> {
  const seen = new Map<string, Promise<T>>()
  return (key) => {
    const hit = seen.get(key)
    if (hit) return hit
    const p = read(key)
    p.catch(() => seen.delete(key))
    return remember(seen, key, p, MAX_LOOKUPS)
  }
}

export function createDecisionStateReader(store: Store): () => Promise<DecisionState> {
  const load = async (): Promise<DecisionState> => {
    const [policies, referenceValues] = await Promise.all([store.getActivePolicies(), store.listReferenceValues()])
    const ekEntries = lookups((key) => store.listEkEntries(key.split('\n')))
    return {
      policies,
      referenceValues,
      quarantine: lookups((workload) => store.getQuarantine(workload)),
      ak: lookups((name) => store.getAk(name)),
      listEkEntries: (eks) => ekEntries([...eks].sort().join('\n')),
    }
  }
  let cached: { token: string; state: Promise<DecisionState> } | undefined
  return async () => {
    const token = await store.decisionStateVersion()
    if (token === null) return load()
    if (cached?.token !== token) {
      const state = load()
      cached = { token, state }
      // A failed read is not kept: the next request reads again.
      state.catch(() => {
        if (cached?.state === state) cached = undefined
      })
    }
    return cached.state
  }
}
