// TPM2_MakeCredential in TypeScript (TPM 2.0 Library Part 1 §24 "Credential Protection",
// Part 3 §12.6), for RSA and ECC endorsement keys. The broker wraps a random secret so that only
// the TPM holding the EK *and* the object named `objectName` (the AK) can recover it with
// TPM2_ActivateCredential. Output: the raw TPM2B parts and the tpm2-tools file format.
import { createCipheriv, createECDH, createHmac, publicEncrypt, constants, randomBytes } from 'node:crypto'
import { KeywardError } from '../../errors.js'
import { concatBytes, constantTimeEqual, digest, type HashName } from '../../util/bytes.js'
import { TPMA_OBJECT } from './layout.js'
import { hashSize, leftPad, publicKeyOf, type TpmPublic } from './parse.js'

function u32be(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff])
}

function tpm2b(b: Uint8Array): Uint8Array {
  return concatBytes(new Uint8Array([b.length >> 8, b.length & 0xff]), b)
}

function label(s: string): Uint8Array {
  // Part 1 §11.4.10.1: the label is followed by one octet of zero (unless it already ends in one).
  return new TextEncoder().encode(s.endsWith('\0') ? s : `${s}\0`)
}

/** KDFa (Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC-`alg`. */
export function kdfa(alg: HashName, key: Uint8Array, use: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  const bytes = Math.ceil(bits / 8)
  const out = new Uint8Array(Math.ceil(bytes / hashSize(alg)) * hashSize(alg))
  const l = label(use)
  for (let i = 1, o = 0; o < bytes; i++, o += hashSize(alg)) {
    out.set(createHmac(alg, key).update(u32be(i)).update(l).update(contextU).update(contextV).update(u32be(bits)).digest(), o)
  }
  const r = out.slice(0, bytes)
  if (bits % 8 !== 0) r[0]! &= (1 << (bits % 8)) - 1
  return r
}

/** KDFe (Part 1 §11.4.10.3): SP 800-56A concatenation KDF, H(counter ‖ Z ‖ use ‖ partyU ‖ partyV). */
export function kdfe(alg: HashName, z: Uint8Array, use: string, partyU: Uint8Array, partyV: Uint8Array, bits: number): Uint8Array {
  const bytes = Math.ceil(bits / 8)
  const parts: Uint8Array[] = []
  for (let i = 1, o = 0; o < bytes; i++, o += hashSize(alg)) parts.push(digest(alg, u32be(i), z, label(use), partyU, partyV))
  return concatBytes(...parts).slice(0, bytes)
}

export interface MadeCredential {
  /** TPM2B_ID_OBJECT (with its size): TPM2B_DIGEST(integrityHMAC) ‖ encIdentity. */
  idObject: Uint8Array
  /** TPM2B_ENCRYPTED_SECRET (with its size): RSA-OAEP ciphertext, or the ephemeral TPMS_ECC_POINT. */
  encryptedSecret: Uint8Array
  /** The `tpm2_makecredential -o` file: magic 0xBADCC0DE, version 1, then both TPM2B above. */
  file: Uint8Array
}

const CRED_FILE_MAGIC = new Uint8Array([0xba, 0xdc, 0xc0, 0xde])
const ECDH_CURVES = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' } as const
const ECC_SIZES = { 'P-256': 32, 'P-384': 48, 'P-521': 66 } as const

