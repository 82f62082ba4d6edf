// What every decision reads: the active policies, the reference values and the quarantines,
// cached in this process under the store's decision-state version (migration 0007/0008: a
// trigger gives it a new random token in the same transaction as any change to those tables,
// whoever makes it). A decision reads the token, one single-row read, and the rows only when the
// token changed, so an applied policy, a revoked reference value or a quarantine still takes
// effect on the very next request on every replica. The change feed (src/store/changes.ts) is not
// enough for that: its NOTIFY reaches other processes some time after the commit.
// Order matters: the token is read before the rows, so rows are never older than their token.
import type { PolicyRow, QuarantineRow, ReferenceValueRow, Store } from '../store/types.js'
import { remember } from '../util/bounded-map.js'

/** One consistent view for one request: read once, used for its appraisal, grants and quarantine check. */
export interface DecisionState {
  policies: readonly PolicyRow[]
  referenceValues: readonly ReferenceValueRow[]
  /** The workload's quarantine, if any (looked up once per token and workload). */
  quarantine(workload: string): Promise<QuarantineRow | null>
}

/** Quarantine lookups kept per token: more workloads than this are looked up again. */
const MAX_QUARANTINE_LOOKUPS = 4096

export function createDecisionStateReader(store: Store): () => Promise<DecisionState> {
  const load = async (): Promise<DecisionState> => {
    const [policies, referenceValues] = await Promise.all([store.getActivePolicies(), store.listReferenceValues()])
    const quarantines = new Map<string, Promise<QuarantineRow | null>>()
    return {
      policies,
      referenceValues,
      quarantine(workload) {
        const hit = quarantines.get(workload)
        if (hit) return hit
        const p = store.getQuarantine(workload)
        p.catch(() => quarantines.delete(workload))
        return remember(quarantines, workload, p, MAX_QUARANTINE_LOOKUPS)
      },
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
