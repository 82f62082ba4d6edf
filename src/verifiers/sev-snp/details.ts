// The claims `details` of a verified SEV-SNP report, what policy reads (docs/policy.md): JSON-safe,
// bytes as lowercase hex, u64 as 0x-hex, small integers as numbers.
import type { JsonObject } from '../../protocol/claims.js'
import { toHex } from '../../util/bytes.js'
import type { SnpProduct } from './layout.js'
import type { AttestationReport, TcbVersion } from './parse.js'

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