function seedFor(ek: TpmPublic): { seed: Uint8Array; encSecret: Uint8Array } {
  const n = hashSize(ek.nameAlg)
  if (ek.type === 'rsa') {
    // Part 1 §24.4 / Annex B.10.3: seed encrypted with RSA-OAEP (EK nameAlg), label "IDENTITY".
    const seed = new Uint8Array(randomBytes(n))
    const enc = publicEncrypt({ key: publicKeyOf(ek), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: ek.nameAlg, oaepLabel: Buffer.from(label('IDENTITY')) }, seed)
    return { seed, encSecret: new Uint8Array(enc) }
  }
  // Part 1 Annex C.6.4: one-pass ECDH with an ephemeral key; seed = KDFe(Z, "IDENTITY", ephem.x, EK.x).
  const ecc = ek.ecc!
  const ecdh = createECDH(ECDH_CURVES[ecc.curve])
  ecdh.generateKeys()
  const size = ECC_SIZES[ecc.curve]
  const ekPoint = Buffer.concat([Buffer.from([4]), leftPad(ecc.x, size), leftPad(ecc.y, size)])
  let z: Buffer
  try {
    z = ecdh.computeSecret(ekPoint)
  } catch (e) {
    throw new KeywardError('ERR_EK_UNTRUSTED', 'EK public point is not on its curve', { cause: e })
  }
  const pub = ecdh.getPublicKey()
  const ex = pub.subarray(1, 1 + size)
  const ey = pub.subarray(1 + size)
  const seed = kdfe(ek.nameAlg, z, 'IDENTITY', ex, leftPad(ecc.x, size), n * 8)
  return { seed, encSecret: concatBytes(tpm2b(ex), tpm2b(ey)) }
}

/**
 * TPM2_MakeCredential(ek, credential, objectName). `ek` must be a restricted decryption key with
 * an AES-CFB symmetric definition (an EK or any storage key); `objectName` is the TPM name of the
 * object the credential is bound to (the AK); `credential` at most the nameAlg digest size.
 */
export function makeCredential(ek: TpmPublic, objectName: Uint8Array, credential: Uint8Array): MadeCredential {
  const need = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt
  if ((ek.attributes & need) !== need || (ek.attributes & TPMA_OBJECT.sign) !== 0 || !ek.symmetric) {
    throw new KeywardError('ERR_EK_UNTRUSTED', 'EK is not a restricted decryption key with a symmetric algorithm')
  }
  if (credential.length === 0 || credential.length > hashSize(ek.nameAlg)) {
    throw new KeywardError('ERR_BAD_REQUEST', `credential must be 1..${hashSize(ek.nameAlg)} bytes`)
  }
  if (objectName.length < 2) throw new KeywardError('ERR_BAD_REQUEST', 'object name is too short')
  const { seed, encSecret } = seedFor(ek)
  const keyBits = ek.symmetric.keyBits
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `EK symmetric key size ${keyBits}`)
  // Part 1 §24.4: symKey = KDFa(nameAlg, seed, "STORAGE", name, NULL, keyBits); IV of zeros (§24.4 note).
  const symKey = kdfa(ek.nameAlg, seed, 'STORAGE', objectName, new Uint8Array(0), keyBits)
  const cipher = createCipheriv(`aes-${keyBits}-cfb`, symKey, Buffer.alloc(16))
  const encIdentity = concatBytes(cipher.update(tpm2b(credential)), cipher.final())
  // Part 1 §24.5: HMACkey = KDFa(nameAlg, seed, "INTEGRITY", NULL, NULL, digest bits); outerHMAC over encIdentity ‖ name.
  const hmacKey = kdfa(ek.nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), hashSize(ek.nameAlg) * 8)
  const outerHmac = createHmac(ek.nameAlg, hmacKey).update(encIdentity).update(objectName).digest()
  const idObject = tpm2b(concatBytes(tpm2b(outerHmac), encIdentity))
  const encryptedSecret = tpm2b(encSecret)
  return { idObject, encryptedSecret, file: concatBytes(CRED_FILE_MAGIC, u32be(1), idObject, encryptedSecret) }
}

/** Compares the secret a workload returned after TPM2_ActivateCredential (constant-time). */
export function checkActivatedCredential(expected: Uint8Array, returned: Uint8Array): void {
  if (!constantTimeEqual(expected, returned)) throw new KeywardError('ERR_CREDENTIAL_ACTIVATION', 'credential activation failed')
}
