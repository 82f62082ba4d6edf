// The exec-allowlist state, exactly as in docs/allowlist-state.md (the C agent in
// enclave-client/ebpf implements the same document): the boot-time records the agent extends
// into the allowlist PCR (one LOAD record carrying the agent's public key, then one SEPARATOR),
// and the fresh STATEMENT the agent signs with that key for each attestation.
import { KeywardError, EvidenceMalformedError } from './errors.js'
import { ByteReader, requireZero } from './reader.js'
import { constantTimeEqual, fromHex, sha256, toHex } from '../util/bytes.js'

/** Default PCR the agent extends records into (docs/policy.md §Allowlist PCR). */
export const DEFAULT_ALLOWLIST_PCR = 15
/** Only a load record and a separator are valid; a few more are accepted to name what follows. */
export const MAX_ALLOWLIST_RECORDS = 64

export type AllowlistMode = 'enforce' | 'audit'
/** A record's mode: the agent's `unload` measures mode 0 before it removes anything. */
export type AllowlistRecordMode = AllowlistMode | 'unloaded'
const MODE_CODE: Record<AllowlistRecordMode, number> = { enforce: 1, audit: 2, unloaded: 0 }
const U64_MAX = (1n << 64n) - 1n
const enc = new TextEncoder()

export const RECORD_LABEL = 'keyward-allowlist-v2'
const RECORD_LABEL_BYTES = enc.encode(RECORD_LABEL)
/** docs/allowlist-state.md §Records: offsets and sizes (136 bytes). */
export const RECORD_LAYOUT = {
  label: { offset: 0, size: 20 },
  zero: { offset: 20, size: 1 },
  kind: { offset: 21, size: 1 },
  allowlistDigest: { offset: 22, size: 32 },
  mode: { offset: 54, size: 1 },
  progTag: { offset: 55, size: 8 },
  loadTime: { offset: 63, size: 8 },
  agentKey: { offset: 71, size: 65 },
} as const
export const ALLOWLIST_RECORD_SIZE = 136
export const RECORD_KIND = { load: 1, separator: 2 } as const

export const STATEMENT_LABEL = 'keyward-allowlist-statement-v2'
const STATEMENT_LABEL_BYTES = enc.encode(STATEMENT_LABEL)
/** docs/allowlist-state.md §Statement: offsets and sizes (240 bytes; the signature covers 0..175). */
export const STATEMENT_LAYOUT = {
  label: { offset: 0, size: 30 },
  zero: { offset: 30, size: 1 },
  nonce: { offset: 31, size: 32 },
  jkt: { offset: 63, size: 32 },
  allowlistDigest: { offset: 95, size: 32 },
  mode: { offset: 127, size: 1 },
  progTag: { offset: 128, size: 8 },
  loadTime: { offset: 136, size: 8 },
  denials: { offset: 144, size: 8 },
  cgroupId: { offset: 152, size: 8 },
  cgroupDenials: { offset: 160, size: 8 },
  linkId: { offset: 168, size: 4 },
  progId: { offset: 172, size: 4 },
  signature: { offset: 176, size: 64 },
} as const
export const STATEMENT_SIZE = 240
const SIGNED_SIZE = STATEMENT_LAYOUT.signature.offset
/** cgroup_denials when the agent cannot count per cgroup. */
export const CGROUP_DENIALS_UNKNOWN = U64_MAX

/** The agent's program as measured at load. */
export interface LoadRecord {
  kind: 'load'
  allowlistDigest: Uint8Array
  mode: AllowlistRecordMode
  progTag: Uint8Array
  loadTime: bigint
  /** SEC1 uncompressed P-256 point (65 bytes) of the agent's statement key. */
  agentKey: Uint8Array
}
export type AllowlistRecord = LoadRecord | { kind: 'separator' }

