// Structure of a Nitro attestation document: COSE_Sign1 shape and the payload's fields, with the
// CDDL types and sizes from layout.ts. Nothing here checks a signature or a certificate: every
// value read from the payload is untrusted until verify.ts has checked the signature and chain.
import { EvidenceMalformedError } from '../../errors.js'
import { decodeCborStrict, cborTypeName, isCborMap, type CborMap, type CborValue } from '../../protocol/cbor.js'
import { decodeCoseSign1, type CoseSign1 } from '../common/cose.js'
import {
  CERT_MAX, CERT_MIN, DIGEST_SHA384, ENCLAVE_MEASUREMENT_PCR, FIELD, NITROTPM_MEASUREMENT_PCR, KNOWN_FIELDS, MAX_DOCUMENT_BYTES, MODULE_ID_MAX,
  PCR_INDEX_MAX, PCR_SIZES, TIMESTAMP_MAX_MS, USER_DATA_MAX, type NitroKind,
} from './layout.js'

const WHAT = 'nitro attestation document'

/** A decoded document: envelope plus the payload map, both unverified. */
export interface NitroEvidence {
  cose: CoseSign1
  /** The payload's CBOR map; its fields are read by readCertificates / readAttestationDocument. */
  untrustedPayload: CborMap
}

/** The payload fields, typed. Built only from a payload whose signature verified. */
export interface NitroDocument {
  kind: NitroKind
  moduleId: string
  digest: typeof DIGEST_SHA384
  timestampMs: number
  /** PCR index → value, ascending by index. */
  pcrs: Map<number, Uint8Array>
  certificate: Uint8Array
  cabundle: Uint8Array[]
  /** null when the field is CBOR null or absent; see `absent` to tell the two apart. */
  publicKey: Uint8Array | null
  userData: Uint8Array | null
  nonce: Uint8Array | null
  /** Optional fields (public_key, user_data, nonce) missing from the map (as opposed to null). */
  absent: string[]
}

/**
 * Decodes the COSE_Sign1 envelope (tagged or untagged) and the payload as a strict CBOR map.
 * The payload map may be indefinite-length: the NSM has emitted it that way since 2025. Does not
 * check the algorithm, signature, chain or any payload field.
 */
export function parseNitroDocument(bytes: Uint8Array): NitroEvidence {
  if (bytes.length > MAX_DOCUMENT_BYTES) throw new EvidenceMalformedError(`${WHAT}: ${bytes.length} bytes exceeds ${MAX_DOCUMENT_BYTES}`)
  const cose = decodeCoseSign1(bytes, { what: WHAT })
  const payload = decodeCborStrict(cose.payload, { what: `${WHAT} payload`, allowIndefiniteMaps: true })
  if (!isCborMap(payload)) throw new EvidenceMalformedError(`${WHAT}: payload is not a map`)
  return { cose, untrustedPayload: payload }
}

function field(m: CborMap, name: string): CborValue | undefined {
  return m.get(name)
}

function bytesField(m: CborMap, name: string, min: number, max: number): Uint8Array {
  const v = field(m, name)
  if (!(v instanceof Uint8Array)) throw new EvidenceMalformedError(`${WHAT}: ${name} is ${cborTypeName(v)}, expected bytes`)
  if (v.length < min || v.length > max) throw new EvidenceMalformedError(`${WHAT}: ${name} is ${v.length} bytes, allowed ${min}..${max}`)
  return v
}

/** Optional `user_data`-typed field: absent → undefined, null → null, else 0..1024 bytes. */
function optionalBytes(m: CborMap, name: string): Uint8Array | null | undefined {
  const v = field(m, name)
  if (v === undefined || v === null) return v
  return bytesField(m, name, 0, USER_DATA_MAX)
}

/** The signing certificate (`cert = bytes .size (1..1024)`): all the signature check needs. */
export function readSigningCertificate(payload: CborMap): Uint8Array {
  return bytesField(payload, FIELD.certificate, CERT_MIN, CERT_MAX)
}

/** The CA bundle, root first (`cabundle: [* cert]`, non-empty: the root is always there). */
export function readCaBundle(payload: CborMap): Uint8Array[] {
  const cb = field(payload, FIELD.cabundle)
  if (!Array.isArray(cb)) throw new EvidenceMalformedError(`${WHAT}: cabundle is ${cborTypeName(cb)}, expected array`)
  if (cb.length === 0) throw new EvidenceMalformedError(`${WHAT}: cabundle is empty`)
  return cb.map((c, i) => {
    if (!(c instanceof Uint8Array)) throw new EvidenceMalformedError(`${WHAT}: cabundle[${i}] is ${cborTypeName(c)}, expected bytes`)
    if (c.length < CERT_MIN || c.length > CERT_MAX) throw new EvidenceMalformedError(`${WHAT}: cabundle[${i}] is ${c.length} bytes, allowed ${CERT_MIN}..${CERT_MAX}`)
    return c
  })
}

