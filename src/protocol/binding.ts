// The binding digest: what every piece of evidence must commit to (docs/protocol.md §Binding).
//
//   binding = SHA-256( "keyward-binding-v1" || 0x00 || nonce[32] || jkt[32] || state[32] )
//
// nonce: the challenge nonce (raw 32 bytes); jkt: the raw 32-byte SHA-256 RFC 7638 thumbprint
// of the workload's public JWK; state: the runtime-state (exec-allowlist) digest, 32 zero bytes
// when the workload presents none. All parts are fixed-length, so the encoding is unambiguous.
import { calculateJwkThumbprint, type JWK } from 'jose'
import { KeywardError } from './errors.js'
import { fromB64url, sha256 } from '../util/bytes.js'

export const BINDING_LABEL = 'keyward-binding-v1'
const LABEL_BYTES = new TextEncoder().encode(BINDING_LABEL)
export const ZERO_STATE = new Uint8Array(32)

export function bindingDigest(nonce: Uint8Array, jkt: Uint8Array, state: Uint8Array = ZERO_STATE): Uint8Array {
  if (nonce.length !== 32 || jkt.length !== 32 || state.length !== 32) {
    throw new KeywardError('ERR_BAD_REQUEST', 'binding parts must be 32 bytes each')
  }
  return sha256(LABEL_BYTES, new Uint8Array([0]), nonce, jkt, state)
}

/** RFC 7638 SHA-256 thumbprint of a public JWK, base64url (the `cnf.jkt` form). */
export async function jwkThumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, 'sha256')
}

export function thumbprintBytes(jkt: string): Uint8Array {
  const b = fromB64url(jkt)
  if (!b || b.length !== 32) throw new KeywardError('ERR_BAD_REQUEST', 'thumbprint must be 32 bytes base64url')
  return b
}

/** A release's signed inner JWS (docs/protocol.md "Signed releases"): its `typ`, and its audience for the key `jkt`. */
export const RELEASE_TYP = 'keyward-release+jwt'
export const releaseAudience = (jkt: string): string => `keyward-release:${jkt}`
