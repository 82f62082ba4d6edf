// Structure-only parsing of TPM 2.0 evidence (TCG TPM 2.0 Library Part 2). Every parser is total:
// any byte string yields a value or a KeywardError (ERR_EVIDENCE_MALFORMED for bad structure,
// ERR_EVIDENCE_UNSUPPORTED for algorithms keyward does not handle). Nothing here checks a
// signature or trusts a value; see verify.ts.
import { createPublicKey, type KeyObject } from 'node:crypto'
import { EvidenceMalformedError, KeywardError, asEvidenceError } from '../../errors.js'
import { ByteReader } from '../../protocol/reader.js'
import type { HashName } from '../../util/bytes.js'
import {
  ECC_CURVES,
  HASH_ALGS,
  MAX,
  PCRS_FILE,
  PCR_SELECT_MAX,
  TPMA_OBJECT,
  TPML_DIGEST_MAX,
  TPML_PCR_SELECTION_MAX,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
} from './layout.js'

export interface PcrSelection {
  hash: HashName
  /** PCR indices in ascending order (the order the TPM hashes them, Part 1 §17.6.2). */
  pcrs: number[]
}

/** Part 2 §10.12.8 TPMS_ATTEST with TPMS_QUOTE_INFO (type TPM_ST_ATTEST_QUOTE). */
export interface TpmsAttest {
  qualifiedSigner: Uint8Array
  extraData: Uint8Array
  clock: bigint
  resetCount: number
  restartCount: number
  safe: boolean
  firmwareVersion: bigint
  pcrSelection: PcrSelection[]
  pcrDigest: Uint8Array
  /** The exact bytes the AK signed. */
  raw: Uint8Array
}

/** Part 2 §11.3.4 TPMT_SIGNATURE (RSASSA, RSAPSS, ECDSA). */
export type TpmtSignature =
  | { sigAlg: 'rsassa' | 'rsapss'; hash: HashName; sig: Uint8Array }
  | { sigAlg: 'ecdsa'; hash: HashName; r: Uint8Array; s: Uint8Array }

export type TpmScheme = { scheme: 'rsassa' | 'rsapss' | 'ecdsa' | 'oaep' | 'rsaes' | 'ecdh'; hash: HashName | null } | null

/** Part 2 §12.2.4 TPMT_PUBLIC for RSA and ECC keys. */
export interface TpmPublic {
  type: 'rsa' | 'ecc'
  nameAlg: HashName
  attributes: number
  authPolicy: Uint8Array
  /** TPMT_SYM_DEF_OBJECT: null for TPM_ALG_NULL (signing keys), else AES-CFB parameters (storage keys). */
  symmetric: { alg: 'aes'; keyBits: number; mode: 'cfb' } | null
  scheme: TpmScheme
  rsa?: { keyBits: number; exponent: number; modulus: Uint8Array }
  ecc?: { curve: 'P-256' | 'P-384' | 'P-521'; x: Uint8Array; y: Uint8Array }
  /** The TPMT_PUBLIC bytes (what the name hashes). */
  raw: Uint8Array
}

function hashById(id: number, what: string): HashName {
  const h = HASH_ALGS.get(id)
  if (!h) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `${what}: unsupported hash algorithm 0x${id.toString(16)}`)
  return h.name
}

export function hashSize(h: HashName): number {
  for (const v of HASH_ALGS.values()) if (v.name === h) return v.size
  /* c8 ignore next */
  return 0
}

function wrap<T>(what: string, f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw asEvidenceError(e, what)
  }
}

/** Part 2 §10.6.2 TPML_PCR_SELECTION (big-endian wire form). */
export function readPcrSelection(r: ByteReader): PcrSelection[] {
  const count = r.u32be('TPML_PCR_SELECTION.count')
  if (count > TPML_PCR_SELECTION_MAX) throw new EvidenceMalformedError(`${r.what}: ${count} PCR selections exceed ${TPML_PCR_SELECTION_MAX}`)
  const out: PcrSelection[] = []
  for (let i = 0; i < count; i++) {
    const hash = hashById(r.u16be('TPMS_PCR_SELECTION.hash'), r.what)
    const size = r.u8('TPMS_PCR_SELECTION.sizeofSelect')
    if (size > PCR_SELECT_MAX) throw new EvidenceMalformedError(`${r.what}: sizeofSelect ${size} exceeds ${PCR_SELECT_MAX}`)
    out.push({ hash, pcrs: bitmapToPcrs(r.bytesN(size, 'pcrSelect')) })
  }
  return out
}

