// The Nitro verifier: decode.ts (wire `{document: base64}` → parsed COSE_Sign1 and payload),
// verify.ts (signature, chain, binding → claims). Layers below: layout.ts (CDDL constants),
// parse.ts (structure). `keyward verify` reads raw documents with parseNitroDocument.
import type { NitroClaims } from '../../protocol/claims.js'
import type { Verifier } from '../types.js'
import { decodeNitroEvidence } from './decode.js'
import type { NitroEvidence } from './parse.js'
import { verifyNitroEvidence, type NitroDetails } from './verify.js'

/** Nothing to configure: the roots (default AWS Nitro Root G1) and the expected nonce and binding come with each verification. */
export type NitroVerifierOptions = Record<string, never>

export function createNitroVerifier(_options: NitroVerifierOptions = {}): Verifier<NitroEvidence, NitroClaims<NitroDetails>> {
  return { tee: 'nitro', decode: decodeNitroEvidence, verify: verifyNitroEvidence }
}

export type { NitroDetails }
export type { NitroEvidence, NitroDocument } from './parse.js'
export { decodeNitroEvidence } from './decode.js'
export { parseNitroDocument, readAttestationDocument, readCertificates, readSigningCertificate, readCaBundle } from './parse.js'
export { verifyNitroEvidence, verifyNitroSignature, verifyNitroChain, checkNitroBinding } from './verify.js'
export { AWS_NITRO_ROOT_G1, AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256 } from './roots/index.js'
