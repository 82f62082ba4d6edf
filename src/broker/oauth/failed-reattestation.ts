// A key that fails re-attestation loses the attestations it holds, so no further access token,
// Client Attestation, secret or tool credential is issued on them (docs/agents.md, threat model).
// Only on the key holder's own say, as for its Vault leases: the attest request proved possession
// of the key (a DPoP proof) and the denied evidence verified as the same workload the live
// attestations were admitted as. Anyone may bind other evidence to a public key; that revokes nothing.
import type { BrokerDeps } from '../deps.js'

export async function revokeKeyOnFailedReattestation(deps: BrokerDeps, a: { jkt: string; workload: string; possession: boolean; reqId: string }): Promise<void> {
  if (!a.possession) return
  const revoked = await deps.store.revokeAttestationsByKey(a.jkt, a.workload, deps.clock().getTime())
  if (revoked.length === 0) return
  await deps.audit({
    type: 'attestation.revoke',
    subject: a.jkt,
    decision: 'allow',
    detail: { reqId: a.reqId, reason: 'failed re-attestation', workload: a.workload, attestations: revoked.map((r) => r.jti) },
  })
}