function bitmapToPcrs(bits: Uint8Array): number[] {
  const pcrs: number[] = []
  for (let i = 0; i < bits.length * 8; i++) if ((bits[i >> 3]! >> (i & 7)) & 1) pcrs.push(i)
  return pcrs
}

/** Parses TPMS_ATTEST of a quote: magic, type TPM_ST_ATTEST_QUOTE, no trailing bytes. */
export function parseAttest(bytes: Uint8Array): TpmsAttest {
  return wrap('TPMS_ATTEST', () => {
    if (bytes.length > MAX.attest) throw new EvidenceMalformedError(`TPMS_ATTEST: ${bytes.length} bytes exceeds ${MAX.attest}`)
    const r = new ByteReader(bytes, 'TPMS_ATTEST')
    const magic = r.u32be('magic')
    if (magic !== TPM_GENERATED_VALUE) throw new EvidenceMalformedError(`TPMS_ATTEST: magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE`)
    const type = r.u16be('type')
    if (type !== TPM_ST_ATTEST_QUOTE) throw new EvidenceMalformedError(`TPMS_ATTEST: type 0x${type.toString(16)} is not TPM_ST_ATTEST_QUOTE`)
    const qualifiedSigner = r.sized16be('qualifiedSigner', MAX.name)
    const extraData = r.sized16be('extraData', MAX.data)
    const clock = r.u64be('clockInfo.clock')
    const resetCount = r.u32be('clockInfo.resetCount')
    const restartCount = r.u32be('clockInfo.restartCount')
    const safeByte = r.u8('clockInfo.safe')
    if (safeByte > 1) throw new EvidenceMalformedError(`TPMS_ATTEST: clockInfo.safe ${safeByte} is not a TPMI_YES_NO`)
    const firmwareVersion = r.u64be('firmwareVersion')
    const pcrSelection = readPcrSelection(r)
    const pcrDigest = r.sized16be('pcrDigest', MAX.digest)
    r.end()
    return {
      qualifiedSigner, extraData, clock, resetCount, restartCount, safe: safeByte === 1,
      firmwareVersion, pcrSelection, pcrDigest, raw: bytes.slice(),
    }
  })
}

/** Parses TPMT_SIGNATURE; TPM_ALG_NULL and other schemes are ERR_EVIDENCE_UNSUPPORTED. */
export function parseSignature(bytes: Uint8Array): TpmtSignature {
  return wrap('TPMT_SIGNATURE', () => {
    const r = new ByteReader(bytes, 'TPMT_SIGNATURE')
    const alg = r.u16be('sigAlg')
    let out: TpmtSignature
    if (alg === TPM_ALG.RSASSA || alg === TPM_ALG.RSAPSS) {
      const hash = hashById(r.u16be('hash'), 'TPMT_SIGNATURE')
      const sig = r.sized16be('sig', MAX.rsaKeyBytes)
      out = { sigAlg: alg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hash, sig }
    } else if (alg === TPM_ALG.ECDSA) {
      const hash = hashById(r.u16be('hash'), 'TPMT_SIGNATURE')
      const rr = r.sized16be('signatureR', MAX.eccKeyBytes)
      const s = r.sized16be('signatureS', MAX.eccKeyBytes)
      out = { sigAlg: 'ecdsa', hash, r: rr, s }
    } else {
      throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `TPMT_SIGNATURE: unsupported sigAlg 0x${alg.toString(16)}`)
    }
    r.end()
    return out
  })
}

const SCHEME_NAMES: ReadonlyMap<number, NonNullable<TpmScheme>['scheme']> = new Map([
  [TPM_ALG.RSASSA, 'rsassa'], [TPM_ALG.RSAPSS, 'rsapss'], [TPM_ALG.OAEP, 'oaep'], [TPM_ALG.RSAES, 'rsaes'],
  [TPM_ALG.ECDSA, 'ecdsa'], [TPM_ALG.ECDH, 'ecdh'],
])

