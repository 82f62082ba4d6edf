// Translates the SEV-SNP evidence guest-components send (attestation-agent/attester/src/snp: the
// `sev` crate's AttestationReport and CertTableEntry structures as serde_json writes them) into
// keyward's sev-snp wire evidence {report, vcek?, chain?}, for the existing verifier. Nothing is
// verified here: the report is written back into the 1184 bytes of AMD 56860 Table 23 exactly as
// sev's AttestationReport::write_bytes does, so the VCEK signature over bytes 0x000–0x29F checks
// the translation too (one wrong byte and the signature fails). Reserved ranges, which the JSON
// form does not carry, are written as zero, as the firmware does and the verifier requires.
import { z } from 'zod'
import { EvidenceMalformedError } from '../../errors.js'
import { OFF, REPORT_SIZE } from '../../verifiers/sev-snp/layout.js'

const u8 = z.number().int().min(0).max(0xff)
const u32 = z.number().int().min(0).max(0xffffffff)
/** u64 fields arrive as JSON numbers; past 2^53 JSON.parse has already lost bits, so they are refused. */
const u64 = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const bytes = (n: number) => z.array(u8).length(n)

const Tcb = z.object({ fmc: u8.nullable().optional(), bootloader: u8, tee: u8, snp: u8, microcode: u8 }).strict()
const Version = z.object({ major: u8, minor: u8, build: u8 }).strict()

/** sev 6.x/7.x `AttestationReport` (serde field names); the mitigation vectors exist from report version 5. */
const Report = z
  .object({
    version: u32,
    guest_svn: u32,
    policy: u64,
    family_id: bytes(16),
    image_id: bytes(16),
    vmpl: u32,
    sig_algo: u32,
    current_tcb: Tcb,
    plat_info: u64,
    key_info: u32,
    report_data: bytes(64),
    measurement: bytes(48),
    host_data: bytes(32),
    id_key_digest: bytes(48),
    author_key_digest: bytes(48),
    report_id: bytes(32),
    report_id_ma: bytes(32),
    reported_tcb: Tcb,
    cpuid_fam_id: u8.nullable().optional(),
    cpuid_mod_id: u8.nullable().optional(),
    cpuid_step: u8.nullable().optional(),
    chip_id: bytes(64),
    committed_tcb: Tcb,
    current: Version,
    committed: Version,
    launch_tcb: Tcb,
    launch_mit_vector: u64.nullable().optional(),
    current_mit_vector: u64.nullable().optional(),
    signature: z.object({ r: bytes(72), s: bytes(72) }).strict(),
  })
  .strict()

/** sev `CertType`: unit variants as strings, `OTHER(uuid)` as {"OTHER": uuid}. */
const CertType = z.union([z.enum(['Empty', 'ARK', 'ASK', 'VCEK', 'VLEK', 'CRL']), z.object({ OTHER: z.string().max(64) }).strict()])
const CertEntry = z.object({ cert_type: CertType, data: z.array(u8).max(16 * 1024) }).strict()

export const KbsSnpEvidence = z.object({ attestation_report: Report, cert_chain: z.array(CertEntry).max(8).nullable().optional() }).strict()
export type KbsSnpEvidence = z.infer<typeof KbsSnpEvidence>

/** keyward's sev-snp wire evidence (docs/protocol.md). */
export interface SnpWireEvidence {
  report: string
  vcek?: string
  chain?: string[]
  [k: string]: unknown
}

type Tcb = z.infer<typeof Tcb>

/** sev TcbVersion::to_turin_bytes when FMC is present (Turin), else to_legacy_bytes (Milan, Genoa). */
function tcbBytes(t: Tcb): number[] {
  return t.fmc !== null && t.fmc !== undefined
    ? [t.fmc, t.bootloader, t.tee, t.snp, 0, 0, 0, t.microcode]
    : [t.bootloader, t.tee, 0, 0, 0, 0, t.snp, t.microcode]
}

