// SEV-SNP evidence as guest-components' snp attester sends it (the `sev` crate's AttestationReport
// and CertTableEntry through serde_json), written from sev 6.3 AttestationReport::from_bytes, and
// a testOnly attester that signs reports through the testOnly AMD-like chain of the verifier tests.
import { X509Certificate } from 'node:crypto'
import { OFF } from '../../src/verifiers/sev-snp/layout.js'
import type { Verifier } from '../../src/verifiers/types.js'
import { signReport, snpFile, testOnlyPki, writeTcb, type TestOnlyPki } from '../verifiers/sev-snp/helpers.js'

const arr = (b: Uint8Array, off: number, n: number): number[] => [...b.subarray(off, off + n)]

/** sev TcbVersion::from_turin_bytes / from_legacy_bytes. */
function tcbJson(b: Uint8Array, off: number, turin: boolean) {
  const t = b.subarray(off, off + 8)
  return turin ? { fmc: t[0]!, bootloader: t[1]!, tee: t[2]!, snp: t[3]!, microcode: t[7]! } : { fmc: null, bootloader: t[0]!, tee: t[1]!, snp: t[6]!, microcode: t[7]! }
}

/** The serde_json form of sev's AttestationReport for report bytes `b`. */
export function sevReportJson(b: Uint8Array): Record<string, unknown> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const version = dv.getUint32(OFF.VERSION, true)
  const turin = version >= 3 ? b[OFF.CPUID_FAM_ID] === 0x1a : b.subarray(OFF.CHIP_ID + 8, OFF.CHIP_ID + 64).every((x) => x === 0)
  const u64 = (off: number) => Number(dv.getBigUint64(off, true))
  const ver = (off: number) => ({ major: b[off + 2]!, minor: b[off + 1]!, build: b[off]! })
  return {
    version,
    guest_svn: dv.getUint32(OFF.GUEST_SVN, true),
    policy: u64(OFF.POLICY),
    family_id: arr(b, OFF.FAMILY_ID, 16),
    image_id: arr(b, OFF.IMAGE_ID, 16),
    vmpl: dv.getUint32(OFF.VMPL, true),
    sig_algo: dv.getUint32(OFF.SIGNATURE_ALGO, true),
    current_tcb: tcbJson(b, OFF.CURRENT_TCB, turin),
    plat_info: u64(OFF.PLATFORM_INFO),
    key_info: dv.getUint32(OFF.FLAGS, true),
    report_data: arr(b, OFF.REPORT_DATA, 64),
    measurement: arr(b, OFF.MEASUREMENT, 48),
    host_data: arr(b, OFF.HOST_DATA, 32),
    id_key_digest: arr(b, OFF.ID_KEY_DIGEST, 48),
    author_key_digest: arr(b, OFF.AUTHOR_KEY_DIGEST, 48),
    report_id: arr(b, OFF.REPORT_ID, 32),
    report_id_ma: arr(b, OFF.REPORT_ID_MA, 32),
    reported_tcb: tcbJson(b, OFF.REPORTED_TCB, turin),
    cpuid_fam_id: version >= 3 ? b[OFF.CPUID_FAM_ID]! : null,
    cpuid_mod_id: version >= 3 ? b[OFF.CPUID_MOD_ID]! : null,
    cpuid_step: version >= 3 ? b[OFF.CPUID_STEP]! : null,
    chip_id: arr(b, OFF.CHIP_ID, 64),
    committed_tcb: tcbJson(b, OFF.COMMITTED_TCB, turin),
    current: ver(OFF.CURRENT_BUILD),
    committed: ver(OFF.COMMITTED_BUILD),
    launch_tcb: tcbJson(b, OFF.LAUNCH_TCB, turin),
    launch_mit_vector: version >= 5 ? u64(OFF.LAUNCH_MIT_VECTOR) : null,
    current_mit_vector: version >= 5 ? u64(OFF.CURRENT_MIT_VECTOR) : null,
    signature: { r: arr(b, OFF.SIGNATURE, 72), s: arr(b, OFF.SIGNATURE + 72, 72) },
  }
}

export const certEntry = (cert_type: string, der: Uint8Array) => ({ cert_type, data: [...der] })

/** The registered sev-snp verifier with a testOnly ARK as its trust anchor (as the harness passes a testOnly Nitro root). */
export function withArk(v: Verifier, ark: X509Certificate): Verifier {
  return { tee: v.tee, decode: (w) => v.decode(w), verify: (e, ctx) => v.verify(e, { ...ctx, trust: { ...ctx.trust, snp: { arks: [ark] } } }) }
}

export interface TestOnlySnp {
  pki: TestOnlyPki
  ark: X509Certificate
  /** The measurement of the reports (hex). */
  measurement: string
  /** guest-components snp evidence carrying `reportData` (padded to 64 bytes as the attester does). */
  evidence(reportData: Uint8Array, o?: { measurement?: Uint8Array }): Promise<Record<string, unknown>>
}

export async function testOnlySnp(): Promise<TestOnlySnp> {
  const pki = await testOnlyPki('Milan')
  const src = snpFile('milan-v3-oak.bin')
  const chip = src.slice(OFF.CHIP_ID, OFF.CHIP_ID + 64)
  const tcb = { bl: 4, tee: 0, snp: 24, ucode: 219 }
  const { vcek, key } = await pki.issueVcek({ tcb, hwId: chip })
  return {
    pki,
    ark: new X509Certificate(pki.ark.cert.raw),
    measurement: Buffer.from(src.subarray(OFF.MEASUREMENT, OFF.MEASUREMENT + 48)).toString('hex'),
    async evidence(reportData, o = {}) {
      const b = src.slice()
      writeTcb(b, OFF.REPORTED_TCB, tcb)
      const rd = new Uint8Array(64)
      rd.set(reportData.subarray(0, 64))
      b.set(rd, OFF.REPORT_DATA)
      if (o.measurement) b.set(o.measurement, OFF.MEASUREMENT)
      return {
        attestation_report: sevReportJson(signReport(b, key)),
        cert_chain: [certEntry('VCEK', new Uint8Array(vcek.cert.raw)), certEntry('ASK', new Uint8Array(pki.ask.cert.raw))],
      }
    },
  }
}
