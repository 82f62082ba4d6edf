// Structure of the SEV-SNP ATTESTATION_REPORT (AMD 56860, Table "ATTESTATION_REPORT Structure").
// Pure and total: any byte string yields an AttestationReport or a KeywardError. Nothing here is
// trusted: the signature, chain and TCB binding are checked in verify.ts.
import { EvidenceMalformedError, KeywardError } from '../../errors.js'
import { ByteReader, requireZero } from '../../protocol/reader.js'
import {
  ECDSA_COMPONENT_SIZE,
  OFF,
  PLATFORM_INFO_BIT,
  POLICY_BIT,
  POLICY_KNOWN_MASK,
  REPORT_SIZE,
  SIGNED_END,
  SIGNING_KEY,
  SIG_ALGO_ECDSA_P384_SHA384,
  SIG_R_OFF,
  SIG_S_OFF,
  SIZE,
  SUPPORTED_VERSIONS,
  TCB_LAYOUT,
  productFromCpuid,
  type SnpProduct,
} from './layout.js'

export interface TcbVersion {
  /** The u64 as read (little-endian field). */
  raw: bigint
  bootloader: number
  tee: number
  snp: number
  microcode: number
  /** Turin only (family 1Ah): the FMC security patch level. */
  fmc?: number
}

export type TcbLayout = 'milan-genoa' | 'turin'
export type SigningKeyKind = 'vcek' | 'vlek' | 'none'

export interface GuestPolicy {
  raw: bigint
  abiMinor: number
  abiMajor: number
  smt: boolean
  migrationAgent: boolean
  debug: boolean
  singleSocket: boolean
  cxlAllow: boolean
  memAes256Xts: boolean
  raplDis: boolean
  ciphertextHiding: boolean
  pageSwapDisable: boolean
}

export interface PlatformInfo {
  raw: bigint
  smtEnabled: boolean
  tsmeEnabled: boolean
  eccEnabled: boolean
  raplDisabled: boolean
  ciphertextHidingDramEnabled: boolean
  aliasCheckComplete: boolean
  tioEnabled: boolean
}

export interface FirmwareVersion {
  major: number
  minor: number
  build: number
}

export interface AttestationReport {
  /** A copy of the 1184 report bytes. */
  bytes: Uint8Array
  version: number
  guestSvn: number
  policy: GuestPolicy
  familyId: Uint8Array
  imageId: Uint8Array
  vmpl: number
  signatureAlgo: number
  currentTcb: TcbVersion
  platformInfo: PlatformInfo
  authorKeyEn: boolean
  maskChipKey: boolean
  signingKey: SigningKeyKind
  reportData: Uint8Array
  measurement: Uint8Array
  hostData: Uint8Array
  idKeyDigest: Uint8Array
  authorKeyDigest: Uint8Array
  reportId: Uint8Array
  reportIdMa: Uint8Array
  reportedTcb: TcbVersion
  /** Version ≥ 3: CPUID_FAM_ID / CPUID_MOD_ID / CPUID_STEP; undefined in version 2. */
  cpuid: { family: number; model: number; stepping: number } | undefined
  /** Product named by the CPUID fields, when present and known. */
  product: SnpProduct | undefined
  tcbLayout: TcbLayout
  chipId: Uint8Array
  committedTcb: TcbVersion
  currentVersion: FirmwareVersion
  committedVersion: FirmwareVersion
  launchTcb: TcbVersion
  /** Version ≥ 5 only. */
  launchMitVector: bigint | undefined
  currentMitVector: bigint | undefined
  /** The raw 72-byte little-endian R and S fields of SIGNATURE (padding unchecked here). */
  signatureR: Uint8Array
  signatureS: Uint8Array
}

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n

/** Decodes a TCB_VERSION u64 with the product's byte layout (layout.ts TCB_LAYOUT). */
export function decodeTcb(raw: bigint, layout: TcbLayout): TcbVersion {
  const byte = (i: number): number => Number((raw >> BigInt(8 * i)) & 0xffn)
  const l = layout === 'turin' ? TCB_LAYOUT.turin : TCB_LAYOUT.milanGenoa
  const t: TcbVersion = { raw, bootloader: byte(l.bootloader), tee: byte(l.tee), snp: byte(l.snp), microcode: byte(l.microcode) }
  if (l.fmc !== undefined) t.fmc = byte(l.fmc)
  return t
}

/**
 * AMD 56860 "Guest Policy". Bit 17 is reserved and must be one (ERR_EVIDENCE_MALFORMED); bits
 * above PAGE_SWAP_DISABLE are unknown to keyward and rejected (ERR_EVIDENCE_UNSUPPORTED), so a
 * future policy bit that weakens the guest can never pass unseen.
 */
