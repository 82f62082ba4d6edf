// The TPM 2.0 verifier: decode the wire evidence (docs/protocol.md `tpm`), verify the quote,
// check that the AK is trusted (ctx.resolveAk), replay the event log, and return claims.
import { z } from 'zod'
import { EvidenceMalformedError, KeywardError } from '../../errors.js'
import { fromB64, toHex, type HashName } from '../../util/bytes.js'
import type { Verifier, VerifyContext } from '../types.js'
import type { JsonObject, VerifiedClaims } from '../../protocol/claims.js'
import { parseEventLog, replayEventLog, type EventLog } from './eventlog.js'
import { extractFacts } from './eventlog-facts.js'
import {
  attributeNames,
  parseAkPublic,
  parseAttest,
  parsePcrsFile,
  parseSignature,
  type AkPublic,
  type PcrValues,
  type TpmsAttest,
  type TpmtSignature,
} from './parse.js'
import { verifyQuote, type ExpectedExtraData } from './verify.js'

export interface TpmEvidence {
  ak: AkPublic
  attest: TpmsAttest
  signature: TpmtSignature
  pcrs: PcrValues
  eventLog?: EventLog
}

const MAX_B64 = 4 * 1024 * 1024
const b64 = z.string().max(MAX_B64)
const EvidenceSchema = z.strictObject({
  ak: b64,
  quote: b64,
  signature: b64,
  pcrs: b64,
  eventLog: b64.optional(),
})

function bytesOf(s: string, field: string): Uint8Array {
  const b = fromB64(s.replace(/\s+/g, ''))
  if (!b || b.length === 0) throw new EvidenceMalformedError(`tpm evidence: ${field} is not base64`)
  return b
}

/** Decodes `{ak, quote, signature, pcrs, eventLog?}` (base64; `ak` may also be a PEM string). */
export function decodeTpmEvidence(evidence: unknown): TpmEvidence {
  const r = EvidenceSchema.safeParse(evidence)
  if (!r.success) throw new EvidenceMalformedError('tpm evidence: expected {ak, quote, signature, pcrs, eventLog?} strings', { detail: { issues: r.error.issues.length } })
  const e = r.data
  const akBytes = e.ak.trimStart().startsWith('-----BEGIN') ? new TextEncoder().encode(e.ak) : bytesOf(e.ak, 'ak')
  const out: TpmEvidence = {
    ak: parseAkPublic(akBytes),
    attest: parseAttest(bytesOf(e.quote, 'quote')),
    signature: parseSignature(bytesOf(e.signature, 'signature')),
    pcrs: parsePcrsFile(bytesOf(e.pcrs, 'pcrs')),
  }
  if (e.eventLog !== undefined) out.eventLog = parseEventLog(bytesOf(e.eventLog, 'eventLog'))
  return out
}

function pcrsJson(banks: PcrValues['banks']): JsonObject {
  const out: JsonObject = {}
  for (const [bank, m] of Object.entries(banks) as [HashName, Map<number, Uint8Array>][]) {
    out[bank] = Object.fromEntries([...m].map(([i, v]) => [String(i), toHex(v)]))
  }
  return out
}

export interface TpmVerifyOptions {
  /** What extraData must equal; omitted: not checked (offline check without --nonce). */
  expected?: ExpectedExtraData
  /** Resolves the AK by TPM name; omitted: AK trust is not checked (offline CLI, explicit AK). */
  resolveAk?: VerifyContext['resolveAk']
}

/**
 * Verifies TPM evidence: quote (signature, AK attributes, extraData, pcrDigest), then AK trust
 * via `resolveAk` (an AK given only as SPKI has no TPM name and cannot be resolved), then the
 * event log against the quoted PCRs. Does not check the TPM clock (it is not wall time).
 */
export async function verifyTpmEvidence(e: TpmEvidence, opts: TpmVerifyOptions): Promise<VerifiedClaims> {
  const q = verifyQuote({ ak: e.ak, attest: e.attest, signature: e.signature, pcrs: e.pcrs }, opts.expected)
  let akTrust: JsonObject | null = null
  if (opts.resolveAk) {
    if (q.akName === null) throw new KeywardError('ERR_AK_UNTRUSTED', 'AK given without its TPM public area cannot be resolved')
    const t = await opts.resolveAk(q.akName)
    if (!t || t.revoked) {
      throw new KeywardError('ERR_AK_UNTRUSTED', t ? 'attestation key is revoked' : 'attestation key is not registered', { detail: { akName: q.akName } })
    }
    akTrust = { via: t.via, workload: t.workload }
  }
  const a = q.attest
  const details: JsonObject = {
    akName: q.akName,
    akAttributesVerified: q.akAttributesVerified,
    akAttributes: e.ak.public ? attributeNames(e.ak.public.attributes) : null,
    akTrust,
    sigScheme: `${e.signature.sigAlg}-${e.signature.hash}`,
    pcrs: pcrsJson(q.pcrs),
    clock: a.clock.toString(),
    resetCount: a.resetCount,
    restartCount: a.restartCount,
    safe: a.safe,
    firmwareVersion: a.firmwareVersion.toString(16).padStart(16, '0'),
    qualifiedSigner: toHex(a.qualifiedSigner),
  }
  if (e.eventLog) {
    const replay = replayEventLog(e.eventLog, q.pcrs)
    details.eventLog = extractFacts(e.eventLog, replay)
  }
  return {
    tee: 'tpm',
    measurement: toHex(a.pcrDigest),
    debug: false,
    issuedAt: null,
    bindingData: a.extraData,
    nonce: null,
    publicKey: null,
    details,
  }
}

export const tpmVerifier: Verifier<TpmEvidence> = {
  tee: 'tpm',
  decode: decodeTpmEvidence,
  verify(evidence: TpmEvidence, ctx: VerifyContext): Promise<VerifiedClaims> {
    const opts: TpmVerifyOptions = {}
    if (ctx.expectedBinding) opts.expected = { value: ctx.expectedBinding, code: 'ERR_BINDING_MISMATCH' }
    if (ctx.resolveAk) opts.resolveAk = ctx.resolveAk
    return verifyTpmEvidence(evidence, opts)
  },
}

export { parseTpmPublic, parseAkPublic, parseAttest, parseSignature, parsePcrsFile, publicKeyOf } from './parse.js'
export type { AkPublic, PcrSelection, PcrValues, TpmPublic, TpmsAttest, TpmtSignature } from './parse.js'
export { akName, verifyQuote, checkAkAttributes, computePcrDigest } from './verify.js'
export type { ExpectedExtraData, VerifiedQuote } from './verify.js'
export { parseEventLog, replayEventLog, replayBank, extendReplay } from './eventlog.js'
export type { EventLog, TcgEvent, ReplayResult } from './eventlog.js'
export { extractFacts } from './eventlog-facts.js'
export type { EventLogFacts } from './eventlog-facts.js'
export { makeCredential, checkActivatedCredential, kdfa, kdfe } from './make-credential.js'
export type { MadeCredential } from './make-credential.js'
export { verifyEkCertificate, ekPublicFromCertificate } from './ek.js'
export type { EkCertificateInput, EkTrustOptions, VerifiedEk } from './ek.js'
