// Verification of a Nitro attestation document, in a fixed order (Nitro Enclaves User Guide,
// "Attestation document validation"; jose-style): envelope shape (parse.ts) → alg allow-list
// (ES384, protected header) → COSE signature with the leaf key → certificate path from the pinned
// root through cabundle to the leaf at ctx.now → payload field rules → nonce / binding.
// A debug-mode enclave is reported (debug: true), not denied: that is policy's decision.
import type { KeyObject } from 'node:crypto'
import { EvidenceMalformedError, KeywardError, SignatureInvalidError } from '../../errors.js'
import { constantTimeEqual, toHex } from '../../util/bytes.js'
import { parseCertificate, verifyCertificatePath, type CertInfo } from '../common/x509.js'
import { requireCoseAlg, verifyCoseSign1 } from '../common/cose.js'
import type { VerifyContext } from '../types.js'
import type { NitroClaims } from '../../protocol/claims.js'
import { DEBUG_ZERO_PCRS, ENCLAVE_MEASUREMENT_PCR, NITRO_ALGS, NITROTPM_MEASUREMENT_PCR, type NitroKind } from './layout.js'
import { readAttestationDocument, readCaBundle, readSigningCertificate, type NitroDocument, type NitroEvidence } from './parse.js'
import { AWS_NITRO_ROOT_G1 } from './roots/index.js'

export type NitroDetails = {
  kind: NitroKind
  moduleId: string
  digest: string
  /** Document timestamp, ms since the epoch. */
  timestamp: number
  /** PCR index (decimal string) → lowercase hex, every PCR the document carries. */
  pcrs: { [index: string]: string }
  userData: string | null
  publicKey: string | null
  nonce: string | null
  /** Optional fields missing from the document (null and empty values are not absent). */
  absentFields: string[]
  /** SHA-256 of each certificate's DER, root first, leaf last. */
  certificateFingerprints: string[]
}

// RFC 5280 §4.2.1.3 digitalSignature in CertInfo.keyUsage's encoding (@peculiar/x509
// KeyUsageFlags.digitalSignature = 1; not imported here so reflect-metadata loads first via x509.ts).
const KU_DIGITAL_SIGNATURE = 1

function anchorsOf(ctx: VerifyContext): CertInfo[] {
  const roots = ctx.trust?.nitro?.roots
  if (roots === undefined) return [AWS_NITRO_ROOT_G1]
  return roots.map((r, i) => parseCertificate(new Uint8Array(r.raw), `trust.nitro.roots[${i}]`))
}

/** Checks the ES384 signature over the COSE Sig_structure with the leaf certificate's key. Leaves the chain unchecked. */
export function verifyNitroSignature(ev: NitroEvidence, leaf: CertInfo): void {
  let key: KeyObject
  try {
    // node decodes the SubjectPublicKeyInfo lazily: a certificate can parse yet hold a broken key
    key = leaf.cert.publicKey
  } catch (e) {
    throw new EvidenceMalformedError('nitro certificate: public key is malformed', { cause: e })
  }
  if (!verifyCoseSign1(ev.cose, key, 'ES384')) {
    throw new SignatureInvalidError('signature verification failed', { detail: { what: 'nitro COSE_Sign1', leaf: leaf.fingerprint } })
  }
}

/**
 * Verifies root → cabundle[1..] → leaf, where cabundle[0] must be one of `anchors` (AWS orders
 * the bundle root first). Validity at ctx.now ± ctx.clockSkewMs; the leaf must not be a CA and,
 * when it has keyUsage, must allow digitalSignature. Revocation is not checked (AWS publishes no
 * CRLs for this PKI; the User Guide says to disable CRL checking).
 */
export function verifyNitroChain(leaf: CertInfo, bundle: CertInfo[], anchors: CertInfo[], ctx: VerifyContext): void {
  const path = [...bundle, leaf]
  const names = [...bundle.map((_, i) => `cabundle[${i}]`), 'certificate']
  verifyCertificatePath(path, anchors, { now: ctx.now, skewMs: ctx.clockSkewMs ?? 60_000, names, leafNotCA: true })
  if (leaf.keyUsage !== undefined && (leaf.keyUsage & KU_DIGITAL_SIGNATURE) === 0) {
    throw new KeywardError('ERR_CHAIN_INVALID', 'certificate may not sign (keyUsage)')
  }
}

/** nonce and user_data against what the broker expects (docs/protocol.md §Binding), constant-time. */
export function checkNitroBinding(doc: NitroDocument, ctx: VerifyContext): void {
  if (ctx.expectedNonce !== undefined && (doc.nonce === null || !constantTimeEqual(doc.nonce, ctx.expectedNonce))) {
    throw new KeywardError('ERR_NONCE_MISMATCH', 'document nonce does not match the challenge')
  }
  if (ctx.expectedBinding !== undefined && (doc.userData === null || !constantTimeEqual(doc.userData, ctx.expectedBinding))) {
    throw new KeywardError('ERR_BINDING_MISMATCH', 'document user_data does not match the binding digest')
  }
}

function isZero(b: Uint8Array | undefined): boolean {
  return b !== undefined && b.every((x) => x === 0)
}

/** The whole check; see the module comment for the order. Returns claims or throws a KeywardError. */
export async function verifyNitroEvidence(ev: NitroEvidence, ctx: VerifyContext): Promise<NitroClaims<NitroDetails>> {
  requireCoseAlg(ev.cose, NITRO_ALGS, 'nitro attestation document')
  const leaf = parseCertificate(readSigningCertificate(ev.untrustedPayload), 'nitro certificate')
  verifyNitroSignature(ev, leaf)
  const bundle = readCaBundle(ev.untrustedPayload).map((c, i) => parseCertificate(c, `nitro cabundle[${i}]`))
  verifyNitroChain(leaf, bundle, anchorsOf(ctx), ctx)
  const doc = readAttestationDocument(ev.untrustedPayload)
  checkNitroBinding(doc, ctx)

  // readAttestationDocument guarantees the measured PCR is present
  const measurement = doc.pcrs.get(doc.kind === 'enclave' ? ENCLAVE_MEASUREMENT_PCR : NITROTPM_MEASUREMENT_PCR)!
  const pcrs: { [index: string]: string } = {}
  for (const [i, v] of doc.pcrs) pcrs[String(i)] = toHex(v)
  return {
    tee: 'nitro',
    measurement: toHex(measurement),
    debug: doc.kind === 'enclave' && DEBUG_ZERO_PCRS.every((i) => isZero(doc.pcrs.get(i))),
    issuedAt: new Date(doc.timestampMs).toISOString(),
    bindingData: doc.userData ?? new Uint8Array(0),
    nonce: doc.nonce,
    publicKey: doc.publicKey,
    pcrs: { sha384: doc.pcrs },
    details: {
      kind: doc.kind,
      moduleId: doc.moduleId,
      digest: doc.digest,
      timestamp: doc.timestampMs,
      pcrs,
      userData: doc.userData ? toHex(doc.userData) : null,
      publicKey: doc.publicKey ? toHex(doc.publicKey) : null,
      nonce: doc.nonce ? toHex(doc.nonce) : null,
      absentFields: doc.absent,
      certificateFingerprints: [...bundle, leaf].map((c) => c.fingerprint),
    },
  }
}
