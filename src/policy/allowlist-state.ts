// The exec-allowlist state record, its digests and the PCR log replay, exactly as in
// docs/allowlist-state.md (the C agent in enclave-client/ebpf implements the same document).
import { KeywardError, EvidenceMalformedError } from '../errors.js'
import { ByteReader, requireZero } from '../verifiers/common/reader.js'
import { constantTimeEqual, fromHex, sha256, toHex } from '../util/bytes.js'

/** What the broker established about the host's exec-allowlist (docs/allowlist-state.md). */
export interface AllowlistFacts {
  /** False when the workload presented no allowlist state. */
  present: boolean
  /** 'unloaded': the agent's last record says it removed the program (docs/allowlist-state.md). */
  mode: 'enforce' | 'audit' | 'unloaded' | 'none'
  /** Lowercase hex of the allowlist digest, "" when absent. */
  allowlistDigest: string
  /** Denials since load; -1 when absent, so `denials == 0` fails closed. */
  denials: bigint
  /** Lowercase hex of the 8-byte BPF program tag, "" when absent. */
  progTag: string
  /** Nanoseconds since boot at program load; -1 when absent. */
  loadTime: bigint
  /** True when the log replayed to the quoted PCR (TPM); false for binding-only (SNP, Nitro). */
  replayed: boolean
  /** Lowercase hex SHA-256 of the current state record, "" when absent. */
  stateDigest: string
}

export const ABSENT_ALLOWLIST: Readonly<AllowlistFacts> = Object.freeze({
  present: false,
  mode: 'none',
  allowlistDigest: '',
  denials: -1n,
  progTag: '',
  loadTime: -1n,
  replayed: false,
  stateDigest: '',
})

export const ALLOWLIST_STATE_LABEL = 'keyward-allowlist-state-v1'
const LABEL_BYTES = new TextEncoder().encode(ALLOWLIST_STATE_LABEL)
/** docs/allowlist-state.md §State record: offsets and sizes. */
export const STATE_LAYOUT = {
  label: { offset: 0, size: 26 },
  separator: { offset: 26, size: 1 },
  allowlistDigest: { offset: 27, size: 32 },
  mode: { offset: 59, size: 1 },
  progTag: { offset: 60, size: 8 },
  denials: { offset: 68, size: 8 },
  loadTime: { offset: 76, size: 8 },
  reserved: { offset: 84, size: 7 },
} as const
export const ALLOWLIST_RECORD_SIZE = 91
/** Default PCR the agent extends state digests into (docs/policy.md §Allowlist PCR). */
export const DEFAULT_ALLOWLIST_PCR = 15
export const MAX_ALLOWLIST_RECORDS = 65_536

export type AllowlistMode = 'enforce' | 'audit'
/** A record's mode: the agent's `unload` measures mode 0 before it removes anything. */
export type AllowlistRecordMode = AllowlistMode | 'unloaded'
const MODE_CODE: Record<AllowlistRecordMode, number> = { enforce: 1, audit: 2, unloaded: 0 }
const U64_MAX = (1n << 64n) - 1n

export interface AllowlistState {
  allowlistDigest: Uint8Array
  mode: AllowlistRecordMode
  progTag: Uint8Array
  denials: bigint
  loadTime: bigint
}

function hexOrBytes(v: Uint8Array | string, size: number, what: string): Uint8Array {
  const b = typeof v === 'string' ? fromHex(v) : v
  if (!b || b.length !== size) throw new EvidenceMalformedError(`${what}: expected ${size} bytes${typeof v === 'string' ? ' of hex' : ''}`)
  return b
}

/** allowlist_digest = SHA-256 of the distinct 32-byte entry digests, sorted bytewise ascending. */
export function allowlistDigest(entries: ReadonlyArray<Uint8Array | string>): Uint8Array {
  const distinct = new Map<string, Uint8Array>()
  for (const e of entries) {
    const b = hexOrBytes(typeof e === 'string' ? e.toLowerCase() : e, 32, 'allowlist entry')
    distinct.set(toHex(b), b)
  }
  // Lowercase hex sorts exactly as the bytes do.
  const sorted = [...distinct.keys()].sort().map((k) => distinct.get(k)!)
  return sha256(...sorted)
}

export function encodeAllowlistState(s: AllowlistState): Uint8Array {
  if (!(s.mode in MODE_CODE)) throw new KeywardError('ERR_BAD_REQUEST', 'allowlist mode must be enforce, audit or unloaded')
  if (s.denials < 0n || s.denials > U64_MAX || s.loadTime < 0n || s.loadTime > U64_MAX) {
    throw new KeywardError('ERR_BAD_REQUEST', 'allowlist counters must be u64')
  }
  const out = new Uint8Array(ALLOWLIST_RECORD_SIZE)
  const view = new DataView(out.buffer)
  out.set(LABEL_BYTES, STATE_LAYOUT.label.offset)
  out[STATE_LAYOUT.separator.offset] = 0
  out.set(hexOrBytes(s.allowlistDigest, 32, 'allowlist digest'), STATE_LAYOUT.allowlistDigest.offset)
  out[STATE_LAYOUT.mode.offset] = MODE_CODE[s.mode]
  out.set(hexOrBytes(s.progTag, 8, 'program tag'), STATE_LAYOUT.progTag.offset)
  view.setBigUint64(STATE_LAYOUT.denials.offset, s.denials, false)
  view.setBigUint64(STATE_LAYOUT.loadTime.offset, s.loadTime, false)
  return out
}