/** Both certificate fields. */
export function readCertificates(payload: CborMap): { certificate: Uint8Array; cabundle: Uint8Array[] } {
  return { certificate: readSigningCertificate(payload), cabundle: readCaBundle(payload) }
}

function readPcrs(v: CborValue | undefined, name: string): Map<number, Uint8Array> {
  if (!isCborMap(v)) throw new EvidenceMalformedError(`${WHAT}: ${name} is ${cborTypeName(v)}, expected map`)
  if (v.size === 0) throw new EvidenceMalformedError(`${WHAT}: ${name} is empty`)
  const out = new Map<number, Uint8Array>()
  for (const [k, val] of v) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > PCR_INDEX_MAX) {
      throw new EvidenceMalformedError(`${WHAT}: ${name} index ${String(k)} outside 0..${PCR_INDEX_MAX}`)
    }
    if (!(val instanceof Uint8Array) || !PCR_SIZES.includes(val.length)) {
      throw new EvidenceMalformedError(`${WHAT}: ${name}[${k}] must be ${PCR_SIZES.join('/')} bytes`)
    }
    out.set(k, val)
  }
  return new Map([...out].sort((a, b) => a[0] - b[0]))
}

/**
 * Reads every payload field with its CDDL type and size, and requires the PCR that claims use as
 * the measurement (PCR0 for enclaves, PCR4 for NitroTPM). Unknown fields are rejected (a new field
 * means a format change to review, not something to pass through). Exactly one of `pcrs`
 * (enclave) and `nitrotpm_pcrs` (NitroTPM) must be present. Does not judge PCR values.
 */
export function readAttestationDocument(payload: CborMap): NitroDocument {
  for (const k of payload.keys()) {
    if (typeof k !== 'string' || !KNOWN_FIELDS.has(k)) throw new EvidenceMalformedError(`${WHAT}: unknown field ${String(k)}`)
  }
  const moduleId = field(payload, FIELD.moduleId)
  if (typeof moduleId !== 'string' || moduleId.length === 0 || Buffer.byteLength(moduleId) > MODULE_ID_MAX) {
    throw new EvidenceMalformedError(`${WHAT}: module_id must be text of 1..${MODULE_ID_MAX} bytes`)
  }
  const digest = field(payload, FIELD.digest)
  if (digest !== DIGEST_SHA384) throw new EvidenceMalformedError(`${WHAT}: digest must be "${DIGEST_SHA384}"`)
  const ts = field(payload, FIELD.timestamp)
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts <= 0 || ts > TIMESTAMP_MAX_MS) {
    throw new EvidenceMalformedError(`${WHAT}: timestamp must be a positive integer of milliseconds`)
  }
  const enclavePcrs = field(payload, FIELD.pcrs)
  const tpmPcrs = field(payload, FIELD.nitrotpmPcrs)
  if ((enclavePcrs === undefined) === (tpmPcrs === undefined)) {
    throw new EvidenceMalformedError(`${WHAT}: exactly one of pcrs and nitrotpm_pcrs must be present`)
  }
  const kind: NitroKind = enclavePcrs !== undefined ? 'enclave' : 'nitrotpm'
  const pcrs = kind === 'enclave' ? readPcrs(enclavePcrs, FIELD.pcrs) : readPcrs(tpmPcrs, FIELD.nitrotpmPcrs)
  const measured = kind === 'enclave' ? ENCLAVE_MEASUREMENT_PCR : NITROTPM_MEASUREMENT_PCR
  if (!pcrs.has(measured)) throw new EvidenceMalformedError(`${WHAT}: PCR${measured} missing`)
  const { certificate, cabundle } = readCertificates(payload)
  const absent: string[] = []
  const opt = (name: string): Uint8Array | null => {
    const v = optionalBytes(payload, name)
    if (v === undefined) absent.push(name)
    return v ?? null
  }
  const publicKey = opt(FIELD.publicKey)
  const userData = opt(FIELD.userData)
  const nonce = opt(FIELD.nonce)
  return { kind, moduleId, digest: DIGEST_SHA384, timestampMs: ts, pcrs, certificate, cabundle, publicKey, userData, nonce, absent }
}
