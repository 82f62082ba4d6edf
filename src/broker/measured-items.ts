// The measured items of one attestation, flattened for drift tracking (`keyward workloads`, the
// dashboard): the workload measurement, every quoted PCR, and the exec-allowlist state. Values
// are what the verifier proved (hex, or the allowlist facts as text); nothing secret.
import type { VerifiedClaims } from '../protocol/claims.js'
import type { AllowlistFacts } from './deps.js'
import { toHex } from '../util/bytes.js'

export type MeasuredItems = Record<string, string>

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Item name → value. TPM PCRs are `pcr <bank>:<index>`, Nitro PCRs `pcr <index>` (from the typed claims, as hex). */
export function measuredItems(claims: VerifiedClaims, allowlist?: AllowlistFacts): MeasuredItems {
  const out: MeasuredItems = { measurement: claims.measurement }
  const inOrder = (m: ReadonlyMap<number, Uint8Array> | undefined): [number, Uint8Array][] => [...(m ?? [])].sort((a, b) => a[0] - b[0])
  if (claims.tee === 'tpm') {
    const banks = Object.entries(claims.pcrs).sort((a, b) => a[0].localeCompare(b[0]))
    for (const [bank, m] of banks) for (const [i, v] of inOrder(m)) out[`pcr ${bank}:${i}`] = toHex(v)
  } else if (claims.tee === 'nitro') {
    for (const [i, v] of inOrder(claims.pcrs.sha384)) out[`pcr ${i}`] = toHex(v)
  }
  if (allowlist) {
    out['allowlist present'] = String(allowlist.present && allowlist.replayed)
    out['allowlist mode'] = allowlist.mode
    out['allowlist digest'] = allowlist.allowlistDigest
    out['allowlist denials'] = String(allowlist.denials)
  }
  return out
}

/** Parses stored items back; anything not a string map becomes empty (rows written before items existed). */
export function parseItems(v: unknown): MeasuredItems {
  if (!isObject(v)) return {}
  return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'))
}
