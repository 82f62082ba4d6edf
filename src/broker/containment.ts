// Drift alerts and containment (docs/policy.md §Containment, docs/operations.md §Alerts).
// recordWorkload (src/broker/attest.ts) calls onWorkloadDecision after each appraised
// attestation. A workload that was allowed and is now denied has drifted: the broker raises
// `drift` and `denial-after-allow` and runs the containment actions of the policy that admitted
// it (its baseline's policy), each audited. A workload still allowed whose measured items changed
// raises `drift` only: the policy still admits it (a rolled-out update), so nothing is contained.
import { KeywardError } from '../errors.js'
import type { WorkloadRow } from '../store/types.js'
import type { BrokerDeps } from './deps.js'
import { emitAlert } from './alerts.js'
import type { MeasuredItems } from './measured-items.js'
import type { DecisionState } from './decision-state.js'

export interface WorkloadDecision {
  workload: string
  tee: string
  decision: 'allow' | 'deny'
  policy?: string | undefined
  items?: MeasuredItems | undefined
  failures?: unknown
}

export async function onWorkloadDecision(deps: BrokerDeps, prev: WorkloadRow | null, d: WorkloadDecision): Promise<void> {
  if (!prev?.baseline) return
  const baseline = JSON.parse(prev.baseline) as { policy?: string | null; items?: MeasuredItems }
  if (d.decision === 'deny' && prev.lastDecision === 'allow') {
    const failed = Array.isArray(d.failures) ? (d.failures as { condition?: unknown }[]).map((f) => f.condition).filter((c) => typeof c === 'string') : []
    const detail = { tee: d.tee, reason: 'denied after allow', admittedBy: baseline.policy ?? null, failedConditions: failed }
    await emitAlert(deps, { type: 'denial-after-allow', workload: d.workload, detail })
    await emitAlert(deps, { type: 'drift', workload: d.workload, detail })
    if (baseline.policy) await contain(deps, d.workload, baseline.policy)
    return
  }
  if (d.decision === 'allow' && d.items && JSON.stringify(d.items) !== JSON.stringify(baseline.items ?? {})) {
    await emitAlert(deps, { type: 'drift', workload: d.workload, detail: { tee: d.tee, reason: 'measurements changed', policy: d.policy ?? null, changed: changedItems(baseline.items ?? {}, d.items) } })
  }
}

function changedItems(a: MeasuredItems, b: MeasuredItems): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  return [...keys].filter((k) => JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify((b as Record<string, unknown>)[k])).sort()
}

/** Runs the containment actions `policy` declares against `workload`, auditing each. */
export async function contain(deps: BrokerDeps, workload: string, policy: string): Promise<void> {
  const actions = await deps.appraiser.containmentFor(policy)
  if (actions.length === 0) return
  const at = deps.clock().getTime()
  const reason = `drift: denied after policy ${policy} admitted it`
  for (const action of actions) {
    let detail: Record<string, unknown>
    if (action === 'quarantine') {
      detail = { quarantined: await deps.store.quarantineWorkload({ workload, at, reason }) }
    } else if (action === 'revoke-tokens') {
      detail = { attestations: (await deps.store.revokeAttestationsByWorkload(workload, at)).length }
    } else {
      detail = await revokeWorkloadLeases(deps, workload)
    }
    await deps.audit({ type: `containment.${action}`, subject: workload, decision: 'info', detail: { policy, reason, ...detail } })
  }
  await emitAlert(deps, { type: 'containment', workload, detail: { policy, actions } })
}

/** Revokes the live Vault leases minted for any attestation of the workload. */
async function revokeWorkloadLeases(deps: BrokerDeps, workload: string): Promise<Record<string, unknown>> {
  if (!deps.vault) return { vaultTokens: 0, note: 'no Vault configured' }
  const jtis = new Set<string>()
  for (const lease of await deps.store.listLiveVaultLeases({})) {
    if (!jtis.has(lease.jti) && (await deps.store.getAttestation(lease.jti))?.workload === workload) jtis.add(lease.jti)
  }
  let n = 0
  try {
    for (const jti of jtis) n += await deps.vault.revokeFor({ jti }, 'containment: workload drifted')
  } catch (err) {
    deps.logger.warn({ err: String(err) }, 'containment: Vault revocation failed')
    return { vaultTokens: n, error: 'Vault revocation failed; remaining leases stay live' }
  }
  return { vaultTokens: n }
}

/** Refuses a quarantined workload (attestation results and releases), as `state` (the request's one read) records it. */
export async function assertNotQuarantined(state: DecisionState, workload: string, detail: Record<string, unknown> = {}): Promise<void> {
  const q = await state.quarantine(workload)
  if (q) throw new KeywardError('ERR_QUARANTINED', 'this workload is quarantined after drift until an administrator releases it', { detail: { workload, ...detail } })
}

/** Clears a quarantine (admin: `keyward workload release NAME`, POST /v1/admin/workloads/:name/release-quarantine). */
export async function releaseQuarantine(deps: Pick<BrokerDeps, 'store' | 'audit'>, workload: string, by: string): Promise<void> {
  if (!(await deps.store.clearQuarantine(workload))) throw new KeywardError('ERR_NOT_FOUND', `workload ${workload} is not quarantined`)
  await deps.audit({ type: 'quarantine.release', subject: workload, decision: 'info', detail: { by } })
}
