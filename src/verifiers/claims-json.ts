// The JSON view of verified claims, shared by `keyward verify --json` and the claims that
// attestation-result tokens carry: bytes as lowercase hex, nothing secret.
import type { VerifiedClaims } from '../protocol/claims.js'
import { toHex } from '../util/bytes.js'

export function claimsToJson(c: VerifiedClaims): Record<string, unknown> {
  return {
    tee: c.tee,
    measurement: c.measurement,
    debug: c.debug,
    issuedAt: c.issuedAt,
    bindingData: toHex(c.bindingData),
    nonce: c.nonce ? toHex(c.nonce) : null,
    publicKey: c.publicKey ? toHex(c.publicKey) : null,
    details: c.details,
  }
}

/** JSON-safe values (bigint as decimal string) for token claims and API responses. */
export function jsonSafe(o: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Record<string, unknown>
}