export function decodeGuestPolicy(raw: bigint): GuestPolicy {
  if (!bit(raw, POLICY_BIT.RESERVED_MUST_BE_ONE)) {
    throw new EvidenceMalformedError('ATTESTATION_REPORT: POLICY bit 17 is reserved and must be one')
  }
  if ((raw & ~POLICY_KNOWN_MASK) !== 0n) {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `ATTESTATION_REPORT: unknown POLICY bits 0x${(raw & ~POLICY_KNOWN_MASK).toString(16)}`)
  }
  return {
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(raw, POLICY_BIT.SMT),
    migrationAgent: bit(raw, POLICY_BIT.MIGRATE_MA),
    debug: bit(raw, POLICY_BIT.DEBUG),
    singleSocket: bit(raw, POLICY_BIT.SINGLE_SOCKET),
    cxlAllow: bit(raw, POLICY_BIT.CXL_ALLOW),
    memAes256Xts: bit(raw, POLICY_BIT.MEM_AES_256_XTS),
    raplDis: bit(raw, POLICY_BIT.RAPL_DIS),
    ciphertextHiding: bit(raw, POLICY_BIT.CIPHERTEXT_HIDING),
    pageSwapDisable: bit(raw, POLICY_BIT.PAGE_SWAP_DISABLE),
  }
}

/** AMD 56860 "PLATFORM_INFO". Unnamed bits stay visible in `raw` (they describe the host, not the guest). */
export function decodePlatformInfo(raw: bigint): PlatformInfo {
  return {
    raw,
    smtEnabled: bit(raw, PLATFORM_INFO_BIT.SMT_EN),
    tsmeEnabled: bit(raw, PLATFORM_INFO_BIT.TSME_EN),
    eccEnabled: bit(raw, PLATFORM_INFO_BIT.ECC_EN),
    raplDisabled: bit(raw, PLATFORM_INFO_BIT.RAPL_DIS),
    ciphertextHidingDramEnabled: bit(raw, PLATFORM_INFO_BIT.CIPHERTEXT_HIDING_DRAM_EN),
    aliasCheckComplete: bit(raw, PLATFORM_INFO_BIT.ALIAS_CHECK_COMPLETE),
    tioEnabled: bit(raw, PLATFORM_INFO_BIT.TIO_EN),
  }
}

/**
 * Parses a 1184-byte ATTESTATION_REPORT of version 2, 3 or 5 with SIGNATURE_ALGO 1.
 * Checks: exact length, version, algorithm, every must-be-zero range of the signed part for the
 * version, FLAGS reserved bits and SIGNING_KEY values 2–6, guest policy reserved bits.
 * Leaves unchecked: the signature (and its padding), TCB reserved bytes, every value's meaning.
 */
