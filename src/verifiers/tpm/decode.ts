// Wire evidence of a TPM attestation (docs/protocol.md §tpm): `{ak, quote, signature, pcrs,
// eventLog?}`, base64 (the AK may also be PEM), parsed into structures; nothing is verified here.
import { z } from 'zod'
import { b64Field, decodeWire } from '../common/wire.js'
import { parseEventLog, type EventLog } from './eventlog.js'
import { parseAkPublic, parseAttest, parsePcrsFile, parseSignature, type AkPublic, type PcrValues, type TpmsAttest, type TpmtSignature } from './parse.js'

export interface TpmEvidence {
  ak: AkPublic
  attest: TpmsAttest
  signature: TpmtSignature
  pcrs: PcrValues
  eventLog?: EventLog
}

const MAX_FIELD_BYTES = 3 * 1024 * 1024
const field = b64Field(MAX_FIELD_BYTES)
const TpmWire = z.strictObject({
  ak: b64Field(MAX_FIELD_BYTES, { pem: true }),
  quote: field,
  signature: field,
  pcrs: field,
  eventLog: field.optional(),
})

/** Decodes `{ak, quote, signature, pcrs, eventLog?}`; ERR_EVIDENCE_MALFORMED on any bad field. */
export function decodeTpmEvidence(wire: unknown): TpmEvidence {
  const e = decodeWire('tpm', TpmWire, '{ak, quote, signature, pcrs, eventLog?} strings', wire)
  const out: TpmEvidence = { ak: parseAkPublic(e.ak), attest: parseAttest(e.quote), signature: parseSignature(e.signature), pcrs: parsePcrsFile(e.pcrs) }
  if (e.eventLog !== undefined) out.eventLog = parseEventLog(e.eventLog)
  return out
}
