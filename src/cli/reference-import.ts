// `keyward reference import --format tpm-eventlog`: golden PCR values replayed from a TCG event
// log. It parses evidence with the TPM verifier's parser, so it lives with the CLI, not in policy.
import type { ReferenceValueRow } from '../store/types.js'
import { referenceRow, tpmPcrSet, type ImportOptions } from '../policy/reference-values.js'
import { toHex, type HashName } from '../util/bytes.js'
import { parseEventLog, replayBank } from '../verifiers/tpm/eventlog.js'

/**
 * Golden PCR values computed by replaying a TCG event log (the TPM verifier's parser and replay),
 * one row per extended PCR of each bank the log carries, limited to `indices` when given.
 */
export function importTpmEventLog(bytes: Uint8Array, o: ImportOptions & { indices?: number[]; banks?: HashName[]; setPrefix?: string }): ReferenceValueRow[] {
  const log = parseEventLog(bytes)
  const out: ReferenceValueRow[] = []
  for (const bank of log.banks) {
    if (o.banks && !o.banks.includes(bank)) continue
    for (const [i, v] of replayBank(log, bank)) {
      if (o.indices && !o.indices.includes(i)) continue
      out.push(referenceRow(tpmPcrSet(bank, i, o.setPrefix), 'tpm', toHex(v), 'tcg-event-log', o))
    }
  }
  return out
}