export interface Statement {
  nonce: Uint8Array
  jkt: Uint8Array
  allowlistDigest: Uint8Array
  mode: AllowlistMode
  progTag: Uint8Array
  loadTime: bigint
  denials: bigint
  cgroupId: bigint
  cgroupDenials: bigint
  linkId: number
  progId: number
}

/** Every way the state can be untrustworthy has this one code; detail.reason names which. */

function sized(v: Uint8Array | string, size: number, what: string): Uint8Array {
  const b = typeof v === 'string' ? fromHex(v) : v
  if (!b || b.length !== size) throw new EvidenceMalformedError(`${what}: expected ${size} bytes${typeof v === 'string' ? ' of hex' : ''}`)
  return b
}

function u64(v: bigint, what: string): bigint {
  if (v < 0n || v > U64_MAX) throw new KeywardError('ERR_BAD_REQUEST', `${what} must be a u64`)
  return v
}

function decodeMode(code: number, what: string): AllowlistMode {
  const mode = code === 1 ? 'enforce' : code === 2 ? 'audit' : undefined
  if (!mode) throw new EvidenceMalformedError(`${what}: unknown mode ${code}`)
  return mode
}

/** allowlist_digest = SHA-256 of the distinct 32-byte entry digests, sorted bytewise ascending. */
export function allowlistDigest(entries: ReadonlyArray<Uint8Array | string>): Uint8Array {
  const distinct = new Map<string, Uint8Array>()
  for (const e of entries) {
    const b = sized(typeof e === 'string' ? e.toLowerCase() : e, 32, 'allowlist entry')
    distinct.set(toHex(b), b)
  }
  // Lowercase hex sorts exactly as the bytes do.
  const sorted = [...distinct.keys()].sort().map((k) => distinct.get(k)!)
  return sha256(...sorted)
}

export function encodeRecord(r: AllowlistRecord): Uint8Array {
  const out = new Uint8Array(ALLOWLIST_RECORD_SIZE)
  out.set(RECORD_LABEL_BYTES, RECORD_LAYOUT.label.offset)
  out[RECORD_LAYOUT.kind.offset] = RECORD_KIND[r.kind]
  if (r.kind === 'separator') return out
  if (!(r.mode in MODE_CODE)) throw new KeywardError('ERR_BAD_REQUEST', 'allowlist mode must be enforce or audit')
  out.set(sized(r.allowlistDigest, 32, 'allowlist digest'), RECORD_LAYOUT.allowlistDigest.offset)
  out[RECORD_LAYOUT.mode.offset] = MODE_CODE[r.mode]
  out.set(sized(r.progTag, 8, 'program tag'), RECORD_LAYOUT.progTag.offset)
  new DataView(out.buffer).setBigUint64(RECORD_LAYOUT.loadTime.offset, u64(r.loadTime, 'load time'), false)
  out.set(sized(r.agentKey, 65, 'agent key'), RECORD_LAYOUT.agentKey.offset)
  return out
}

/** Strict decode: exact length, label, known kind and mode, a separator all zero after its kind. */
export function decodeRecord(record: Uint8Array, index = 0): AllowlistRecord {
  const what = `allowlist record ${index}`
  if (!(record instanceof Uint8Array) || record.length !== ALLOWLIST_RECORD_SIZE) {
    throw new EvidenceMalformedError(`${what}: must be ${ALLOWLIST_RECORD_SIZE} bytes`)
  }
  const r = new ByteReader(record, what)
  if (!constantTimeEqual(r.bytesN(RECORD_LAYOUT.label.size, 'label'), RECORD_LABEL_BYTES)) {
    throw new EvidenceMalformedError(`${what}: label is not ${RECORD_LABEL}`)
  }
  if (r.u8('zero') !== 0) throw new EvidenceMalformedError(`${what}: byte 0x14 is not zero`)
  const kind = r.u8('kind')
  if (kind === RECORD_KIND.separator) {
    requireZero(record, RECORD_LAYOUT.allowlistDigest.offset, ALLOWLIST_RECORD_SIZE, what)
    return { kind: 'separator' }
  }
  if (kind !== RECORD_KIND.load) throw new EvidenceMalformedError(`${what}: unknown kind ${kind}`)
  const allowlistDigest = r.bytesN(32, 'allowlist_digest')
  const mode = decodeMode(r.u8('mode'), what)
  const progTag = r.bytesN(8, 'prog_tag')
  const loadTime = r.u64be('load_time')
  const agentKey = r.bytesN(65, 'agent_key')
  r.end()
  if (agentKey[0] !== 0x04) throw new EvidenceMalformedError(`${what}: agent key is not an uncompressed P-256 point`)
  return { kind: 'load', allowlistDigest, mode, progTag, loadTime, agentKey }
}

