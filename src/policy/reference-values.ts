// Reference values (docs/policy.md §Reference values): importers for the files each platform's
// tools produce (the TCG event-log importer, which parses evidence, is src/cli/reference-import.ts), returning ReferenceValueRow objects with provenance, and the filter that turns
// stored rows into the `refs` map a policy sees. Persistence is the store's job.
import { randomUUID } from 'node:crypto'
import { parse as parseYaml } from 'yaml'
import { KeywardError } from '../errors.js'
import type { ReferenceValueRow } from '../store/types.js'
import { fromB64, fromHex, toHex, type HashName } from '../util/bytes.js'

export interface ImportOptions {
  /** Who imports (ReferenceValueRow.createdBy). */
  createdBy: string
  /** Provenance, e.g. "nitro-cli build-enclave: payments.eif"; defaults to the importer's name. */
  source?: string
  now: Date | number
  expiresAt?: Date | number | null
  note?: string | null
}

const HASH_SIZES: Record<HashName, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }

function invalid(what: string, message: string): KeywardError {
  return new KeywardError('ERR_BAD_REQUEST', `${what}: ${message}`)
}

const ms = (t: Date | number): number => (typeof t === 'number' ? t : t.getTime())

/** A row with provenance: `source` names the importer (the tool whose output it read). */
export function referenceRow(set: string, tee: string, value: string, source: string, o: ImportOptions): ReferenceValueRow {
  return {
    id: `rv_${randomUUID()}`,
    set,
    tee,
    value,
    source: o.source ? `${source}: ${o.source}` : source,
    createdBy: o.createdBy,
    createdAt: ms(o.now),
    expiresAt: o.expiresAt == null ? null : ms(o.expiresAt),
    revokedAt: null,
    revokedBy: null,
    note: o.note ?? null,
  }
}

/** Lowercase hex of exactly `size` bytes ("0x" prefix tolerated), or an error naming `what`. */
function hexValue(v: unknown, size: number, what: string): string {
  if (typeof v !== 'string') throw invalid(what, 'expected a hex string')
  const s = v.trim().replace(/^0x/i, '')
  const b = fromHex(s)
  if (!b || b.length !== size) throw invalid(what, `expected ${size} bytes of hex`)
  return toHex(b)
}

function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw invalid(what, 'not JSON')
  }
}

/**
 * `nitro-cli build-enclave` / `describe-eif` output: {"Measurements": {"HashAlgorithm":
 * "Sha384 { ... }", "PCR0", "PCR1", "PCR2"[, "PCR8"]}} (describe-enclaves: an array of those).
 * Rows go to sets `<prefix>-pcr0`, `-pcr1`, `-pcr2` (and `-pcr8` for signed EIFs).
 */
export function importNitroMeasurements(input: string | unknown, o: ImportOptions & { setPrefix?: string }): ReferenceValueRow[] {
  const what = 'nitro measurements'
  const doc = typeof input === 'string' ? parseJsonText(input, what) : input
  const items = Array.isArray(doc) ? doc : [doc]
  const prefix = o.setPrefix ?? 'nitro'
  const out: ReferenceValueRow[] = []
  for (const item of items) {
    const m = (item as { Measurements?: unknown } | null)?.Measurements as Record<string, unknown> | undefined
    if (!m || typeof m !== 'object') throw invalid(what, 'missing "Measurements" object')
    if (typeof m.HashAlgorithm !== 'string' || !/^sha384\b/i.test(m.HashAlgorithm)) throw invalid(what, 'HashAlgorithm must be Sha384')
    for (const pcr of ['PCR0', 'PCR1', 'PCR2', 'PCR8']) {
      if (m[pcr] === undefined) {
        if (pcr !== 'PCR8') throw invalid(what, `missing ${pcr}`)
        continue
      }
      out.push(referenceRow(`${prefix}-${pcr.toLowerCase()}`, 'nitro', hexValue(m[pcr], 48, `${what} ${pcr}`), 'nitro-cli', o))
    }
  }
  return out
}

/**
 * An SEV-SNP launch measurement (48 bytes): as `sev-snp-measure` prints it (hex, or base64 with
 * --output-format base64), optionally "0x"-prefixed. Goes to set `snp-measurements` by default.
 */
export function importSnpMeasurement(text: string, o: ImportOptions & { set?: string }): ReferenceValueRow[] {
  const what = 'SEV-SNP measurement'
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean)
  if (lines.length === 0) throw invalid(what, 'empty input')
  return lines.map((l) => {
    const s = l.replace(/^0x/i, '')
    const b = /^[0-9a-fA-F]{96}$/.test(s) ? fromHex(s) : fromB64(s)
    if (!b || b.length !== 48) throw invalid(what, 'expected 48 bytes as hex or base64')
    return referenceRow(o.set ?? 'snp-measurements', 'sev-snp', toHex(b), 'sev-snp-measure', o)
  })
}