/** Writes the report as sev's AttestationReport::write_bytes does (layout: src/verifiers/sev-snp/layout.ts). */
export function reportBytes(r: KbsSnpEvidence['attestation_report']): Uint8Array {
  const out = new Uint8Array(REPORT_SIZE)
  const dv = new DataView(out.buffer)
  const u64le = (off: number, v: number) => dv.setBigUint64(off, BigInt(v), true)
  dv.setUint32(OFF.VERSION, r.version, true)
  dv.setUint32(OFF.GUEST_SVN, r.guest_svn, true)
  u64le(OFF.POLICY, r.policy)
  out.set(r.family_id, OFF.FAMILY_ID)
  out.set(r.image_id, OFF.IMAGE_ID)
  dv.setUint32(OFF.VMPL, r.vmpl, true)
  dv.setUint32(OFF.SIGNATURE_ALGO, r.sig_algo, true)
  out.set(tcbBytes(r.current_tcb), OFF.CURRENT_TCB)
  u64le(OFF.PLATFORM_INFO, r.plat_info)
  dv.setUint32(OFF.FLAGS, r.key_info, true)
  out.set(r.report_data, OFF.REPORT_DATA)
  out.set(r.measurement, OFF.MEASUREMENT)
  out.set(r.host_data, OFF.HOST_DATA)
  out.set(r.id_key_digest, OFF.ID_KEY_DIGEST)
  out.set(r.author_key_digest, OFF.AUTHOR_KEY_DIGEST)
  out.set(r.report_id, OFF.REPORT_ID)
  out.set(r.report_id_ma, OFF.REPORT_ID_MA)
  out.set(tcbBytes(r.reported_tcb), OFF.REPORTED_TCB)
  if (r.version >= 3) {
    out[OFF.CPUID_FAM_ID] = r.cpuid_fam_id ?? 0
    out[OFF.CPUID_MOD_ID] = r.cpuid_mod_id ?? 0
    out[OFF.CPUID_STEP] = r.cpuid_step ?? 0
  }
  out.set(r.chip_id, OFF.CHIP_ID)
  out.set(tcbBytes(r.committed_tcb), OFF.COMMITTED_TCB)
  out.set([r.current.build, r.current.minor, r.current.major], OFF.CURRENT_BUILD)
  out.set([r.committed.build, r.committed.minor, r.committed.major], OFF.COMMITTED_BUILD)
  out.set(tcbBytes(r.launch_tcb), OFF.LAUNCH_TCB)
  if (r.version >= 5) {
    u64le(OFF.LAUNCH_MIT_VECTOR, r.launch_mit_vector ?? 0)
    u64le(OFF.CURRENT_MIT_VECTOR, r.current_mit_vector ?? 0)
  }
  out.set(r.signature.r, OFF.SIGNATURE)
  out.set(r.signature.s, OFF.SIGNATURE + 72)
  return out
}

const b64 = (b: ArrayLike<number>): string => Buffer.from(Uint8Array.from(b)).toString('base64')

/**
 * guest-components `snp` evidence → keyward sev-snp wire evidence: the report bytes, the VCEK or
 * VLEK as the leaf (the first one, as Trustee's verifier takes it), ASK/ASVK and ARK as the chain.
 * CRL and OTHER entries are dropped: keyward's revocation input is its own configuration.
 */
export function translateSnpEvidence(primary: unknown): SnpWireEvidence {
  const p = KbsSnpEvidence.safeParse(primary)
  if (!p.success) {
    const i = p.error.issues[0]!
    throw new EvidenceMalformedError(`snp evidence: not the guest-components form at ${i.path.join('.') || '(evidence)'}: ${i.message}`)
  }
  const out: SnpWireEvidence = { report: b64(reportBytes(p.data.attestation_report)) }
  const chain: string[] = []
  for (const e of p.data.cert_chain ?? []) {
    if ((e.cert_type === 'VCEK' || e.cert_type === 'VLEK') && out.vcek === undefined) out.vcek = b64(e.data)
    else if (e.cert_type === 'ASK' || e.cert_type === 'ARK') chain.push(b64(e.data))
  }
  if (chain.length > 0) out.chain = chain
  return out
}
