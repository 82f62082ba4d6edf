// Pieces both Store backends share: driver-error mapping, row mapping, the migrations folder.
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DrizzleQueryError, sql, type Placeholder, type SQL, type SQLWrapper } from 'drizzle-orm'
import { KeywardError } from '../errors.js'
import type { AttestationRow, AuditInput, AuditRow, ReferenceValueRow, SecretSummary, SecretVersionRow, WorkloadDecision, WorkloadRow } from './types.js'

/** The driver's own error under drizzle's DrizzleQueryError (whose message carries query params). */
export function driverError(e: unknown): unknown {
  let cur: unknown = e
  for (let i = 0; i < 5; i++) {
    if (cur instanceof DrizzleQueryError && cur.cause !== undefined) cur = cur.cause
    else break
  }
  return cur
}

function errCode(e: unknown): string {
  const c = (driverError(e) as { code?: unknown } | null)?.code
  return typeof c === 'string' ? c : ''
}

/** PostgreSQL 23505, SQLite SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE. */
export function isUniqueViolation(e: unknown): boolean {
  const c = errCode(e)
  return c === '23505' || c === 'SQLITE_CONSTRAINT_PRIMARYKEY' || c === 'SQLITE_CONSTRAINT_UNIQUE'
}

/** Errors worth retrying a whole transaction for: unique races, serialization, deadlock, busy. */
export function isRetryable(e: unknown): boolean {
  const c = errCode(e)
  return isUniqueViolation(e) || c === '40001' || c === '40P01' || c.startsWith('SQLITE_BUSY')
}

/**
 * The store itself failed, not the request: connection refused, reset or terminated
 * (pg_terminate_backend, server shutdown), the database refusing connections, a full disk, an
 * I/O error, or a lock not released within busy_timeout. Callers may retry; nothing was committed.
 */
export function isStoreUnavailable(e: unknown): boolean {
  const c = errCode(e)
  if (/^(08|57P0[1-3]|53)/.test(c)) return true // PostgreSQL: connection exception, shutdown, insufficient resources (disk full)
  if (/^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|ENOSPC|EIO)$/.test(c)) return true
  if (/^SQLITE_(FULL|IOERR|BUSY|CANTOPEN|PROTOCOL)/.test(c)) return true
  const m = (driverError(e) as { message?: unknown } | null)?.message
  // node-postgres reports a lost connection without a code.
  return typeof m === 'string' && /Connection terminated|connection timeout|not currently accepting connections|Client has encountered a connection error/i.test(m)
}

/**
 * Maps anything a driver throws to a KeywardError: unique violations become ERR_CONFLICT, the
 * rest ERR_STORE. The cause is the driver error, never drizzle's wrapper (its message lists the
 * query parameters, which may hold ciphertext or credential hashes).
 */
export function toStoreError(e: unknown, op: string): KeywardError {
  if (e instanceof KeywardError) return e
  const cause = driverError(e)
  if (isUniqueViolation(e)) return new KeywardError('ERR_CONFLICT', `${op}: already exists`, { detail: { op } })
  if (isStoreUnavailable(e)) return new KeywardError('ERR_STORE_UNAVAILABLE', `storage unavailable: ${op}`, { cause, detail: { op, code: errCode(e) } })
  return new KeywardError('ERR_STORE', `storage operation failed: ${op}`, { cause, detail: { op, code: errCode(e) } })
}

export function bytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
}

export function toBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** A database row (drivers hand back Buffers and, on PostgreSQL, bigint-ish numbers) as the contract's row. */
export function toSecretRow(r: SecretVersionRow): SecretVersionRow {
  return {
    name: r.name,
    version: r.version,
    ciphertext: bytes(r.ciphertext),
    iv: bytes(r.iv),
    wrappedKey: bytes(r.wrappedKey),
    kekId: r.kekId,
    source: r.source,
    createdAt: Number(r.createdAt),
    createdBy: r.createdBy,
  }
}

/**
 * Summaries from (name, version, createdAt, deletedAt) tuples: a secret is deleted when no live
 * version is left; updatedAt is the latest put or rm.
 */
export function summarizeSecrets(
  rows: readonly { name: string; version: number; createdAt: number; deletedAt: number | null }[],
): SecretSummary[] {
  const by = new Map<string, SecretSummary & { live: number }>()
  for (const r of rows) {
    const s = by.get(r.name) ?? { name: r.name, latestVersion: 0, versions: 0, deleted: true, updatedAt: 0, live: 0 }
    s.latestVersion = Math.max(s.latestVersion, r.version)
    s.versions += 1
    if (r.deletedAt === null) s.live += 1
    s.updatedAt = Math.max(s.updatedAt, Number(r.createdAt), Number(r.deletedAt ?? 0))
    by.set(r.name, s)
  }
  return [...by.values()]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(({ live, ...s }) => ({ ...s, deleted: live === 0 }))
}

/** Parses a JSON array of ids as stored in referenceIds; anything else counts as empty. */
export function parseIdList(json: string): string[] {
  try {
    const v: unknown = JSON.parse(json)
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
  } catch {
    return []
  }
}

