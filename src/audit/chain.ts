// The audit hash chain. Each row commits to its predecessor:
//   hash = SHA-256( prevHash_hex || "\n" || canonicalJson({seq, at, type, subject, decision, detail}) )
// with object keys sorted at every level and the genesis prevHash = 64 zeros. Editing, removing
// or reordering any row breaks the chain at that row. Removing rows from the *end* cannot be
// seen from the rows alone; compare the head (seq, hash) with one kept elsewhere for that.
import { KeywardError } from '../errors.js'
import { sha256, toHex } from '../util/bytes.js'
import type { AuditInput, AuditRow } from '../store/types.js'

export const GENESIS_HASH = '0'.repeat(64)

const enc = new TextEncoder()

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

function sortDeep(v: Json): Json {
  if (Array.isArray(v)) return v.map(sortDeep)
  if (v !== null && typeof v === 'object') {
    const out: { [k: string]: Json } = {}
    for (const k of Object.keys(v).sort()) out[k] = sortDeep(v[k] as Json)
    return out
  }
  return v
}

/**
 * Normalizes a value to plain JSON (what JSON.stringify keeps: undefined dropped, NaN → null,
 * toJSON applied), so a detail read back from storage hashes exactly like the one written.
 * Throws ERR_BAD_REQUEST for values JSON cannot hold (bigint, cycles).
 */
export function toJsonValue(v: unknown): Json {
  let s: string | undefined
  try {
    s = JSON.stringify(v)
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', 'audit detail is not JSON-serializable', { cause: e })
  }
  return s === undefined ? null : (JSON.parse(s) as Json)
}

/** JSON with object keys sorted at every level (no whitespace). */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortDeep(toJsonValue(v)))
}

export interface ChainFields {
  seq: number
  at: number
  type: string
  subject: string
  decision: AuditInput['decision']
  detail: Record<string, unknown>
}

/** The hash of one row given its predecessor's hash (lowercase hex). */
export function auditHash(prevHash: string, f: ChainFields): string {
  const body = canonicalJson({
    seq: f.seq,
    at: f.at,
    type: f.type,
    subject: f.subject,
    decision: f.decision,
    detail: f.detail,
  })
  return toHex(sha256(enc.encode(prevHash + '\n' + body)))
}

// Detail keys that would carry secret material. Compared case-insensitively with '_' and '-'
// removed, so "private_key", "privateKey" and "PRIVATE-KEY" all match.
const FORBIDDEN_KEYS = new Set([
  'value', 'secret', 'secretvalue', 'plaintext', 'password', 'passphrase',
  'token', 'accesstoken', 'refreshtoken', 'idtoken', 'vaulttoken', 'clienttoken', 'bearer',
  'privatekey', 'privatejwk', 'datakey', 'kek', 'credential', 'apikey',
])

function findForbiddenKey(v: unknown, path: string, depth: number): string | undefined {
  if (depth > 32 || v === null || typeof v !== 'object') return undefined
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const hit = findForbiddenKey(v[i], `${path}[${i}]`, depth + 1)
      if (hit !== undefined) return hit
    }
    return undefined
  }
  for (const [k, child] of Object.entries(v)) {
    const p = path === '' ? k : `${path}.${k}`
    if (FORBIDDEN_KEYS.has(k.toLowerCase().replace(/[_-]/g, ''))) return p
    const hit = findForbiddenKey(child, p, depth + 1)
    if (hit !== undefined) return hit
  }
  return undefined
}

/**
 * Guard run by appendAudit: audit rows are kept forever and exported, so detail keys that name
 * secret material (value, secret, token, privateKey, ...) are refused outright (ERR_BAD_REQUEST,
 * the offending key path in `detail`). Name such fields for what identifies them instead
 * (secretName, tokenJti, kid).
 */
