// The KBS Resource Response: a flattened JWE (RFC 7516 §7.2.2) to the tee-pubkey, in the form
// guest-components decrypt (kbs_protocol/src/keypair.rs decrypt_response with kbs-types 0.18).
//
// Why not jose's FlattenedEncrypt: the client does not take the received `protected` string as
// the AAD. kbs-types deserializes the header into {alg, enc, ...other} and serializes it again
// (ProtectedHeader::generate_aad), so the AAD matches only when the header is written in that
// order with compact separators. jose writes the ECDH-ES `epk` members as {x, crv, kty, y}, which
// the client re-serializes as {crv, kty, x, y} (serde_json without preserve_order) — a different
// AAD and a failed decryption. Here the header is the canonical JSON that both serde_json modes
// reproduce byte for byte: {"alg","enc","epk":{"crv","kty","x","y"}}, as Trustee's KBS writes it.
// The encryption itself is src/broker/jwe.ts (shared with the release path), which writes its
// header in that canonical form; the test client decrypts with jose (test/kbs/rcar-client.ts).
import { createPublicKey, type KeyObject } from 'node:crypto'
import { encryptJwe, type FlattenedJwe } from '../jwe.js'
import type { TeePubKey } from './schemas.js'

export type { FlattenedJwe }

/** The tee-pubkey as a node KeyObject; throws when the key is not a valid point or modulus. */
export function teeKeyObject(k: TeePubKey): KeyObject {
  return k.kty === 'EC' ? createPublicKey({ key: { kty: 'EC', crv: k.crv, x: k.x, y: k.y }, format: 'jwk' }) : createPublicKey({ key: { kty: 'RSA', n: k.n, e: k.e }, format: 'jwk' })
}

/** Encrypts `plaintext` to the tee-pubkey: ECDH-ES+A256KW (P-256, P-521) or RSA-OAEP-256, content A256GCM. */
export function encryptResource(k: TeePubKey, plaintext: Uint8Array): FlattenedJwe {
  return encryptJwe(teeKeyObject(k), plaintext)
}
