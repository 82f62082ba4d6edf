// Runtime state (the host's exec-allowlist records, docs/allowlist-state.md) sent with /v1/attest.
// Its last record's digest is the `state` part of the binding digest.
import { readFile } from 'node:fs/promises'
import { parseAllowlistLog, stateDigest } from '../../src/policy/allowlist-state.js'
import { fromHex, toHex } from '../../src/util/bytes.js'
import { ClientConfigError, isKeywardError } from './errors.js'

export interface RuntimeState {
  allowlist: { records: string[] }
}

/** Where the current runtime state comes from: a fixed value or a provider read before every attestation. */
export type RuntimeStateSource = RuntimeState | (() => Promise<RuntimeState | undefined>)

/** The binding's `state` part: SHA-256 of the last (current) record, validated; undefined when there is none. */
export function runtimeStateDigest(s: RuntimeState | undefined): Uint8Array | undefined {
  const last = s?.allowlist.records.at(-1)
  if (last === undefined) return undefined
  const rec = fromHex(last)
  if (!rec) throw new ClientConfigError('runtime state: allowlist record is not hex')
  try {
    return stateDigest(rec)
  } catch (e) {
    throw new ClientConfigError(`runtime state: ${isKeywardError(e) ? e.message : 'bad allowlist record'}`, { cause: e })
  }
}

/**
 * Reads a runtime-state file: either the agent's JSON-lines log (`{"seq","record"}` per line,
 * /run/keyward/allowlist.log) or the `runtimeState` JSON object itself.
 */
export async function readRuntimeStateFile(path: string): Promise<RuntimeState | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new ClientConfigError(`cannot read runtime state ${path}`, { cause: e })
  }
  const trimmed = text.trim()
  if (trimmed === '') return undefined
  try {
    const v = JSON.parse(trimmed) as unknown
    const recs = (v as { allowlist?: { records?: unknown } } | null)?.allowlist?.records
    if (Array.isArray(recs) && recs.every((r) => typeof r === 'string')) {
      return recs.length === 0 ? undefined : { allowlist: { records: recs.map((r) => r.toLowerCase()) } }
    }
  } catch {
    // not one JSON document: a JSON-lines log
  }
  try {
    const records = parseAllowlistLog(text)
    return records.length === 0 ? undefined : { allowlist: { records: records.map(toHex) } }
  } catch (e) {
    throw new ClientConfigError(`runtime state ${path}: ${isKeywardError(e) ? e.message : 'unreadable'}`, { cause: e })
  }
}
