// Trust checks for an SEV-SNP report, in order: the report signature by the VCEK/VLEK (AMD 56860
// "Attestation": ECDSA P-384 SHA-384 over bytes 0x000–0x29F), the chain ARK → ASK/ASVK →
// VCEK/VLEK (RSASSA-PSS SHA-384) at ctx.now against pinned roots, CRLs, the leaf's TCB and hwID
// extensions against REPORTED_TCB and CHIP_ID (AMD 57230), then REPORT_DATA against the binding,
// then the optional floors of the options (checkAppraisal). verifySnpEvidence runs them all.
import { verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { KeywardError, SignatureInvalidError, asEvidenceError } from '../../errors.js'
import type { SevSnpClaims } from '../../protocol/claims.js'
import { constantTimeEqual, toHex } from '../../util/bytes.js'
import { parseCertificate, verifyCertificatePath, type CertInfo } from '../common/x509.js'
import type { VerifyContext } from '../types.js'
import { readAmdExtensions, type AmdCertExtensions } from './certs.js'
import { checkRevocation, parseCrl, type ParsedCrl } from './crl.js'
import type { SnpEvidence } from './decode.js'
import { reportDetails } from './details.js'
import type { KdsCache, KdsFetch } from './kds.js'
import { ECDSA_COMPONENT_SIZE, P384_SCALAR_SIZE, PRODUCTS, SIG_USED, OFF, REPORT_SIZE, type SnpProduct } from './layout.js'
import { signedBytes, type AttestationReport, type TcbVersion } from './parse.js'
import { loadAmdRoots, type AmdRoots } from './roots/index.js'

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

/** What createSevSnpVerifier is configured with (go-sev-guest's verify.Options and validate.Options in one). */
export interface SevSnpVerifierOptions extends SnpAppraisal {
  /** Directory of the KDS certificate cache (kds.ts); used when the evidence carries no VCEK. */
  kdsDir?: string
  /** Alias of kdsDir (the name the broker's verifier registry uses). */
  certCacheDir?: string
  /** Fetch for KDS misses; without it the cache is read-only (offline broker). */
  kdsFetch?: KdsFetch
  /** A ready cache (takes precedence over kdsDir). */
  kds?: KdsCache
  /** Accept reports whose CHIP_ID is masked (all zero): the VCEK hwID check is then skipped. Default false. */
  allowMaskedChipId?: boolean
  /** CRLs (DER) applied to every verification, in addition to ctx.trust.snp.crls. */
  crls?: Uint8Array[]
}

const selfIssued = (c: CertInfo): boolean => c.cert.subject === c.cert.issuer

/** Parses the certificates decode() located (ERR_EVIDENCE_MALFORMED naming the bad one). */
function parseSnpCertificates(ev: SnpEvidence): Partial<ChainInput> {
  const out: Partial<ChainInput> = {}
  try {
    if (ev.leafDer) out.leaf = parseCertificate(ev.leafDer, 'VCEK/VLEK')
    if (ev.intermediateDer) out.intermediate = parseCertificate(ev.intermediateDer, 'certTable ASK')
    if (ev.arkDer) out.ark = parseCertificate(ev.arkDer, 'certTable ARK')
    for (const [i, der] of ev.chainDers.entries()) {
      const cert = parseCertificate(der, `chain[${i}]`)
      if (selfIssued(cert)) out.ark = cert
      else out.intermediate = cert
    }
  } catch (err) {
    throw asEvidenceError(err, 'sev-snp evidence')
  }
  return out
}

/** VCEK from the KDS cache: by CPUID product, or (v2 reports) each product whose TCB layout fits. */
async function leafFromCache(kds: KdsCache, r: AttestationReport): Promise<{ leaf: CertInfo; product: SnpProduct } | undefined> {
  if (r.signingKey !== 'vcek') return undefined
  const candidates: SnpProduct[] = r.product ? [r.product] : ['Milan', 'Genoa']
  for (const p of candidates) {
    const der = await kds.getVcek(p, r.chipId, r.reportedTcb)
    if (der) return { leaf: parseCertificate(der, 'cached VCEK'), product: p }
  }
  return undefined
}

/**
 * The whole check of decoded SNP evidence, in the order of the module comment. The leaf comes from
 * the evidence, else from opts.kds; pinned AMD roots unless ctx.trust.snp.arks replaces them.
 */
export async function verifySnpEvidence(ev: SnpEvidence, ctx: VerifyContext, opts: SevSnpVerifierOptions): Promise<SevSnpClaims> {
  const r = ev.report
  const certs = parseSnpCertificates(ev)
  let { leaf, intermediate } = certs
  const crlDers = [...(opts.crls ?? []), ...(ctx.trust?.snp?.crls ?? [])]
  if (!leaf && opts.kds) {
    const hit = await leafFromCache(opts.kds, r)
    if (hit) {
      leaf = hit.leaf
      const chain = intermediate ? undefined : await opts.kds.getChain(hit.product, 'vcek')
      if (chain?.[0]) intermediate = parseCertificate(chain[0], 'cached ASK')
      const crl = await opts.kds.getCrl(hit.product, 'vcek')
      if (crl) crlDers.push(crl)
    }
  }
  if (!leaf) throw new KeywardError('ERR_CHAIN_INVALID', 'no VCEK/VLEK: not in the evidence nor in the certificate cache')
  // Signature first, then everything derived from the certificates.
  verifyReportSignature(r, leaf.cert.publicKey)
  const ext = readAmdExtensions(leaf)
  const product = productOf(r, ext)
  const arks = ctx.trust?.snp?.arks?.map((x, i) => parseCertificate(new Uint8Array(x.raw), `trust.snp.arks[${i}]`))
  verifySnpChain(r, product, ext, { leaf, intermediate, ark: certs.ark }, {
    now: ctx.now,
    skewMs: ctx.clockSkewMs ?? 60_000,
    roots: loadAmdRoots(),
    arks,
    crls: crlDers.map(parseCrl),
  })
  checkLeafTcb(r, ext)
  checkChipId(r, ext, opts.allowMaskedChipId ?? false)
  if (ctx.expectedBinding !== undefined) checkReportBinding(r, ctx.expectedBinding)
  checkAppraisal(r, opts)
  return {
    tee: 'sev-snp',
    measurement: toHex(r.measurement),
    debug: r.policy.debug,
    issuedAt: null,
    bindingData: r.reportData,
    nonce: null,
    publicKey: null,
    details: reportDetails(r, product, ext.productName, ext.cspId),
  }
}
