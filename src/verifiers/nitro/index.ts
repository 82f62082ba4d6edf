// The Nitro verifier: wire evidence `{document: base64}` (docs/protocol.md §nitro) → parsed
// document → verified claims. Layers: layout.ts (CDDL constants), parse.ts (structure),
// verify.ts (signature, chain, binding).
import { z } from 'zod'
import { EvidenceMalformedError } from '../../errors.js'
import { fromB64 } from '../../util/bytes.js'
import type { Verifier } from '../types.js'
import { MAX_DOCUMENT_BYTES } from './layout.js'
import { parseNitroDocument, type NitroEvidence } from './parse.js'
import { verifyNitroEvidence } from './verify.js'

export type { NitroEvidence, NitroDocument } from './parse.js'
export type { NitroDetails } from './verify.js'
export { parseNitroDocument, readAttestationDocument, readCertificates, readSigningCertificate, readCaBundle } from './parse.js'
export { verifyNitroEvidence, verifyNitroSignature, verifyNitroChain, checkNitroBinding } from './verify.js'
export { AWS_NITRO_ROOT_G1, AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256 } from './roots/index.js'

// base64 of MAX_DOCUMENT_BYTES, rounded up, with padding.
const NitroWire = z.object({ document: z.string().min(1).max(Math.ceil(MAX_DOCUMENT_BYTES / 3) * 4) }).strict()

export const nitroVerifier: Verifier<NitroEvidence> & { parse(bytes: Uint8Array): NitroEvidence } = {
  tee: 'nitro',
  decode(evidence: unknown): NitroEvidence {
    const r = NitroWire.safeParse(evidence)
    if (!r.success) throw new EvidenceMalformedError('nitro evidence: expected {"document": base64}')
    const bytes = fromB64(r.data.document)
    if (bytes === undefined) throw new EvidenceMalformedError('nitro evidence: document is not base64')
    return parseNitroDocument(bytes)
  },
  parse: parseNitroDocument,
  verify: verifyNitroEvidence,
}
