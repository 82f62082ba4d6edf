// The SPIFFE bundle of a trust domain (spiffe/spiffe standards/SPIFFE_Trust_Domain_and_Bundle.md
// §4): a JWK Set whose x509-svid entries carry one CA certificate each in x5c and no kid
// (X509-SVID.md §6.1), whose jwt-svid entries carry a kid (JWT-SVID.md §6.1), with
// spiffe_sequence and spiffe_refresh_hint. Pure: the keys and the time come in.
import type { JWK } from 'jose'

export interface SpiffeBundle {
  keys: JWK[]
  spiffe_sequence: number
  spiffe_refresh_hint: number
}

export interface BundleEntry {
  jwk: JWK
  kind: 'x509-svid' | 'jwt-svid' | 'intermediate'
  /** Published from this time (ms) … */
  from: number
  /** … until this time (ms), exclusive. */
  until: number
}

/**
 * The bundle as of `now`. spiffe_sequence (§4.1.1: monotonically increasing, changed whenever
 * the contents change) is the latest moment, in ms, at which a key entered or left the bundle:
 * every replica computes the same number from the same rows, and it grows with every change.
 * Intermediates are never published: workloads send them with their SVIDs.
 */
export function buildBundle(entries: readonly BundleEntry[], now: number, refreshHintSeconds: number): SpiffeBundle {
  const published = entries.filter((e) => e.kind !== 'intermediate')
  let sequence = 0
  for (const e of published) {
    if (e.from <= now) sequence = Math.max(sequence, e.from)
    if (e.until <= now) sequence = Math.max(sequence, e.until)
  }
  const keys = published
    .filter((e) => e.from <= now && now < e.until)
    .sort((a, b) => a.from - b.from)
    .map((e) => ({ ...e.jwk, use: e.kind }))
  return { keys, spiffe_sequence: sequence, spiffe_refresh_hint: refreshHintSeconds }
}
