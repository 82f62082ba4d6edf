// The SEV-SNP verifier: wire evidence → parsed report and certificates (decode) → verified,
// normalized claims (verify). See verify.ts for the order of checks.
import { z } from 'zod'
import { EvidenceMalformedError, KeywardError, asEvidenceError } from '../../errors.js'
import { fromB64, toHex } from '../../util/bytes.js'
import { parseCertificate, type CertInfo } from '../common/x509.js'
import type { Verifier, VerifyContext } from '../types.js'
import type { JsonObject, VerifiedClaims } from '../../protocol/claims.js'
import { parseCertTable, readAmdExtensions } from './certs.js'
import { parseCrl } from './crl.js'
import { createKdsCache, type KdsCache, type KdsFetch } from './kds.js'
import type { SnpProduct } from './layout.js'
import { parseAttestationReport, type AttestationReport, type TcbVersion } from './parse.js'
import { loadAmdRoots } from './roots/index.js'
import {
  checkAppraisal,
  checkChipId,
  checkLeafTcb,
  checkReportBinding,
  productOf,
  verifyReportSignature,
  verifySnpChain,
  type SnpAppraisal,
} from './verify.js'

export { parseAttestationReport, signedBytes } from './parse.js'
export type { AttestationReport, TcbVersion } from './parse.js'
export { createKdsCache } from './kds.js'
export type { KdsCache, KdsFetch } from './kds.js'

/**
 * Decoded `evidence` of a sev-snp attest request: the report parsed, the certificates located
 * (GHCB table entries bounds-checked) but kept as DER. X.509 is parsed in verify(): decode runs
 * before the broker spends the challenge nonce so that malformed structure costs no database
 * write, while certificate parsing (ASN.1 of up to seven certificates of up to 1 MiB each, the
 * attacker's choice) runs only once a nonce was spent on it, as for Nitro's cabundle (attest.ts).
 */
export interface SnpEvidence {
  report: AttestationReport
  /** DER of the VCEK or VLEK (from `vcek`, else the certificate table). */
  leafDer?: Uint8Array | undefined
  /** DER of the ASK/ASVK and ARK from the certificate table. */
  intermediateDer?: Uint8Array | undefined
  arkDer?: Uint8Array | undefined
  /** `chain` entries (DER), sorted into intermediate and ARK (self-issued) in verify(); they win over the table. */
  chainDers: Uint8Array[]
}

interface SnpCerts {
  leaf?: CertInfo | undefined
  intermediate?: CertInfo | undefined
  ark?: CertInfo | undefined
}

