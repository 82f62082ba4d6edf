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
// The primitives are node:crypto's; the test client decrypts with jose (test/kbs/rcar-client.ts).
import { createCipheriv, createPublicKey, diffieHellman, generateKeyPairSync, publicEncrypt, randomBytes, constants, type KeyObject } from 'node:crypto'
import { canonicalJson } from '../../audit/chain.js'
import { concatBytes, sha256, toB64url } from '../../util/bytes.js'
import type { TeePubKey } from './schemas.js'

export interface FlattenedJwe {
  protected: string
  encrypted_key: string
  iv: string
  ciphertext: string
  tag: string
}

const CURVES = { 'P-256': 'prime256v1', 'P-521': 'secp521r1' } as const
const ECDH_ES_A256KW = 'ECDH-ES+A256KW'
const u32be = (n: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}

/** RFC 7518 §4.6.2: Concat KDF (NIST SP 800-56A) with SHA-256, AlgorithmID = alg, empty PartyU/VInfo, 256-bit output (one round). */
function concatKdf(z: Uint8Array, alg: string): Uint8Array {
  const id = new TextEncoder().encode(alg)
  return sha256(u32be(1), z, u32be(id.length), id, u32be(0), u32be(0), u32be(256))
}

/** RFC 3394 AES key wrap with the default IV. */
function aesKeyWrap(kek: Uint8Array, cek: Uint8Array): Uint8Array {
  const c = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'))
  return new Uint8Array(Buffer.concat([c.update(cek), c.final()]))
}

/** The tee-pubkey as a node KeyObject; throws when the key is not a valid point or modulus. */
export function teeKeyObject(k: TeePubKey): KeyObject {
  return k.kty === 'EC' ? createPublicKey({ key: { kty: 'EC', crv: k.crv, x: k.x, y: k.y }, format: 'jwk' }) : createPublicKey({ key: { kty: 'RSA', n: k.n, e: k.e }, format: 'jwk' })
}

/** Encrypts `plaintext` to the tee-pubkey: ECDH-ES+A256KW (P-256, P-521) or RSA-OAEP-256, content A256GCM. */
export function encryptResource(k: TeePubKey, plaintext: Uint8Array): FlattenedJwe {
  const cek = randomBytes(32)
  const pub = teeKeyObject(k)
  let header: Record<string, unknown>
  let encryptedKey: Uint8Array
  if (k.kty === 'EC') {
    const eph = generateKeyPairSync('ec', { namedCurve: CURVES[k.crv] })
    const z = new Uint8Array(diffieHellman({ privateKey: eph.privateKey, publicKey: pub }))
    encryptedKey = aesKeyWrap(concatKdf(z, ECDH_ES_A256KW), cek)
    const epk = eph.publicKey.export({ format: 'jwk' })
    header = { alg: ECDH_ES_A256KW, enc: 'A256GCM', epk: { crv: k.crv, kty: 'EC', x: epk.x, y: epk.y } }
  } else {
    encryptedKey = new Uint8Array(publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek))
    header = { alg: 'RSA-OAEP-256', enc: 'A256GCM' }
  }
  const protectedB64 = toB64url(new TextEncoder().encode(canonicalJson(header)))
  const iv = randomBytes(12)
  const gcm = createCipheriv('aes-256-gcm', cek, iv)
  gcm.setAAD(Buffer.from(protectedB64, 'ascii'))
  const ciphertext = concatBytes(gcm.update(plaintext), gcm.final())
  cek.fill(0)
  return { protected: protectedB64, encrypted_key: toB64url(encryptedKey), iv: toB64url(iv), ciphertext: toB64url(ciphertext), tag: toB64url(gcm.getAuthTag()) }
}