/** Strict decode: exact length, label, separator, known mode, zero reserved bytes. */
export function decodeAllowlistState(record: Uint8Array): AllowlistState {
  const what = 'allowlist state record'
  if (!(record instanceof Uint8Array) || record.length !== ALLOWLIST_RECORD_SIZE) {
    throw new EvidenceMalformedError(`${what}: must be ${ALLOWLIST_RECORD_SIZE} bytes`)
  }
  const r = new ByteReader(record, what)
  const label = r.bytesN(STATE_LAYOUT.label.size, 'label')
  if (!constantTimeEqual(label, LABEL_BYTES)) throw new EvidenceMalformedError(`${what}: label is not ${ALLOWLIST_STATE_LABEL}`)
  if (r.u8('separator') !== 0) throw new EvidenceMalformedError(`${what}: separator at 0x1a is not zero`)
  const digest = r.bytesN(32, 'allowlist_digest')
  const modeCode = r.u8('mode')
  const mode = modeCode === 1 ? 'enforce' : modeCode === 2 ? 'audit' : modeCode === 0 ? 'unloaded' : undefined
  if (!mode) throw new EvidenceMalformedError(`${what}: unknown mode ${modeCode}`)
  const progTag = r.bytesN(8, 'prog_tag')
  const denials = r.u64be('denials')
  const loadTime = r.u64be('load_time')
  requireZero(record, STATE_LAYOUT.reserved.offset, ALLOWLIST_RECORD_SIZE, what)
  r.skip(STATE_LAYOUT.reserved.size, 'reserved')
  r.end()
  return { allowlistDigest: digest, mode, progTag, denials, loadTime }
}

/** state_digest = SHA-256(record); the record is validated first. */
export function stateDigest(record: Uint8Array): Uint8Array {
  decodeAllowlistState(record)
  return sha256(record)
}

/** Facts about one record without a PCR (SNP, Nitro: the record's digest is bound, not replayed). */
export function allowlistFacts(record: Uint8Array, replayed = false): AllowlistFacts {
  const s = decodeAllowlistState(record)
  return {
    present: true,
    mode: s.mode,
    allowlistDigest: toHex(s.allowlistDigest),
    denials: s.denials,
    progTag: toHex(s.progTag),
    loadTime: s.loadTime,
    replayed,
    stateDigest: toHex(sha256(record)),
  }
}

function toRecord(r: Uint8Array | string, i: number): Uint8Array {
  const b = typeof r === 'string' ? fromHex(r) : r
  if (!b) throw new EvidenceMalformedError(`allowlist log record ${i}: not hex`)
  return b
}

/**
 * Replays the log from the PCR's initial value (32 zero bytes): pcr = SHA-256(pcr || state_digest_i).
 * Throws ERR_ALLOWLIST_REPLAY unless the result equals the quoted SHA-256 PCR. The caller owes a
 * PCR value taken from a verified quote. No records and a zero PCR: nothing was loaded (absent).
 */
export function replayAllowlistLog(records: ReadonlyArray<Uint8Array | string>, quotedPcrHex: string): AllowlistFacts {
  const quoted = fromHex(quotedPcrHex)
  if (!quoted || quoted.length !== 32) throw new EvidenceMalformedError('quoted allowlist PCR must be 32 bytes of hex (SHA-256 bank)')
  if (records.length > MAX_ALLOWLIST_RECORDS) throw new EvidenceMalformedError(`allowlist log: more than ${MAX_ALLOWLIST_RECORDS} records`)
  const bytes = records.map(toRecord)
  let pcr: Uint8Array = new Uint8Array(32)
  for (const b of bytes) pcr = sha256(pcr, stateDigest(b))
  if (!constantTimeEqual(pcr, quoted)) {
    throw new KeywardError('ERR_ALLOWLIST_REPLAY', 'allowlist log does not replay to the quoted PCR', {
      detail: { records: bytes.length, replayed: toHex(pcr), quoted: toHex(quoted) },
    })
  }
  const last = bytes[bytes.length - 1]
  return last ? allowlistFacts(last, true) : { ...ABSENT_ALLOWLIST, replayed: true }
}

/** Parses the agent's JSON-lines log ({"seq": n, "record": hex}); seq must increase by one. */
export function parseAllowlistLog(text: string): Uint8Array[] {
  const out: Uint8Array[] = []
  let prev: number | undefined
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    let v: unknown
    try {
      v = JSON.parse(line)
    } catch {
      throw new EvidenceMalformedError(`allowlist log line ${i + 1}: not JSON`)
    }
    const o = v as { seq?: unknown; record?: unknown } | null
    if (!o || typeof o !== 'object' || !Number.isSafeInteger(o.seq) || typeof o.record !== 'string') {
      throw new EvidenceMalformedError(`allowlist log line ${i + 1}: expected {"seq": n, "record": hex}`)
    }
    const seq = o.seq as number
    if (prev !== undefined && seq !== prev + 1) throw new EvidenceMalformedError(`allowlist log line ${i + 1}: seq ${seq} after ${prev}`)
    prev = seq
    const rec = fromHex(o.record)
    if (!rec || rec.length !== ALLOWLIST_RECORD_SIZE) throw new EvidenceMalformedError(`allowlist log line ${i + 1}: record must be ${ALLOWLIST_RECORD_SIZE} bytes of hex`)
    out.push(rec)
    if (out.length > MAX_ALLOWLIST_RECORDS) throw new EvidenceMalformedError(`allowlist log: more than ${MAX_ALLOWLIST_RECORDS} records`)
  }
  return out
}
