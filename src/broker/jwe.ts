// JWE encryption to a workload's public key (RFC 7516, algorithms from RFC 7518): ECDH-ES+A256KW
// for EC keys (P-256, P-384, P-521), RSA-OAEP-256 for RSA, A256GCM content. Both releases use it:
// the compact JWE of /v1/secrets, /v1/vault/token, /v1/credentials and /v1/svid (release.ts), and
// the flattened JWE of the KBS resource response (kbs/jwe.ts).
//
// Why not jose's CompactEncrypt: jose 6 runs on WebCrypto, where every step (ephemeral key, its
// JWK export, ECDH, the KW key import, the wrap, AES-GCM) is a promise job queued to the libuv
// pool. On one core that costs 1.0 ms per release against 0.35 ms for the same primitives called
// synchronously from node:crypto (bench notes in issue 17). Only the sender side is written here;
// every receiver in the tests (the enclave client, the KBS test client) decrypts with jose.
//
// The protected header is canonical JSON (sorted members, no spaces): guest-components rebuild
// the AAD from the parsed header (kbs/jwe.ts says why), and any other receiver takes it as sent.
import { createCipheriv, createECDH, publicEncrypt, randomBytes, constants, type KeyObject } from 'node:crypto'
import { canonicalJson } from '../audit/chain.js'
import { KeywardError } from '../errors.js'
import { concatBytes, sha256, toB64url } from '../util/bytes.js'

export interface FlattenedJwe {
  protected: string
  encrypted_key: string
  iv: string
  ciphertext: string
  tag: string
}

const ECDH_ES_A256KW = 'ECDH-ES+A256KW'
/** OpenSSL's curve names as KeyObject reports them, and their JOSE names. */
const JOSE_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }

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

/** An EC public KeyObject's point, uncompressed, for ECDH.computeSecret (which checks that it is on the curve). */
function uncompressedPoint(key: KeyObject): Buffer {
  const { x, y } = key.export({ format: 'jwk' })
  if (typeof x !== 'string' || typeof y !== 'string') throw new KeywardError('ERR_KEY_UNSUPPORTED', 'an EC public key was expected')
  return Buffer.concat([Buffer.from([4]), Buffer.from(x, 'base64url'), Buffer.from(y, 'base64url')])
}

/**
 * Encrypts `plaintext` to `recipient` (a public KeyObject: EC on P-256/P-384/P-521, or RSA).
 * `headers` join alg, enc (and epk) in the protected header; they cannot replace them.
 */
export function encryptJwe(recipient: KeyObject, plaintext: Uint8Array, headers: Readonly<Record<string, string>> = {}): FlattenedJwe {
  if (recipient.type !== 'public') throw new KeywardError('ERR_KEY_UNSUPPORTED', 'a public key was expected')
  const cek = randomBytes(32)
  let header: Record<string, unknown>
  let encryptedKey: Uint8Array
  if (recipient.asymmetricKeyType === 'ec') {
    const namedCurve = recipient.asymmetricKeyDetails?.namedCurve ?? ''
    const crv = JOSE_CURVES[namedCurve]
    if (!crv) throw new KeywardError('ERR_KEY_UNSUPPORTED', `EC curve ${namedCurve} is not supported`)
    // A fresh ephemeral key per message (ECDH-ES): nothing the recipient's key does can reveal another message's key.
    // node:crypto's ECDH class, not generateKeyPairSync + export: on Node 20 exporting a key made by
    // generateKeyPairSync can deadlock the process (the export holds the key's mutex while it
    // allocates; a GC then finalizes the key's generation job, whose destructor takes the same
    // mutex). A loop of both hung about one run in three within 200,000 keys here.
    const eph = createECDH(namedCurve)
    const ephPoint = eph.generateKeys() // uncompressed: 0x04 || X || Y, each the curve's full size
    const z = new Uint8Array(eph.computeSecret(uncompressedPoint(recipient)))
    const kek = concatKdf(z, ECDH_ES_A256KW)
    encryptedKey = aesKeyWrap(kek, cek)
    z.fill(0)
    kek.fill(0)
    const size = (ephPoint.length - 1) / 2
    const epk = { crv, kty: 'EC', x: toB64url(ephPoint.subarray(1, 1 + size)), y: toB64url(ephPoint.subarray(1 + size)) }
    header = { ...headers, alg: ECDH_ES_A256KW, enc: 'A256GCM', epk }
  } else if (recipient.asymmetricKeyType === 'rsa') {
    encryptedKey = new Uint8Array(publicEncrypt({ key: recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek))
    header = { ...headers, alg: 'RSA-OAEP-256', enc: 'A256GCM' }
  } else {
    throw new KeywardError('ERR_KEY_UNSUPPORTED', 'an EC or RSA public key was expected')
  }
  const protectedB64 = toB64url(new TextEncoder().encode(canonicalJson(header)))
  const iv = randomBytes(12)
  const gcm = createCipheriv('aes-256-gcm', cek, iv)
  gcm.setAAD(Buffer.from(protectedB64, 'ascii'))
  const ciphertext = concatBytes(gcm.update(plaintext), gcm.final())
  cek.fill(0)
  return { protected: protectedB64, encrypted_key: toB64url(encryptedKey), iv: toB64url(iv), ciphertext: toB64url(ciphertext), tag: toB64url(gcm.getAuthTag()) }
}

/** RFC 7516 §7.1 compact serialization of a JWE that has no unprotected header. */
export function compactJwe(j: FlattenedJwe): string {
  return `${j.protected}.${j.encrypted_key}.${j.iv}.${j.ciphertext}.${j.tag}`
}
