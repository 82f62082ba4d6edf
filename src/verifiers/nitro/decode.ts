// Wire evidence of a Nitro attestation (docs/protocol.md §nitro): `{document: base64}`, the
// COSE_Sign1 document as /dev/nsm returns it, parsed (parse.ts) but not verified.
import { z } from 'zod'
import { b64Field, decodeWire } from '../common/wire.js'
import { MAX_DOCUMENT_BYTES } from './layout.js'
import { parseNitroDocument, type NitroEvidence } from './parse.js'

const NitroWire = z.strictObject({ document: b64Field(MAX_DOCUMENT_BYTES) })

/** Decodes `{document}`; ERR_EVIDENCE_MALFORMED on a bad shape, base64 or envelope. */
export function decodeNitroEvidence(wire: unknown): NitroEvidence {
  return parseNitroDocument(decodeWire('nitro', NitroWire, '{"document": base64}', wire).document)
}
