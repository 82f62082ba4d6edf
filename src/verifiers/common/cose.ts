// COSE_Sign1 (RFC 9052 §4.2) decoding and signature checks, generic over the payload: Nitro
// attestation documents use it today, other TEEs' CBOR evidence (e.g. EAT/CCA tokens) can reuse it.
// The structure is decoded strictly (src/protocol/cbor.ts); the protected header is kept as the exact
// bytes received, because the signature covers those bytes, never a re-encoding.
import { verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { EvidenceMalformedError, KeywardError } from '../../errors.js'
import { decodeCborStrict, encodeCbor, isCborMap, type CborMap, type CborValue } from '../../protocol/cbor.js'

/** RFC 9052 §4.2: the CBOR tag of a tagged COSE_Sign1. */
export const COSE_SIGN1_TAG = 18
/** RFC 9052 §3.1 common header labels. */
export const COSE_HEADER = { alg: 1, crit: 2 } as const
/** RFC 9053 §2.1 ECDSA algorithm identifiers. */
export const COSE_ALG = { ES256: -7, ES384: -35, ES512: -36 } as const
export type CoseEcdsaAlg = keyof typeof COSE_ALG

// RFC 9053 §2.1: hash, curve and raw r||s signature size for each ECDSA algorithm.
const ECDSA: Record<CoseEcdsaAlg, { hash: string; curve: string; sigBytes: number }> = {
  ES256: { hash: 'sha256', curve: 'prime256v1', sigBytes: 64 },
  ES384: { hash: 'sha384', curve: 'secp384r1', sigBytes: 96 },
  ES512: { hash: 'sha512', curve: 'secp521r1', sigBytes: 132 },
}

export interface CoseSign1 {
  /** True when the input carried tag 18. */
  tagged: boolean
  /** The protected header bstr contents exactly as received (covered by the signature). */
  protectedBytes: Uint8Array
  protectedHeader: CborMap
  /** Not covered by the signature: never trust what it says. */
  untrustedUnprotectedHeader: CborMap
  payload: Uint8Array
  signature: Uint8Array
}

export interface DecodeCoseOptions {
  what?: string
  maxBytes?: number
}

/**
 * Decodes a COSE_Sign1, tagged (18) or untagged. Checks shape only: a 4-element array of
 * bstr-wrapped protected map (or empty bstr), unprotected map, bstr payload (detached payloads
 * are rejected), bstr signature, with no label in both headers (RFC 9052 §3). Does not check
 * the algorithm or the signature: see requireCoseAlg and verifyCoseSign1.
 */
export function decodeCoseSign1(bytes: Uint8Array, opts: DecodeCoseOptions = {}): CoseSign1 {
  const what = opts.what ?? 'COSE_Sign1'
  if (bytes.length === 0) throw new EvidenceMalformedError(`${what}: empty`)
  // 0xd2 is tag 18 in its only preferred encoding; any other tag fails in the strict decoder.
  const tagged = bytes[0] === 0xc0 + COSE_SIGN1_TAG
  const body = decodeCborStrict(tagged ? bytes.subarray(1) : bytes, { what, ...(opts.maxBytes ? { maxBytes: opts.maxBytes } : {}) })
  if (!Array.isArray(body) || body.length !== 4) throw new EvidenceMalformedError(`${what}: not a 4-element array`)
  const [prot, unprot, payload, signature] = body as [CborValue, CborValue, CborValue, CborValue]
  if (!(prot instanceof Uint8Array)) throw new EvidenceMalformedError(`${what}: protected header is not a byte string`)
  let protectedHeader: CborMap
  if (prot.length === 0) {
    protectedHeader = new Map()
  } else {
    const h = decodeCborStrict(prot, { what: `${what} protected header` })
    if (!isCborMap(h)) throw new EvidenceMalformedError(`${what}: protected header is not a map`)
    protectedHeader = h
  }
  if (!isCborMap(unprot)) throw new EvidenceMalformedError(`${what}: unprotected header is not a map`)
  for (const k of unprot.keys()) {
    if (protectedHeader.has(k)) throw new EvidenceMalformedError(`${what}: header label ${String(k)} in both header buckets`)
  }
  if (payload === null) throw new EvidenceMalformedError(`${what}: detached payload not supported`)
  if (!(payload instanceof Uint8Array)) throw new EvidenceMalformedError(`${what}: payload is not a byte string`)
  if (!(signature instanceof Uint8Array)) throw new EvidenceMalformedError(`${what}: signature is not a byte string`)
  return { tagged, protectedBytes: prot, protectedHeader, untrustedUnprotectedHeader: unprot, payload, signature }
}

/** RFC 9052 §4.4: Sig_structure = ["Signature1", body_protected, external_aad, payload], deterministically encoded. */
export function sigStructure1(protectedBytes: Uint8Array, payload: Uint8Array, externalAad: Uint8Array = new Uint8Array(0)): Uint8Array {
  return encodeCbor(['Signature1', protectedBytes, externalAad, payload])
}

/**
 * Returns the algorithm named by the protected header's `alg` when it is in `allowed`.
 * Missing or mistyped alg: ERR_EVIDENCE_MALFORMED; a well-formed alg outside the allow-list,
 * or any `crit` header (none are understood): ERR_EVIDENCE_UNSUPPORTED. The unprotected
 * header is never consulted (RFC 9052 §3.1: alg belongs in the protected bucket).
 */
export function requireCoseAlg<A extends CoseEcdsaAlg>(msg: CoseSign1, allowed: readonly A[], what = 'COSE_Sign1'): A {
  const alg = msg.protectedHeader.get(COSE_HEADER.alg)
  if (alg === undefined) throw new EvidenceMalformedError(`${what}: protected header has no alg`)
  if (typeof alg !== 'number' && typeof alg !== 'string' && typeof alg !== 'bigint') {
    throw new EvidenceMalformedError(`${what}: alg is not an integer or text`)
  }
  if (msg.protectedHeader.has(COSE_HEADER.crit)) {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `${what}: critical headers are not supported`)
  }
  const hit = allowed.find((a) => COSE_ALG[a] === alg)
  if (hit === undefined) {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `${what}: algorithm ${String(alg)} is not allowed`, {
      detail: { alg: String(alg), allowed: [...allowed] },
    })
  }
  return hit
}

/**
 * Verifies the COSE_Sign1 signature (raw r||s, RFC 9053 §2.1) over the Sig_structure with `key`,
 * which must be an EC key on the algorithm's curve. Returns false on any mismatch, never throws
 * for bad input.
 */
export function verifyCoseSign1(msg: CoseSign1, key: KeyObject, alg: CoseEcdsaAlg, externalAad?: Uint8Array): boolean {
  const p = ECDSA[alg]
  if (msg.signature.length !== p.sigBytes) return false
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== p.curve) return false
  try {
    return cryptoVerify(p.hash, sigStructure1(msg.protectedBytes, msg.payload, externalAad), { key, dsaEncoding: 'ieee-p1363' }, msg.signature)
  } catch {
    return false
  }
}
