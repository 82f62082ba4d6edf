// The TPM 2.0 verifier: decode.ts (wire evidence → parsed quote, AK, PCRs, event log), verify.ts
// (quote, AK trust via ctx.resolveAk, event-log replay → claims). Layers below: layout.ts,
// parse.ts, eventlog.ts; make-credential.ts and ek.ts serve AK registration.
import type { TpmClaims } from '../../protocol/claims.js'
import type { Verifier } from '../types.js'
import { decodeTpmEvidence, type TpmEvidence } from './decode.js'
import { verifyTpmEvidence } from './verify.js'

/**
 * Nothing to configure: the AK registry (ctx.resolveAk) and the expected extraData come with each
 * verification, and a quote has no certificate chain (EK roots serve AK registration, ek.ts).
 */
export type TpmVerifierOptions = Record<string, never>

export function createTpmVerifier(_options: TpmVerifierOptions = {}): Verifier<TpmEvidence, TpmClaims> {
  return { tee: 'tpm', decode: decodeTpmEvidence, verify: verifyTpmEvidence }
}

export { decodeTpmEvidence } from './decode.js'
export type { TpmEvidence } from './decode.js'
export { parseTpmPublic, parseAkPublic, parseAttest, parseSignature, parsePcrsFile, publicKeyOf } from './parse.js'
export type { AkPublic, PcrSelection, PcrValues, TpmPublic, TpmsAttest, TpmtSignature } from './parse.js'
export { akName, verifyQuote, verifyTpmEvidence, checkAkAttributes, computePcrDigest } from './verify.js'
export type { ExpectedExtraData, VerifiedQuote } from './verify.js'
export { parseEventLog, replayEventLog, replayBank, extendReplay } from './eventlog.js'
export type { EventLog, TcgEvent, ReplayResult } from './eventlog.js'
export { extractFacts } from './eventlog-facts.js'
export type { EventLogFacts } from './eventlog-facts.js'
export { makeCredential, checkActivatedCredential, kdfa, kdfe } from './make-credential.js'
export type { MadeCredential } from './make-credential.js'
export { verifyEkCertificate, ekPublicFromCertificate } from './ek.js'
export type { EkCertificateInput, EkTrustOptions, VerifiedEk } from './ek.js'