/** The signed part of a statement (bytes 0..175); the agent appends the 64-byte r||s signature. */
export function encodeStatementBody(s: Statement): Uint8Array {
  const out = new Uint8Array(SIGNED_SIZE)
  const view = new DataView(out.buffer)
  const L = STATEMENT_LAYOUT
  out.set(STATEMENT_LABEL_BYTES, L.label.offset)
  out.set(sized(s.nonce, 32, 'nonce'), L.nonce.offset)
  out.set(sized(s.jkt, 32, 'jkt'), L.jkt.offset)
  out.set(sized(s.allowlistDigest, 32, 'allowlist digest'), L.allowlistDigest.offset)
  out[L.mode.offset] = MODE_CODE[s.mode]
  out.set(sized(s.progTag, 8, 'program tag'), L.progTag.offset)
  view.setBigUint64(L.loadTime.offset, u64(s.loadTime, 'load time'), false)
  view.setBigUint64(L.denials.offset, u64(s.denials, 'denials'), false)
  view.setBigUint64(L.cgroupId.offset, u64(s.cgroupId, 'cgroup id'), false)
  view.setBigUint64(L.cgroupDenials.offset, u64(s.cgroupDenials, 'cgroup denials'), false)
  view.setUint32(L.linkId.offset, s.linkId, false)
  view.setUint32(L.progId.offset, s.progId, false)
  return out
}

export function decodeStatement(statement: Uint8Array): { body: Statement; signed: Uint8Array; signature: Uint8Array } {
  const what = 'allowlist statement'
  if (!(statement instanceof Uint8Array) || statement.length !== STATEMENT_SIZE) {
    throw new EvidenceMalformedError(`${what}: must be ${STATEMENT_SIZE} bytes`)
  }
  const r = new ByteReader(statement, what)
  if (!constantTimeEqual(r.bytesN(STATEMENT_LAYOUT.label.size, 'label'), STATEMENT_LABEL_BYTES)) {
    throw new EvidenceMalformedError(`${what}: label is not ${STATEMENT_LABEL}`)
  }
  if (r.u8('zero') !== 0) throw new EvidenceMalformedError(`${what}: byte 0x1e is not zero`)
  const body: Statement = {
    nonce: r.bytesN(32, 'nonce'),
    jkt: r.bytesN(32, 'jkt'),
    allowlistDigest: r.bytesN(32, 'allowlist_digest'),
    mode: decodeMode(r.u8('mode'), what),
    progTag: r.bytesN(8, 'prog_tag'),
    loadTime: r.u64be('load_time'),
    denials: r.u64be('denials'),
    cgroupId: r.u64be('cgroup_id'),
    cgroupDenials: r.u64be('cgroup_denials'),
    linkId: r.u32be('link_id'),
    progId: r.u32be('prog_id'),
  }
  const signature = r.bytesN(64, 'signature')
  r.end()
  return { body, signed: statement.subarray(0, SIGNED_SIZE), signature }
}

/** The binding's `state` part: SHA-256 of the whole statement, signature included. */
export function statementDigest(statement: Uint8Array): Uint8Array {
  decodeStatement(statement)
  return sha256(statement)
}
