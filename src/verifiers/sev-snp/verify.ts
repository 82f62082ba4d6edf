// Trust checks for an SEV-SNP report, in order: the report signature by the VCEK/VLEK (AMD 56860
// "Attestation": ECDSA P-384 SHA-384 over bytes 0x000–0x29F), the chain ARK → ASK/ASVK →
// VCEK/VLEK (RSASSA-PSS SHA-384) at ctx.now against pinned roots, CRLs, the leaf's TCB and hwID
// extensions against REPORTED_TCB and CHIP_ID (AMD 57230), then REPORT_DATA against the binding.
import { verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { KeywardError, SignatureInvalidError } from '../../errors.js'
import { constantTimeEqual } from '../../util/bytes.js'
import { verifyCertificatePath, type CertInfo } from '../common/x509.js'
import type { AmdCertExtensions } from './certs.js'
import { checkRevocation, type ParsedCrl } from './crl.js'
import { ECDSA_COMPONENT_SIZE, P384_SCALAR_SIZE, PRODUCTS, SIG_USED, OFF, REPORT_SIZE, type SnpProduct } from './layout.js'
import { signedBytes, type AttestationReport, type TcbVersion } from './parse.js'
import type { AmdRoots } from './roots/index.js'

const FIXED = 'report signature verification failed'

function isZero(b: Uint8Array, from = 0, to = b.length): boolean {
  let acc = 0
  for (let i = from; i < to; i++) acc |= b[i]!
  return acc === 0
}

/** Little-endian 72-byte R/S → big-endian 48-byte scalar; the upper 24 bytes must be zero. */
function scalar(le: Uint8Array): Uint8Array | undefined {
  if (le.length !== ECDSA_COMPONENT_SIZE || !isZero(le, P384_SCALAR_SIZE)) return undefined
  return le.slice(0, P384_SCALAR_SIZE).reverse()
}

/**
 * Checks SIGNATURE over signedBytes(report) with `key` (must be EC P-384). R/S padding and the
 * reserved rest of SIGNATURE must be zero. Failures are ERR_SIGNATURE_INVALID with a fixed message.
 */
export function verifyReportSignature(report: AttestationReport, key: KeyObject): void {
  if (report.signingKey === 'none') throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', 'report is not signed (SIGNING_KEY none)')
  const r = scalar(report.signatureR)
  const s = scalar(report.signatureS)
  if (!r || !s || !isZero(report.bytes, OFF.SIGNATURE + SIG_USED, REPORT_SIZE)) {
    throw new SignatureInvalidError(FIXED, { detail: { reason: 'non-zero signature padding' } })
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new SignatureInvalidError(FIXED, { detail: { reason: 'signing key is not EC P-384' } })
  }
  let ok: boolean
  try {
    ok = cryptoVerify('sha384', signedBytes(report), { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]))
  } catch {
    ok = false
  }
  if (!ok) throw new SignatureInvalidError(FIXED)
}

/** The product the report belongs to: CPUID (v3+) and the leaf's productName must agree. */
export function productOf(report: AttestationReport, ext: AmdCertExtensions): SnpProduct {
  if (report.product && ext.product && report.product !== ext.product) {
    throw new KeywardError('ERR_CHAIN_INVALID', `leaf certificate is for ${ext.product}, report CPUID says ${report.product}`)
  }
  const p = report.product ?? ext.product
  if (!p) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `unknown SEV-SNP product "${ext.productName}"`)
  return p
}

export interface ChainInput {
  leaf: CertInfo
  /** ASK (VCEK) or ASVK (VLEK) from the evidence; default: the shipped one for the product. */
  intermediate?: CertInfo | undefined
  /** ARK from the evidence: only a hint, it must be one of the anchors. */
  ark?: CertInfo | undefined
}

export interface ChainOptions {
  now: Date
  skewMs: number
  roots: AmdRoots
  /** Replaces the product's pinned ARK as the accepted root(s) (VerifyContext.trust.snp.arks). */
  arks?: CertInfo[] | undefined
  crls: ParsedCrl[]
}

/**
 * Verifies ARK → ASK/ASVK → leaf for `product` at opts.now. The leaf must be the kind the report
 * names (VCEK: carries hwID; VLEK: cspID and no hwID). Does not look at TCB or CHIP_ID.
 */
