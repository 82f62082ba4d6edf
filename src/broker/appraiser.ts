// Adapts the policy engine (src/policy) to the broker: active policies and reference values
// are read as they stand for every decision (src/broker/decision-state.ts checks the store's
// version token each time, so an applied policy or a revoked reference value takes effect on the
// next request, on every replica); compiled policies are cached by their source hash, so nothing
// is re-parsed on the hot path.
import { KeywardError } from '../errors.js'
import type { Store } from '../store/types.js'
import { compilePolicy, decide, emptyGrants, toPolicyClaims, type CompiledPolicy } from '../policy/engine.js'
import { activeRefs } from '../policy/reference-values.js'
import type { Appraiser, Appraisal } from './deps.js'
import { createDecisionStateReader } from './decision-state.js'

export function createAppraiser(store: Store): Appraiser {
  const state = createDecisionStateReader(store)
  const compiled = new Map<string, CompiledPolicy>()
  const compileCached = (sha: string, source: string): CompiledPolicy => {
    let p = compiled.get(sha)
    if (!p) {
      p = compilePolicy(source)
      if (compiled.size > 256) compiled.clear()
      compiled.set(sha, p)
    }
    return p
  }

  return {
    validate(source) {
      return { name: compilePolicy(source).name }
    },

    state,

    async appraise({ claims, allowlist, now }, given): Promise<Appraisal> {
      const s = given ?? (await state())
      const policies = s.policies.map((r) => ({ row: r, p: compileCached(r.sha256, r.source) }))
      const refRows = s.referenceValues
      const refs = activeRefs(refRows, now, claims.tee)
      const d = decide(
        policies.map((x) => x.p),
        { claims: toPolicyClaims(claims), refs: refs.refs, refIds: refs.byValue, ...(allowlist ? { allowlist } : {}), now },
      )
      // A token is issued under one policy (the first allowing one by name), whose grants it
      // carries and whose version the release path re-checks; other allowing policies are audited.
      const chosen = d.decisions.filter((x) => x.allow).sort((a, b) => a.policy.localeCompare(b.policy))[0]
      if (!d.allow || !chosen) {
        return { allow: false, policy: d.decisions.map((x) => x.policy).join(',') || '(none)', policyVersion: 0, failures: d.failures, grants: emptyGrants(), referenceIds: [], referenceValues: [] }
      }
      const row = policies.find((x) => x.p.name === chosen.policy)!.row
      const referenceValues = refRows.filter((r) => chosen.referenceIds.includes(r.id)).map((r) => r.value)
      return { allow: true, policy: chosen.policy, policyVersion: row.version, failures: [], grants: chosen.grants, referenceIds: chosen.referenceIds, referenceValues }
    },

    async containmentFor(policy) {
      const row = (await state()).policies.find((r) => r.name === policy)
      if (!row) return []
      try {
        return [...compileCached(row.sha256, row.source).containment]
      } catch (e) {
        throw new KeywardError('ERR_INTERNAL', 'stored policy no longer compiles', { cause: e })
      }
    },
    async grantsFor(policy, version, given) {
      const row = (given ?? (await state())).policies.find((r) => r.name === policy)
      // A changed policy invalidates what its older versions granted: re-attest under the new one.
      if (!row || row.version !== version) return null
      try {
        return compileCached(row.sha256, row.source).grants
      } catch (e) {
        throw new KeywardError('ERR_INTERNAL', 'stored policy no longer compiles', { cause: e })
      }
    },
  }
}