export function parseAttestationReport(input: Uint8Array): AttestationReport {
  if (input.length !== REPORT_SIZE) {
    throw new EvidenceMalformedError(`ATTESTATION_REPORT: ${input.length} bytes, expected ${REPORT_SIZE}`)
  }
  const bytes = input.slice()
  const r = new ByteReader(bytes, 'ATTESTATION_REPORT')
  const version = r.u32le('VERSION')
  if (!(SUPPORTED_VERSIONS as readonly number[]).includes(version)) {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `ATTESTATION_REPORT: version ${version} is not supported (2, 3, 5)`)
  }
  r.pos = OFF.SIGNATURE_ALGO
  const signatureAlgo = r.u32le('SIGNATURE_ALGO')
  if (signatureAlgo !== SIG_ALGO_ECDSA_P384_SHA384) {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `ATTESTATION_REPORT: SIGNATURE_ALGO ${signatureAlgo} is not supported (1: ECDSA P-384 SHA-384)`)
  }
  r.pos = OFF.GUEST_SVN
  const guestSvn = r.u32le('GUEST_SVN')
  const policy = decodeGuestPolicy(r.u64le('POLICY'))
  const familyId = r.bytesN(SIZE.FAMILY_ID, 'FAMILY_ID')
  const imageId = r.bytesN(SIZE.IMAGE_ID, 'IMAGE_ID')
  const vmpl = r.u32le('VMPL')
  r.skip(4, 'SIGNATURE_ALGO')
  const currentTcbRaw = r.u64le('CURRENT_TCB')
  const platformInfo = decodePlatformInfo(r.u64le('PLATFORM_INFO'))
  const flags = r.u32le('FLAGS')
  if (flags >>> 5 !== 0) throw new EvidenceMalformedError(`ATTESTATION_REPORT: reserved FLAGS bits 31:5 are not zero (0x${flags.toString(16)})`)
  const keySel = (flags >>> 2) & 7
  if (keySel !== SIGNING_KEY.VCEK && keySel !== SIGNING_KEY.VLEK && keySel !== SIGNING_KEY.NONE) {
    throw new EvidenceMalformedError(`ATTESTATION_REPORT: SIGNING_KEY ${keySel} is reserved`)
  }
  const signingKey: SigningKeyKind = keySel === SIGNING_KEY.VCEK ? 'vcek' : keySel === SIGNING_KEY.VLEK ? 'vlek' : 'none'
  requireZero(bytes, OFF.RESERVED_04C, OFF.REPORT_DATA, 'ATTESTATION_REPORT')
  r.pos = OFF.REPORT_DATA
  const reportData = r.bytesN(SIZE.REPORT_DATA, 'REPORT_DATA')
  const measurement = r.bytesN(SIZE.MEASUREMENT, 'MEASUREMENT')
  const hostData = r.bytesN(SIZE.HOST_DATA, 'HOST_DATA')
  const idKeyDigest = r.bytesN(SIZE.ID_KEY_DIGEST, 'ID_KEY_DIGEST')
  const authorKeyDigest = r.bytesN(SIZE.AUTHOR_KEY_DIGEST, 'AUTHOR_KEY_DIGEST')
  const reportId = r.bytesN(SIZE.REPORT_ID, 'REPORT_ID')
  const reportIdMa = r.bytesN(SIZE.REPORT_ID_MA, 'REPORT_ID_MA')
  const reportedTcbRaw = r.u64le('REPORTED_TCB')
  let cpuid: AttestationReport['cpuid']
  if (version >= 3) {
    cpuid = { family: r.u8('CPUID_FAM_ID'), model: r.u8('CPUID_MOD_ID'), stepping: r.u8('CPUID_STEP') }
    requireZero(bytes, OFF.RESERVED_18B, OFF.CHIP_ID, 'ATTESTATION_REPORT')
  } else {
    requireZero(bytes, OFF.CPUID_FAM_ID, OFF.CHIP_ID, 'ATTESTATION_REPORT')
  }
  const product = cpuid ? productFromCpuid(cpuid.family, cpuid.model) : undefined
  // Version 2 reports predate Turin (its firmware emits version ≥ 3), so no CPUID means Milan/Genoa.
  const tcbLayout: TcbLayout = product === 'Turin' ? 'turin' : 'milan-genoa'
  r.pos = OFF.CHIP_ID
  const chipId = r.bytesN(SIZE.CHIP_ID, 'CHIP_ID')
  const committedTcbRaw = r.u64le('COMMITTED_TCB')
  const currentVersion = { build: r.u8('CURRENT_BUILD'), minor: r.u8('CURRENT_MINOR'), major: r.u8('CURRENT_MAJOR') }
  requireZero(bytes, OFF.RESERVED_1EB, OFF.COMMITTED_BUILD, 'ATTESTATION_REPORT')
  r.skip(1)
  const committedVersion = { build: r.u8('COMMITTED_BUILD'), minor: r.u8('COMMITTED_MINOR'), major: r.u8('COMMITTED_MAJOR') }
  requireZero(bytes, OFF.RESERVED_1EF, OFF.LAUNCH_TCB, 'ATTESTATION_REPORT')
  r.skip(1)
  const launchTcbRaw = r.u64le('LAUNCH_TCB')
  let launchMitVector: bigint | undefined
  let currentMitVector: bigint | undefined
  if (version >= 5) {
    launchMitVector = r.u64le('LAUNCH_MIT_VECTOR')
    currentMitVector = r.u64le('CURRENT_MIT_VECTOR')
    requireZero(bytes, OFF.RESERVED_208, SIGNED_END, 'ATTESTATION_REPORT')
  } else {
    requireZero(bytes, OFF.LAUNCH_MIT_VECTOR, SIGNED_END, 'ATTESTATION_REPORT')
  }
  const sig = bytes.subarray(OFF.SIGNATURE)
  return {
    bytes,
    version,
    guestSvn,
    policy,
    familyId,
    imageId,
    vmpl,
    signatureAlgo,
    currentTcb: decodeTcb(currentTcbRaw, tcbLayout),
    platformInfo,
    authorKeyEn: (flags & 1) === 1,
    maskChipKey: (flags & 2) === 2,
    signingKey,
    reportData,
    measurement,
    hostData,
    idKeyDigest,
    authorKeyDigest,
    reportId,
    reportIdMa,
    reportedTcb: decodeTcb(reportedTcbRaw, tcbLayout),
    cpuid,
    product,
    tcbLayout,
    chipId,
    committedTcb: decodeTcb(committedTcbRaw, tcbLayout),
    currentVersion,
    committedVersion,
    launchTcb: decodeTcb(launchTcbRaw, tcbLayout),
    launchMitVector,
    currentMitVector,
    signatureR: sig.slice(SIG_R_OFF, SIG_R_OFF + ECDSA_COMPONENT_SIZE),
    signatureS: sig.slice(SIG_S_OFF, SIG_S_OFF + ECDSA_COMPONENT_SIZE),
  }
}

/** The bytes the AMD-SP signs: 0x000–0x29F (AMD 56860, ATTESTATION_REPORT: signature covers bytes before 0x2A0). */
export function signedBytes(report: AttestationReport): Uint8Array {
  return report.bytes.subarray(0, SIGNED_END)
}