export function assertAuditDetailSafe(detail: Record<string, unknown>): void {
  const hit = findForbiddenKey(detail, '', 0)
  if (hit !== undefined) {
    throw new KeywardError('ERR_BAD_REQUEST', 'audit detail must not carry secret values', {
      detail: { key: hit },
    })
  }
}

/**
 * Validates an entry before it is chained: the detail must be a JSON object without secret-named
 * keys and `at` an integer. Returns the entry with its detail normalized to plain JSON.
 */
export function normalizeAuditEntry(entry: AuditInput, at: number): AuditInput {
  if (entry.detail === null || typeof entry.detail !== 'object' || Array.isArray(entry.detail)) {
    throw new KeywardError('ERR_BAD_REQUEST', 'audit detail must be an object')
  }
  if (typeof entry.type !== 'string' || typeof entry.subject !== 'string' || !['allow', 'deny', 'info'].includes(entry.decision)) {
    throw new KeywardError('ERR_BAD_REQUEST', 'audit entry is malformed')
  }
  assertAuditDetailSafe(entry.detail)
  if (!Number.isSafeInteger(at)) throw new KeywardError('ERR_BAD_REQUEST', 'audit time must be an integer')
  const detail = toJsonValue(entry.detail) as Record<string, unknown>
  return { type: entry.type, subject: entry.subject, decision: entry.decision, detail }
}

/** Builds the next row of the chain (validates the entry, normalizes its detail to plain JSON). */
export function buildAuditRow(
  prev: { seq: number; hash: string } | null,
  entry: AuditInput,
  at: number,
): AuditRow {
  const e = normalizeAuditEntry(entry, at)
  const seq = prev === null ? 1 : prev.seq + 1
  const prevHash = prev === null ? GENESIS_HASH : prev.hash
  const fields: ChainFields = { seq, at, type: e.type, subject: e.subject, decision: e.decision, detail: e.detail }
  return { ...fields, prevHash, hash: auditHash(prevHash, fields) }
}

/** Builds consecutive rows chained from `prev` (the head, or null for an empty chain), one per entry in order. */
export function buildAuditRows(prev: { seq: number; hash: string } | null, entries: readonly { entry: AuditInput; at: number }[]): AuditRow[] {
  return entries.map((p) => (prev = buildAuditRow(prev, p.entry, p.at)))
}

export type AuditChainResult =
  | { ok: true; count: number; head: { seq: number; hash: string } | null }
  | { ok: false; seq: number; reason: string }

export interface VerifyAuditChainOptions {
  /** Verify a slice that starts after this row (default: from genesis, first seq = 1). */
  after?: { seq: number; hash: string }
}

/**
 * Checks rows in the order given (as listAudit returns them, ascending seq): consecutive seq
 * numbers, each prevHash equal to the previous row's hash, each hash recomputed. Reports the
 * first bad row. Does not detect rows removed from the end (see the module comment).
 */
export function verifyAuditChain(rows: readonly AuditRow[], opts: VerifyAuditChainOptions = {}): AuditChainResult {
  let prevSeq = opts.after?.seq ?? 0
  let prevHash = opts.after?.hash ?? GENESIS_HASH
  for (const r of rows) {
    if (r.seq !== prevSeq + 1) {
      return { ok: false, seq: r.seq, reason: `sequence gap: expected seq ${prevSeq + 1}, found ${r.seq}` }
    }
    if (r.prevHash !== prevHash) {
      return { ok: false, seq: r.seq, reason: 'prevHash does not match the previous row' }
    }
    let expected: string
    try {
      expected = auditHash(prevHash, r)
    } catch {
      return { ok: false, seq: r.seq, reason: 'row content is not canonical JSON' }
    }
    if (r.hash !== expected) return { ok: false, seq: r.seq, reason: 'hash does not match the row content' }
    prevSeq = r.seq
    prevHash = r.hash
  }
  const last = rows[rows.length - 1]
  return { ok: true, count: rows.length, head: last === undefined ? null : { seq: last.seq, hash: last.hash } }
}