export function verifySnpChain(report: AttestationReport, product: SnpProduct, ext: AmdCertExtensions, certs: ChainInput, opts: ChainOptions): void {
  const vlek = report.signingKey === 'vlek'
  if (vlek ? ext.hwId !== undefined || ext.cspId === undefined : ext.hwId === undefined) {
    throw new KeywardError('ERR_CHAIN_INVALID', `leaf certificate is not a ${vlek ? 'VLEK' : 'VCEK'} as SIGNING_KEY says`)
  }
  const pinned = opts.roots[product]
  const anchors = opts.arks ?? [pinned.ark]
  const intermediate = certs.intermediate ?? (vlek ? pinned.asvk : pinned.ask)
  let ark = certs.ark
  if (ark && !anchors.some((a) => a.fingerprint === ark!.fingerprint)) {
    const other = PRODUCTS.find((p) => opts.roots[p].ark.fingerprint === ark!.fingerprint)
    if (other) throw new KeywardError('ERR_CHAIN_INVALID', `certificate chain is for ${other}, the report is ${product}`)
  }
  ark ??= anchors.find((a) => intermediate.cert.checkIssued(a.cert)) ?? anchors[0]!
  const names = ['ARK', vlek ? 'ASVK' : 'ASK', vlek ? 'VLEK' : 'VCEK']
  verifyCertificatePath([ark, intermediate, certs.leaf], anchors, { now: opts.now, skewMs: opts.skewMs, names, leafNotCA: true })
  checkRevocation(ark, intermediate, opts.crls, opts.now, opts.skewMs, names[1]!)
}

const COMPONENTS = ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const
type Component = (typeof COMPONENTS)[number]

function leafTcb(ext: AmdCertExtensions): Record<Component, number | undefined> {
  return { bootloader: ext.blSPL, tee: ext.teeSPL, snp: ext.snpSPL, microcode: ext.ucodeSPL, fmc: ext.fmcSPL }
}

/**
 * AMD 57230: the VCEK/VLEK is derived for one TCB, so its SPL extensions must equal REPORTED_TCB
 * component by component (fmc on Turin); all mismatches are reported together (ERR_TCB_MISMATCH).
 */
export function checkLeafTcb(report: AttestationReport, ext: AmdCertExtensions): void {
  const want = leafTcb(ext)
  const got = report.reportedTcb
  const bad: Record<string, { report: number | null; certificate: number | null }> = {}
  for (const c of COMPONENTS) {
    const g = (got as TcbVersion)[c]
    if (g !== want[c]) bad[c] = { report: g ?? null, certificate: want[c] ?? null }
  }
  if (Object.keys(bad).length > 0) {
    throw new KeywardError('ERR_TCB_MISMATCH', `REPORTED_TCB differs from the ${report.signingKey.toUpperCase()} (${Object.keys(bad).join(', ')})`, {
      detail: bad,
    })
  }
}

/**
 * VCEK only: hwID must equal CHIP_ID (Turin VCEKs carry 8 bytes = CHIP_ID[0..8], the rest of
 * CHIP_ID zero). A zero CHIP_ID (MASK_CHIP_ID) passes only when `allowMasked` is set.
 */
export function checkChipId(report: AttestationReport, ext: AmdCertExtensions, allowMasked: boolean): void {
  if (report.signingKey !== 'vcek') return
  const chip = report.chipId
  if (isZero(chip)) {
    if (allowMasked) return
    throw new KeywardError('ERR_CHIP_ID_MISMATCH', 'CHIP_ID is masked and masked chip ids are not allowed')
  }
  const hw = ext.hwId ?? new Uint8Array(0)
  const ok =
    hw.length === chip.length
      ? constantTimeEqual(hw, chip)
      : hw.length === 8 && constantTimeEqual(hw, chip.subarray(0, 8)) && isZero(chip, 8)
  if (!ok) throw new KeywardError('ERR_CHIP_ID_MISMATCH', 'VCEK hwID does not match CHIP_ID')
}

/** docs/protocol.md: REPORT_DATA[0..32] = binding digest, [32..64] zero; compared in constant time. */
export function checkReportBinding(report: AttestationReport, expected: Uint8Array): void {
  const rd = report.reportData
  const a = constantTimeEqual(rd.subarray(0, 32), expected)
  const b = constantTimeEqual(rd.subarray(32, 64), new Uint8Array(32))
  if (!(a && b)) throw new KeywardError('ERR_BINDING_MISMATCH', 'REPORT_DATA does not carry the binding digest')
}

export interface SnpAppraisal {
  /** Reject a guest whose policy allows debugging (ERR_DEBUG_ENCLAVE). */
  allowDebug?: boolean
  /** Minimum REPORTED_TCB per component (ERR_POLICY_DENIED when any is below). */
  minimumTcb?: Partial<Record<Component, number>>
}

/** Optional verifier-level floors; the CEL policy in src/policy can express the same over claims. */
export function checkAppraisal(report: AttestationReport, a: SnpAppraisal): void {
  if (a.allowDebug === false && report.policy.debug) {
    throw new KeywardError('ERR_DEBUG_ENCLAVE', 'guest policy allows debugging')
  }
  const below: Record<string, { reported: number | null; minimum: number }> = {}
  for (const c of COMPONENTS) {
    const min = a.minimumTcb?.[c]
    if (min === undefined) continue
    const v = report.reportedTcb[c]
    if (v === undefined || v < min) below[c] = { reported: v ?? null, minimum: min }
  }
  if (Object.keys(below).length > 0) {
    throw new KeywardError('ERR_POLICY_DENIED', `REPORTED_TCB below the minimum (${Object.keys(below).join(', ')})`, { detail: below })
  }
}