// Part 2 §11.2.3 TPMT_SYM_DEF_OBJECT
function readSymmetric(r: ByteReader): TpmPublic['symmetric'] {
  const alg = r.u16be('symmetric.algorithm')
  if (alg === TPM_ALG.NULL) return null
  if (alg !== TPM_ALG.AES) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `TPMT_PUBLIC: unsupported symmetric 0x${alg.toString(16)}`)
  const keyBits = r.u16be('symmetric.keyBits')
  const mode = r.u16be('symmetric.mode')
  if (mode !== TPM_ALG.CFB) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `TPMT_PUBLIC: unsupported symmetric mode 0x${mode.toString(16)}`)
  return { alg: 'aes', keyBits, mode: 'cfb' }
}

// Part 2 §11.2.4.5 TPMT_RSA_SCHEME / §11.2.5.6 TPMT_ECC_SCHEME: RSAES has no details, the others carry a hash.
function readScheme(r: ByteReader): TpmScheme {
  const id = r.u16be('scheme.scheme')
  if (id === TPM_ALG.NULL) return null
  const scheme = SCHEME_NAMES.get(id)
  if (!scheme) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `TPMT_PUBLIC: unsupported scheme 0x${id.toString(16)}`)
  if (scheme === 'rsaes') return { scheme, hash: null }
  return { scheme, hash: hashById(r.u16be('scheme.hashAlg'), 'TPMT_PUBLIC') }
}

function readTpmtPublic(r: ByteReader, start: number): TpmPublic {
  const type = r.u16be('type')
  if (type !== TPM_ALG.RSA && type !== TPM_ALG.ECC) {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `TPMT_PUBLIC: unsupported type 0x${type.toString(16)}`)
  }
  const nameAlg = hashById(r.u16be('nameAlg'), 'TPMT_PUBLIC')
  const attributes = r.u32be('objectAttributes')
  const authPolicy = r.sized16be('authPolicy', MAX.authPolicy)
  const symmetric = readSymmetric(r)
  const scheme = readScheme(r)
  const base = { nameAlg, attributes, authPolicy, symmetric, scheme }
  if (type === TPM_ALG.RSA) {
    const keyBits = r.u16be('rsa.keyBits')
    const exponent = r.u32be('rsa.exponent')
    const modulus = r.sized16be('unique.rsa', MAX.rsaKeyBytes)
    if (keyBits < 1024 || modulus.length !== keyBits / 8) {
      throw new EvidenceMalformedError(`TPMT_PUBLIC: RSA modulus of ${modulus.length} bytes does not match keyBits ${keyBits}`)
    }
    return { type: 'rsa', ...base, rsa: { keyBits, exponent: exponent === 0 ? 65537 : exponent, modulus }, raw: r.bytes.slice(start, r.pos) }
  }
  const curveId = r.u16be('ecc.curveID')
  const curve = ECC_CURVES.get(curveId)
  if (!curve) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `TPMT_PUBLIC: unsupported curve 0x${curveId.toString(16)}`)
  const kdf = r.u16be('ecc.kdf.scheme')
  if (kdf !== TPM_ALG.NULL) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `TPMT_PUBLIC: unsupported ECC kdf 0x${kdf.toString(16)}`)
  const x = r.sized16be('unique.ecc.x', MAX.eccKeyBytes)
  const y = r.sized16be('unique.ecc.y', MAX.eccKeyBytes)
  if (x.length > curve.size || y.length > curve.size || x.length === 0 || y.length === 0) {
    throw new EvidenceMalformedError(`TPMT_PUBLIC: ECC point does not fit ${curve.name}`)
  }
  return { type: 'ecc', ...base, ecc: { curve: curve.name, x, y }, raw: r.bytes.slice(start, r.pos) }
}

/** Parses a TPMT_PUBLIC (no size prefix). */
export function parseTpmtPublic(bytes: Uint8Array): TpmPublic {
  return wrap('TPMT_PUBLIC', () => {
    if (bytes.length > MAX.public) throw new EvidenceMalformedError(`TPMT_PUBLIC: ${bytes.length} bytes exceeds ${MAX.public}`)
    const r = new ByteReader(bytes, 'TPMT_PUBLIC')
    const p = readTpmtPublic(r, 0)
    r.end()
    return p
  })
}

