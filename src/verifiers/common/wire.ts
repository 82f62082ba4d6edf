// The one decoder of wire evidence (the `evidence` member of /v1/attest, docs/protocol.md): a zod
// shape whose binary fields are base64 strings, each bounded in length before it is decoded. Any
// failure is ERR_EVIDENCE_MALFORMED naming the TEE and the field, never a zod or Buffer error.
import { z } from 'zod'
import { EvidenceMalformedError } from '../../errors.js'
import type { Tee } from '../../protocol/tee.js'
import { fromB64 } from '../../util/bytes.js'

const NOT_BASE64 = 'not base64'
const PEM = '-----BEGIN'

/** Base64 text of at most `maxBytes` bytes, with padding, plus slack for line breaks. */
const maxChars = (maxBytes: number): number => Math.ceil(maxBytes / 3) * 4 + Math.ceil(maxBytes / 48) * 2

/**
 * A binary evidence field: base64 (RFC 4648 §4; ASCII whitespace, as in line-wrapped base64, is
 * ignored) of 1 to `maxBytes` bytes. With `pem`, a PEM text is passed on as its bytes for the
 * field's parser to read.
 */
export function b64Field(maxBytes: number, opts: { pem?: boolean } = {}) {
  return z
    .string()
    .max(maxChars(maxBytes))
    .transform((s, ctx): Uint8Array => {
      if (opts.pem && s.trimStart().startsWith(PEM)) return new TextEncoder().encode(s)
      const b = fromB64(s.replace(/\s+/g, ''))
      if (b === undefined || b.length === 0 || b.length > maxBytes) {
        ctx.addIssue({ code: 'custom', message: NOT_BASE64 })
        return z.NEVER
      }
      return b
    })
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('')
}

/**
 * Checks `wire` against `schema` (a strict object of b64Field and other members) and returns its
 * output, binary fields as bytes. `shape` describes the expected object for the error message.
 */
export function decodeWire<S extends z.ZodType>(tee: Tee, schema: S, shape: string, wire: unknown): z.output<S> {
  const r = schema.safeParse(wire)
  if (r.success) return r.data
  const bad = r.error.issues.find((i) => i.code === 'custom' && i.message === NOT_BASE64)
  if (bad) throw new EvidenceMalformedError(`${tee} evidence: ${fieldName(bad.path)} is not base64`)
  throw new EvidenceMalformedError(`${tee} evidence: expected ${shape}`, { detail: { issues: r.error.issues.length } })
}
