// The SEV-SNP verifier: decode.ts (wire evidence → parsed report, certificates located as DER),
// verify.ts (signature, chain, TCB, CHIP_ID, binding, floors → claims; the order is there).
// Layers below: layout.ts, parse.ts, certs.ts, crl.ts, kds.ts (VCEK cache), roots/.
import type { SevSnpClaims } from '../../protocol/claims.js'
import type { Verifier } from '../types.js'
import { decodeSnpEvidence, type SnpEvidence } from './decode.js'
import { createKdsCache } from './kds.js'
import { verifySnpEvidence, type SevSnpVerifierOptions } from './verify.js'

/** A verifier over pinned AMD roots; the KDS cache, when configured, is opened once here. */
export function createSevSnpVerifier(options: SevSnpVerifierOptions = {}): Verifier<SnpEvidence, SevSnpClaims> {
  const dir = options.kdsDir ?? options.certCacheDir
  const kds = options.kds ?? (dir ? createKdsCache({ dir, ...(options.kdsFetch ? { fetch: options.kdsFetch } : {}) }) : undefined)
  const opts: SevSnpVerifierOptions = kds ? { ...options, kds } : options
  return { tee: 'sev-snp', decode: decodeSnpEvidence, verify: (ev, ctx) => verifySnpEvidence(ev, ctx, opts) }
}

export type { SevSnpVerifierOptions } from './verify.js'
export { decodeSnpEvidence } from './decode.js'
export type { SnpEvidence } from './decode.js'
export { parseAttestationReport, signedBytes } from './parse.js'
export type { AttestationReport, TcbVersion } from './parse.js'
export { createKdsCache } from './kds.js'
export type { KdsCache, KdsFetch } from './kds.js'