/** Parses a TPM2B_PUBLIC (u16 size, then exactly that many bytes of TPMT_PUBLIC). */
export function parseTpm2bPublic(bytes: Uint8Array): TpmPublic {
  return wrap('TPM2B_PUBLIC', () => {
    const r = new ByteReader(bytes, 'TPM2B_PUBLIC')
    const inner = r.sized16be('publicArea', MAX.public)
    r.end()
    return parseTpmtPublic(inner)
  })
}

/**
 * Parses a TPM public area given as TPM2B_PUBLIC or TPMT_PUBLIC (detected: a TPM2B starts with
 * its own length). A TPMT_PUBLIC's first u16 is its type (0x0001/0x0023), which never equals
 * length-2 for a real key, so the detection is unambiguous.
 */
export function parseTpmPublic(bytes: Uint8Array): TpmPublic {
  if (bytes.length >= 2 && ((bytes[0]! << 8) | bytes[1]!) === bytes.length - 2) return parseTpm2bPublic(bytes)
  return parseTpmtPublic(bytes)
}

// Importing a key (JWK → KeyObject) costs more than verifying a signature with it (P-256: ~2x);
// AKs repeat across requests, so KeyObjects (immutable) are memoized by the public area's bytes.
const KEY_CACHE_MAX = 1024
const keyCache = new Map<string, KeyObject>()

/** The public key of a TPMT_PUBLIC as a node KeyObject (memoized by the TPMT_PUBLIC bytes). */
export function publicKeyOf(p: TpmPublic): KeyObject {
  const id = Buffer.from(p.raw).toString('base64')
  const hit = keyCache.get(id)
  if (hit) return hit
  const key = importKey(p)
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!)
  keyCache.set(id, key)
  return key
}

function importKey(p: TpmPublic): KeyObject {
  return wrap('TPMT_PUBLIC', () => {
    if (p.rsa) {
      const e = Buffer.alloc(4)
      e.writeUInt32BE(p.rsa.exponent)
      let i = 0
      while (i < 3 && e[i] === 0) i++
      return createPublicKey({
        key: { kty: 'RSA', n: Buffer.from(p.rsa.modulus).toString('base64url'), e: e.subarray(i).toString('base64url') },
        format: 'jwk',
      })
    }
    const ecc = p.ecc!
    const size = ECC_CURVES_SIZE[ecc.curve]
    return createPublicKey({
      key: { kty: 'EC', crv: ecc.curve, x: leftPad(ecc.x, size).toString('base64url'), y: leftPad(ecc.y, size).toString('base64url') },
      format: 'jwk',
    })
  })
}

const ECC_CURVES_SIZE = { 'P-256': 32, 'P-384': 48, 'P-521': 66 } as const

export function leftPad(b: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size)
  out.set(b, size - b.length)
  return out
}

export interface AkPublic {
  key: KeyObject
  /** The TPM public area when the AK came as TPM2B/TPMT_PUBLIC; absent for PEM/DER SPKI. */
  public?: TpmPublic
}

/**
 * Reads an attestation key given as PEM or DER SubjectPublicKeyInfo, TPM2B_PUBLIC or TPMT_PUBLIC
 * (detected). Only the TPM forms carry object attributes and a name; a bare SPKI proves neither.
 */
export function parseAkPublic(input: Uint8Array): AkPublic {
  const head = Buffer.from(input.subarray(0, 64)).toString('latin1')
  if (head.trimStart().startsWith('-----BEGIN')) {
    const text = Buffer.from(input).toString('utf8')
    try {
      const key = createPublicKey({ key: text, format: 'pem' })
      if (key.type !== 'public') throw new Error('not a public key')
      return { key }
    } catch (e) {
      throw new EvidenceMalformedError('AK: not a PEM public key', { cause: e })
    }
  }
  // DER SubjectPublicKeyInfo starts with SEQUENCE (0x30); no TPM2B/TPMT_PUBLIC keyward accepts does.
  if (input[0] === 0x30) {
    try {
      return { key: createPublicKey({ key: Buffer.from(input), format: 'der', type: 'spki' }) }
    } catch (e) {
      throw new EvidenceMalformedError('AK: not a DER SubjectPublicKeyInfo', { cause: e })
    }
  }
  const p = parseTpmPublic(input)
  return { key: publicKeyOf(p), public: p }
}