/** The set name a golden PCR value goes to: `tpm-<bank>-pcr<index>`, e.g. tpm-sha256-pcr7. */
export function tpmPcrSet(bank: HashName, index: number, prefix = 'tpm'): string {
  return `${prefix}-${bank}-pcr${index}`
}

function isBank(b: string): b is HashName {
  return b in HASH_SIZES
}

/**
 * Golden PCR values as {bank: {index: hex}} JSON (the vectors' pcrs.json) or the YAML
 * `tpm2_pcrread` prints ("sha256:\n  7 : 0x..."). `indices` limits what is imported.
 */
export function importTpmPcrs(text: string, o: ImportOptions & { indices?: number[]; setPrefix?: string }): ReferenceValueRow[] {
  const what = 'TPM PCR values'
  let doc: unknown
  try {
    // Failsafe schema: every scalar stays a string, so 0x... values are not read as numbers.
    doc = parseYaml(text, { schema: 'failsafe', uniqueKeys: true, maxAliasCount: 0 })
  } catch {
    throw invalid(what, 'neither JSON nor tpm2_pcrread YAML')
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw invalid(what, 'expected {bank: {index: hex}}')
  const out: ReferenceValueRow[] = []
  for (const [bank, values] of Object.entries(doc as Record<string, unknown>)) {
    const b = bank.toLowerCase()
    if (!isBank(b)) throw invalid(what, `unknown bank ${JSON.stringify(bank)}`)
    if (!values || typeof values !== 'object' || Array.isArray(values)) throw invalid(what, `${bank}: expected {index: hex}`)
    for (const [idx, v] of Object.entries(values as Record<string, unknown>)) {
      const i = Number(idx.trim())
      if (!/^\d{1,2}$/.test(idx.trim()) || i > 23) throw invalid(what, `${bank}: PCR index ${JSON.stringify(idx)} out of range 0-23`)
      if (o.indices && !o.indices.includes(i)) continue
      out.push(referenceRow(tpmPcrSet(b, i, o.setPrefix), 'tpm', hexValue(v, HASH_SIZES[b], `${what} ${bank}:${i}`), 'tpm2_pcrread', o))
    }
  }
  return out
}

/** A plain value (allowlist digests, custom sets): hex is lowercased, other strings kept. */
export function referenceValue(set: string, tee: string, value: string, o: ImportOptions): ReferenceValueRow {
  if (!/^[a-z0-9][a-z0-9._-]{0,127}$/.test(set)) throw invalid('reference set', 'name must be lowercase a-z 0-9 . _ -')
  if (value.length === 0 || value.length > 1024) throw invalid('reference value', 'must be 1-1024 chars')
  return referenceRow(set, tee, /^(0x)?[0-9a-fA-F]+$/.test(value) && value.replace(/^0x/i, '').length % 2 === 0 ? value.replace(/^0x/i, '').toLowerCase() : value, 'manual', o)
}

export interface ActiveRefs {
  /** set → distinct active values (the policy's `refs`). */
  refs: Record<string, string[]>
  /** set → value → ids of the active rows carrying it. */
  byValue: Record<string, Record<string, string[]>>
  /** Ids of every active row. */
  ids: string[]
}

/** True when the row is neither revoked nor expired at `now`. */
export function isActive(r: ReferenceValueRow, now: Date | number): boolean {
  const t = ms(now)
  return (r.revokedAt === null || r.revokedAt > t) && (r.expiresAt === null || r.expiresAt > t)
}

/**
 * Drops revoked and expired rows and rows of another TEE, and builds the refs map of the
 * evidence's `tee`, with the ids behind each value. A reference value is a claim about one TEE's
 * measurement format: an SEV-SNP launch digest must never admit a TPM or Nitro value that happens
 * to be equal (or a set shared by name across TEEs), so the label is part of the match.
 */
export function activeRefs(rows: readonly ReferenceValueRow[], now: Date | number, tee: string): ActiveRefs {
  // Null-prototype maps: set names and values are data, never property names like __proto__.
  const refs: Record<string, string[]> = Object.create(null) as Record<string, string[]>
  const byValue: Record<string, Record<string, string[]>> = Object.create(null) as Record<string, Record<string, string[]>>
  const ids: string[] = []
  for (const r of rows) {
    if (r.tee !== tee || !isActive(r, now)) continue
    ids.push(r.id)
    const set = (byValue[r.set] ??= Object.create(null) as Record<string, string[]>)
    const list = set[r.value]
    if (list) list.push(r.id)
    else {
      set[r.value] = [r.id]
      ;(refs[r.set] ??= []).push(r.value)
    }
  }
  return { refs, byValue, ids }
}