export function toAuditRow(r: {
  seq: number
  at: number
  type: string
  subject: string
  decision: AuditRow['decision']
  detail: string
  prevHash: string
  hash: string
}): AuditRow {
  let detail: Record<string, unknown>
  try {
    detail = JSON.parse(r.detail) as Record<string, unknown>
  } catch (e) {
    // A row whose detail is not JSON was edited outside keyward; surface it, keep listing.
    detail = { unparseable: r.detail }
  }
  return {
    seq: Number(r.seq),
    at: Number(r.at),
    type: r.type,
    subject: r.subject,
    decision: r.decision,
    detail,
    prevHash: r.prevHash,
    hash: r.hash,
  }
}

export function toReferenceRow(r: ReferenceValueRow): ReferenceValueRow {
  return {
    ...r,
    createdAt: Number(r.createdAt),
    expiresAt: r.expiresAt === null ? null : Number(r.expiresAt),
    revokedAt: r.revokedAt === null ? null : Number(r.revokedAt),
  }
}

/**
 * The generated migrations folder (drizzle/sqlite or drizzle/postgres): the nearest ancestor of
 * this module that has one, so it works from src/ under tsx and from a compiled dist/ alike.
 */
export function migrationsFolder(dialect: 'sqlite' | 'postgres'): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'drizzle', dialect)
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  throw new KeywardError('ERR_CONFIG', `migrations for ${dialect} not found`)
}

export const MAX_TX_ATTEMPTS = 25

/** Small random backoff between transaction retries, growing with the attempt. */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.min(50, 1 + attempt * 2) * Math.random()
  return new Promise((r) => setTimeout(r, ms))
}

/** listAudit page size: default 1000, at most 100000. */
export function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return 1000
  return Math.max(0, Math.min(100_000, Math.floor(limit)))
}

/**
 * `col LIKE '%needle%'` with the needle taken literally (backslash, % and _ escaped with
 * ESCAPE '\' on both dialects; PostgreSQL would otherwise treat a backslash as an escape). Used only to narrow candidates; callers decide on the parsed value.
 */
export function containsLiteral(col: SQLWrapper, needle: string): SQL {
  const pattern = `%${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
  return sql`${col} LIKE ${pattern} ESCAPE '\\'`
}

/** An audit append waiting for its group commit (both backends batch appends). */
export interface PendingAudit {
  entry: AuditInput
  at: number
  resolve(row: AuditRow): void
  reject(e: unknown): void
}

/** The most appends one audit transaction writes (the rest wait for the next one). */
export const AUDIT_BATCH_MAX = 500

/** One placeholder per field of a row, named after it: the values of an INSERT prepared once. */
function rowPlaceholders<K extends string>(fields: readonly K[]): { [F in K]: Placeholder<F> } {
  return Object.fromEntries(fields.map((f) => [f, sql.placeholder(f)])) as { [F in K]: Placeholder<F> }
}

// The rows both stores write on every decision, as prepared-statement parameters (sqlite.ts and
// postgres.ts prepare the same INSERTs on their own dialect). Each name must be a field of the row
// type; drizzle's typing of values() refuses a list that lacks a NOT NULL column.
const ATTESTATION_FIELDS = ['jti', 'jkt', 'tee', 'policy', 'policyVersion', 'measurement', 'referenceIds', 'workload', 'issuedAt', 'expiresAt', 'revokedAt', 'akName'] as const satisfies readonly (keyof AttestationRow)[]
export const WORKLOAD_FIELDS = ['id', 'tee', 'lastAttestedAt', 'lastDecision', 'actual', 'divergedAt', 'baseline'] as const satisfies readonly (keyof WorkloadRow)[]
export const attestationParams = rowPlaceholders(ATTESTATION_FIELDS)
export const workloadParams = rowPlaceholders(WORKLOAD_FIELDS)
/** The row a decision inserts for a workload not seen before. */
export function workloadDecisionRow(d: WorkloadDecision): WorkloadRow {
  const allow = d.decision === 'allow'
  return { id: d.id, tee: d.tee, lastAttestedAt: d.at, lastDecision: d.decision, actual: d.actual, divergedAt: allow ? null : d.at, baseline: allow ? d.baseline : null }
}
/**
 * ON CONFLICT (id) DO UPDATE SET of a decision (Store.recordWorkloadDecision), the same SQL on both
 * dialects: a deny keeps the stored baseline and first divergence, read from the row being replaced.
 */
export const workloadDecisionSet = {
  tee: sql`excluded.tee`, lastAttestedAt: sql`excluded.last_attested_at`, lastDecision: sql`excluded.last_decision`, actual: sql`excluded.actual`,
  divergedAt: sql`CASE WHEN excluded.last_decision = 'deny' THEN COALESCE(workloads.diverged_at, excluded.diverged_at) END`,
  baseline: sql`CASE WHEN excluded.last_decision = 'allow' THEN excluded.baseline ELSE workloads.baseline END`,
}
