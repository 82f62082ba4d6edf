// Runtime state (the host's exec allowlist, docs/allowlist-state.md) as facts for policy.
// TPM: the record log must replay to the quoted allowlist PCR. SNP and Nitro: the current
// record is bound through the binding digest only (the verifier already checked it).
import { KeywardError } from '../errors.js'
import type { VerifiedClaims } from '../verifiers/types.js'
import type { AllowlistFacts } from './deps.js'
import { replayAllowlistLog, allowlistFacts } from '../policy/allowlist-state.js'

export function allowlistFactsFor(claims: VerifiedClaims, records: Uint8Array[], pcr: number): AllowlistFacts {
  if (claims.tee !== 'tpm') return allowlistFacts(records[records.length - 1]!)
  const pcrs = (claims.details as { pcrs?: Record<string, Record<string, string>> }).pcrs
  const quoted = pcrs?.sha256?.[String(pcr)]
  if (!quoted) {
    throw new KeywardError('ERR_ALLOWLIST_REPLAY', `the quote does not cover the allowlist PCR ${pcr} in the sha256 bank`)
  }
  return replayAllowlistLog(records, quoted)
}
