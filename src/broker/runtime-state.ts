// Runtime state (the host's exec allowlist, docs/allowlist-state.md) as facts for policy.
// TPM: the boot records must replay to the quoted allowlist PCR and the statement must be signed
// by the key of the pre-separator load record. SNP and Nitro have no PCR the agent can write
// before the workload, so their allowlist state is refused rather than taken on the workload's word.
import { KeywardError } from '../errors.js'
import type { VerifiedClaims } from '../protocol/claims.js'
import type { AllowlistFacts } from './deps.js'
import { judgeAllowlistState, type AllowlistEvidence } from '../policy/allowlist-state.js'

export function allowlistFactsFor(claims: VerifiedClaims, ev: AllowlistEvidence, pcr: number, binding: { nonce: Uint8Array; jkt: Uint8Array }): AllowlistFacts {
  if (claims.tee !== 'tpm') {
    throw new KeywardError('ERR_ALLOWLIST_UNATTESTED', `exec-allowlist state cannot be attested on ${claims.tee}: no register the agent writes before the workload`)
  }
  const quoted = claims.pcrs.sha256?.get(pcr)
  if (!quoted) {
    throw new KeywardError('ERR_ALLOWLIST_REPLAY', `the quote does not cover the allowlist PCR ${pcr} in the sha256 bank`)
  }
  return judgeAllowlistState(ev, quoted, binding)
}
