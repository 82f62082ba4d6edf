// The measured items of one attestation, flattened for drift tracking (`keyward workloads`, the
// dashboard): the workload measurement, every quoted PCR, and the exec-allowlist state. Values
// are what the verifier proved (hex, or the allowlist facts as text); nothing secret.
import type { VerifiedClaims } from '../protocol/claims.js'
import type { AllowlistFacts } from './deps.js'

export type MeasuredItems = Record<string, string>

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const byIndex = (a: string, b: string): number => Number(a) - Number(b)

/** Item name → value. TPM PCRs are `pcr <bank>:<index>`, Nitro PCRs `pcr <index>`. */
export function measuredItems(claims: VerifiedClaims, allowlist?: AllowlistFacts): MeasuredItems {
  const out: MeasuredItems = { measurement: claims.measurement }
  const pcrs = claims.details.pcrs
  if (isObject(pcrs)) {
    for (const k of Object.keys(pcrs).sort()) {
      const v = pcrs[k]
      if (typeof v === 'string') continue
      if (!isObject(v)) continue
      for (const i of Object.keys(v).sort(byIndex)) if (typeof v[i] === 'string') out[`pcr ${k}:${i}`] = v[i] as string
    }
    for (const i of Object.keys(pcrs).sort(byIndex)) if (typeof pcrs[i] === 'string') out[`pcr ${i}`] = pcrs[i] as string
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