/** Parses the certificates decode() located (ERR_EVIDENCE_MALFORMED naming the bad one). */
function parseSnpCertificates(ev: SnpEvidence): SnpCerts {
  const out: SnpCerts = {}
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

const b64 = z.string().max(1 << 20)
const EvidenceSchema = z
  .object({ report: b64, vcek: b64.optional(), certTable: b64.optional(), chain: z.array(b64).max(4).optional() })
  .strict()

function bytesOf(s: string, what: string): Uint8Array {
  const b = fromB64(s)
  if (!b) throw new EvidenceMalformedError(`sev-snp evidence: ${what} is not base64`)
  return b
}

const selfIssued = (c: CertInfo): boolean => c.cert.subject === c.cert.issuer

/** Parses the wire evidence `{report, vcek?, certTable?, chain?}` (docs/protocol.md); explicit fields win over the table. */
export function decodeSnpEvidence(evidence: unknown): SnpEvidence {
  const p = EvidenceSchema.safeParse(evidence)
  if (!p.success) throw new EvidenceMalformedError('sev-snp evidence: expected {report, vcek?, certTable?, chain?}')
  try {
    const e = p.data
    const report = parseAttestationReport(bytesOf(e.report, 'report'))
    const out: SnpEvidence = { report, chainDers: (e.chain ?? []).map((c, i) => bytesOf(c, `chain[${i}]`)) }
    if (e.certTable !== undefined) {
      const t = parseCertTable(bytesOf(e.certTable, 'certTable'))
      out.leafDer = report.signingKey === 'vlek' ? t.vlek : t.vcek
      out.intermediateDer = t.ask
      out.arkDer = t.ark
    }
    if (e.vcek !== undefined) out.leafDer = bytesOf(e.vcek, 'vcek')
    return out
  } catch (err) {
    throw asEvidenceError(err, 'sev-snp evidence')
  }
}

const hex = toHex
const u64 = (v: bigint | undefined): string | null => (v === undefined ? null : `0x${v.toString(16).padStart(16, '0')}`)

function tcbJson(t: TcbVersion): JsonObject {
  const o: JsonObject = { raw: u64(t.raw), bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode }
  if (t.fmc !== undefined) o.fmc = t.fmc
  return o
}

/** The claims `details` for a verified report (JSON-safe: bytes hex, u64 as 0x-hex, small ints as numbers). */
export function reportDetails(r: AttestationReport, product: SnpProduct, productName: string, cspId: string | undefined): JsonObject {
  const { raw: policyRaw, ...policy } = r.policy
  const { raw: piRaw, ...platformInfo } = r.platformInfo
  return {
    version: r.version,
    guestSvn: r.guestSvn,
    vmpl: r.vmpl,
    policy: { raw: u64(policyRaw), ...policy },
    familyId: hex(r.familyId),
    imageId: hex(r.imageId),
    hostData: hex(r.hostData),
    reportData: hex(r.reportData),
    idKeyDigest: hex(r.idKeyDigest),
    authorKeyDigest: hex(r.authorKeyDigest),
    authorKeyEn: r.authorKeyEn,
    reportId: hex(r.reportId),
    reportIdMa: hex(r.reportIdMa),
    chipId: hex(r.chipId),
    maskChipKey: r.maskChipKey,
    signingKey: r.signingKey,
    cspId: cspId ?? null,
    platformInfo: { raw: u64(piRaw), ...platformInfo },
    currentTcb: tcbJson(r.currentTcb),
    reportedTcb: tcbJson(r.reportedTcb),
    committedTcb: tcbJson(r.committedTcb),
    launchTcb: tcbJson(r.launchTcb),
    product,
    productName,
    cpuidFamily: r.cpuid?.family ?? null,
    cpuidModel: r.cpuid?.model ?? null,
    cpuidStepping: r.cpuid?.stepping ?? null,
    currentMajor: r.currentVersion.major,
    currentMinor: r.currentVersion.minor,
    currentBuild: r.currentVersion.build,
    committedMajor: r.committedVersion.major,
    committedMinor: r.committedVersion.minor,
    committedBuild: r.committedVersion.build,
    launchMitVector: u64(r.launchMitVector),
    currentMitVector: u64(r.currentMitVector),
  }
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

export function createSevSnpVerifier(opts: SevSnpVerifierOptions = {}): Verifier<SnpEvidence> {
  const dir = opts.kdsDir ?? opts.certCacheDir
  const kds = opts.kds ?? (dir ? createKdsCache({ dir, ...(opts.kdsFetch ? { fetch: opts.kdsFetch } : {}) }) : undefined)
  return {
    tee: 'sev-snp',
    decode: decodeSnpEvidence,
    async verify(ev: SnpEvidence, ctx: VerifyContext): Promise<VerifiedClaims> {
      const r = ev.report
      const certs = parseSnpCertificates(ev)
      let { leaf, intermediate } = certs
      const crlDers = [...(opts.crls ?? []), ...(ctx.trust?.snp?.crls ?? [])]
      if (!leaf && kds) {
        const hit = await leafFromCache(kds, r)
        if (hit) {
          leaf = hit.leaf
          const chain = intermediate ? undefined : await kds.getChain(hit.product, 'vcek')
          if (chain?.[0]) intermediate = parseCertificate(chain[0], 'cached ASK')
          const crl = await kds.getCrl(hit.product, 'vcek')
          if (crl) crlDers.push(crl)
        }
      }
      if (!leaf) throw new KeywardError('ERR_CHAIN_INVALID', 'no VCEK/VLEK: not in the evidence nor in the certificate cache')
      // Signature first (verify.ts order), then everything derived from the certificates.
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
    },
  }
}

/** The default instance: pinned AMD roots, no certificate cache, masked chip ids refused. */
export const sevSnpVerifier: Verifier<SnpEvidence> = createSevSnpVerifier()