export interface PcrValues {
  selection: PcrSelection[]
  /** bank → PCR index → digest. */
  banks: Partial<Record<HashName, Map<number, Uint8Array>>>
}

/**
 * Parses the tpm2-tools "serialized" PCR file written by `tpm2_quote -o` (tpm2-tools 5.x
 * pcr.c pcr_fwrite_serialized): little-endian native TPML_PCR_SELECTION, u32 count, then that
 * many TPML_DIGEST; digests fill the selection in order (bank by bank, PCRs ascending).
 */
export function parsePcrsFile(bytes: Uint8Array): PcrValues {
  return wrap('PCR file', () => {
    const r = new ByteReader(bytes, 'PCR file')
    const count = r.u32le('TPML_PCR_SELECTION.count')
    if (count > TPML_PCR_SELECTION_MAX) throw new EvidenceMalformedError(`PCR file: ${count} selections exceed ${TPML_PCR_SELECTION_MAX}`)
    const selection: PcrSelection[] = []
    for (let i = 0; i < TPML_PCR_SELECTION_MAX; i++) {
      const hashId = r.u16le('hash')
      const size = r.u8('sizeofSelect')
      const bits = r.bytesN(PCR_SELECT_MAX, 'pcrSelect')
      r.skip(1, 'padding')
      if (i >= count) continue
      if (size > PCR_SELECT_MAX) throw new EvidenceMalformedError(`PCR file: sizeofSelect ${size} exceeds ${PCR_SELECT_MAX}`)
      if (bits.subarray(size).some((b) => b !== 0)) throw new EvidenceMalformedError('PCR file: PCR bits set beyond sizeofSelect')
      selection.push({ hash: hashById(hashId, 'PCR file'), pcrs: bitmapToPcrs(bits.subarray(0, size)) })
    }
    const lists = r.u32le('digest list count')
    const want = selection.reduce((n, s) => n + s.pcrs.length, 0)
    if (lists !== Math.ceil(want / TPML_DIGEST_MAX)) {
      throw new EvidenceMalformedError(`PCR file: ${lists} digest lists for ${want} selected PCRs`)
    }
    if (r.remaining !== lists * PCRS_FILE.tpmlDigestSize) throw new EvidenceMalformedError(`PCR file: size does not match ${lists} digest lists`)
    const digests: Uint8Array[] = []
    for (let l = 0; l < lists; l++) {
      const n = r.u32le('TPML_DIGEST.count')
      if (n > TPML_DIGEST_MAX) throw new EvidenceMalformedError(`PCR file: TPML_DIGEST.count ${n} exceeds ${TPML_DIGEST_MAX}`)
      for (let k = 0; k < TPML_DIGEST_MAX; k++) {
        const size = r.u16le('TPM2B_DIGEST.size')
        const buf = r.bytesN(PCRS_FILE.digestBufferSize, 'TPM2B_DIGEST.buffer')
        if (k >= n) continue
        if (size > PCRS_FILE.digestBufferSize) throw new EvidenceMalformedError(`PCR file: digest size ${size} exceeds 64`)
        digests.push(buf.slice(0, size))
      }
    }
    r.end()
    if (digests.length !== want) throw new EvidenceMalformedError(`PCR file: ${digests.length} digests for ${want} selected PCRs`)
    const banks: PcrValues['banks'] = {}
    let d = 0
    for (const s of selection) {
      const bank = (banks[s.hash] ??= new Map<number, Uint8Array>())
      for (const pcr of s.pcrs) {
        const v = digests[d++]!
        if (v.length !== hashSize(s.hash)) throw new EvidenceMalformedError(`PCR file: ${s.hash} PCR ${pcr} has ${v.length} bytes`)
        if (bank.has(pcr)) throw new EvidenceMalformedError(`PCR file: ${s.hash} PCR ${pcr} selected twice`)
        bank.set(pcr, v)
      }
    }
    return { selection, banks }
  })
}

/** Object attributes by name (TPMA_OBJECT). */
export function attributeNames(attributes: number): string[] {
  return Object.entries(TPMA_OBJECT).filter(([, bit]) => (attributes & bit) !== 0).map(([n]) => n)
}
