// Strict CBOR (RFC 8949) decoding for evidence, on top of cborg. Evidence is attacker-supplied,
// so the decoder accepts one encoding per value where it can:
// - minimal-length integers and lengths (RFC 8949 §4.2.1 "preferred serialization"; cborg strict),
// - definite lengths only (§3.2.2 indefinite items are rejected), except maps where a caller
//   opts in: the Nitro Secure Module emits its payload as an indefinite-length map since 2025,
// - no duplicate map keys (§5.6), map keys restricted to integers and text strings,
// - no `undefined`, NaN or Infinity, no tags (callers strip the one tag they expect),
// - no trailing bytes after the top-level item.
// Every failure is an EvidenceMalformedError; nothing else escapes (stack overflows from deeply
// nested input included).
import { decode, Tokenizer, Type, encode, type Token } from 'cborg'
import { EvidenceMalformedError } from './errors.js'

export type CborKey = number | bigint | string
export type CborMap = Map<CborKey, CborValue>
export type CborValue = number | bigint | string | boolean | null | Uint8Array | CborValue[] | CborMap

export interface StrictCborOptions {
  /** Name of the structure, used in error messages. */
  what?: string
  /** Accept indefinite-length maps (RFC 8949 §3.2.2). Arrays and strings stay definite. */
  allowIndefiniteMaps?: boolean
  /** Largest input accepted, bytes (default 1 MiB). */
  maxBytes?: number
}

// Rejects what cborg's options cannot express per container kind: indefinite arrays while
// indefinite maps are allowed.
class StrictTokenizer extends Tokenizer {
  override next(): Token {
    const t = super.next()
    if (t.value === Infinity && t.type === Type.array) {
      throw new Error('indefinite-length array not allowed')
    }
    return t
  }
}

/** Decodes exactly one strict CBOR item from `bytes`; see the module comment for the rules. */
export function decodeCborStrict(bytes: Uint8Array, opts: StrictCborOptions = {}): CborValue {
  const what = opts.what ?? 'CBOR'
  if (bytes.length > (opts.maxBytes ?? 1 << 20)) throw new EvidenceMalformedError(`${what}: too large (${bytes.length} bytes)`)
  const allowIndefinite = opts.allowIndefiniteMaps === true
  const options = {
    strict: true,
    allowIndefinite,
    allowUndefined: false,
    allowNaN: false,
    allowInfinity: false,
    allowBigInt: true,
    useMaps: true,
    rejectDuplicateMapKeys: true,
    tags: [],
  }
  let value: unknown
  try {
    const tokenizer = allowIndefinite ? new StrictTokenizer(bytes, options) : undefined
    value = decode(bytes, tokenizer ? { ...options, tokenizer } : options)
  } catch (e) {
    throw new EvidenceMalformedError(`${what}: malformed CBOR (${e instanceof Error ? e.message.replace(/^CBOR decode error: /, '') : 'error'})`, { cause: e })
  }
  checkValues(value, what)
  return value as CborValue
}

// cborg's duplicate check compares keys with Map#has, which is only sound for primitives:
// restrict keys to integers and text (all COSE labels and Nitro fields are one of these).
// With indefinite lengths enabled, cborg stores a stray break (0xff) in a map value position as a
// Symbol instead of failing (`a1 01 ff` decodes to {1: BREAK}): reject any non-CBOR value.
function checkValues(v: unknown, what: string): void {
  if (v instanceof Map) {
    for (const [k, x] of v) {
      if (typeof k !== 'string' && typeof k !== 'bigint' && !(typeof k === 'number' && Number.isInteger(k))) {
        throw new EvidenceMalformedError(`${what}: map key of unsupported type`)
      }
      checkValues(x, what)
    }
  } else if (Array.isArray(v)) {
    for (const x of v) checkValues(x, what)
  } else if (typeof v === 'symbol' || v === undefined) {
    throw new EvidenceMalformedError(`${what}: malformed CBOR (misplaced break)`)
  }
}

/** Deterministic encoding (RFC 8949 §4.2.1) of a value built by keyward, e.g. a COSE Sig_structure. */
export function encodeCbor(value: CborValue): Uint8Array {
  return encode(value)
}

export function isCborMap(v: CborValue | undefined): v is CborMap {
  return v instanceof Map
}

export function isBytes(v: CborValue | undefined): v is Uint8Array {
  return v instanceof Uint8Array
}

/** A JSON-safe description of a CBOR value's type, for error messages. */
export function cborTypeName(v: CborValue | undefined): string {
  if (v === undefined) return 'absent'
  if (v === null) return 'null'
  if (v instanceof Uint8Array) return 'bytes'
  if (v instanceof Map) return 'map'
  if (Array.isArray(v)) return 'array'
  return typeof v
}
