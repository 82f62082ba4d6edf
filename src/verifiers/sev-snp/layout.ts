// Offsets and sizes of the SEV-SNP ATTESTATION_REPORT (AMD 56860 "SEV Secure Nested Paging
// Firmware ABI Specification", Table "ATTESTATION_REPORT Structure"; versions 2, 3 and 5).
// All integers in the report are little-endian.

export const REPORT_SIZE = 0x4a0 // 1184
/** AMD 56860: the signature covers every byte before SIGNATURE (0x000–0x29F). */
export const SIGNED_END = 0x2a0

export const SUPPORTED_VERSIONS = [2, 3, 5] as const

export const OFF = {
  VERSION: 0x000, // u32
  GUEST_SVN: 0x004, // u32
  POLICY: 0x008, // u64
  FAMILY_ID: 0x010, // 16
  IMAGE_ID: 0x020, // 16
  VMPL: 0x030, // u32
  SIGNATURE_ALGO: 0x034, // u32
  CURRENT_TCB: 0x038, // u64 TCB_VERSION
  PLATFORM_INFO: 0x040, // u64
  FLAGS: 0x048, // u32: [0] AUTHOR_KEY_EN, [1] MASK_CHIP_KEY, [4:2] SIGNING_KEY, [31:5] reserved
  RESERVED_04C: 0x04c, // u32, must be zero
  REPORT_DATA: 0x050, // 64
  MEASUREMENT: 0x090, // 48
  HOST_DATA: 0x0c0, // 32
  ID_KEY_DIGEST: 0x0e0, // 48
  AUTHOR_KEY_DIGEST: 0x110, // 48
  REPORT_ID: 0x140, // 32
  REPORT_ID_MA: 0x160, // 32
  REPORTED_TCB: 0x180, // u64
  CPUID_FAM_ID: 0x188, // u8, version ≥ 3 (reserved, zero, in version 2)
  CPUID_MOD_ID: 0x189, // u8, version ≥ 3
  CPUID_STEP: 0x18a, // u8, version ≥ 3
  RESERVED_18B: 0x18b, // .. 0x19F must be zero
  CHIP_ID: 0x1a0, // 64
  COMMITTED_TCB: 0x1e0, // u64
  CURRENT_BUILD: 0x1e8, // u8
  CURRENT_MINOR: 0x1e9, // u8
  CURRENT_MAJOR: 0x1ea, // u8
  RESERVED_1EB: 0x1eb, // u8, must be zero
  COMMITTED_BUILD: 0x1ec, // u8
  COMMITTED_MINOR: 0x1ed, // u8
  COMMITTED_MAJOR: 0x1ee, // u8
  RESERVED_1EF: 0x1ef, // u8, must be zero
  LAUNCH_TCB: 0x1f0, // u64
  LAUNCH_MIT_VECTOR: 0x1f8, // u64, version ≥ 5 (reserved in 2 and 3)
  CURRENT_MIT_VECTOR: 0x200, // u64, version ≥ 5
  RESERVED_208: 0x208, // .. 0x29F must be zero
  SIGNATURE: 0x2a0, // 512
} as const

export const SIZE = {
  FAMILY_ID: 16,
  IMAGE_ID: 16,
  REPORT_DATA: 64,
  MEASUREMENT: 48,
  HOST_DATA: 32,
  ID_KEY_DIGEST: 48,
  AUTHOR_KEY_DIGEST: 48,
  REPORT_ID: 32,
  REPORT_ID_MA: 32,
  CHIP_ID: 64,
  SIGNATURE: 512,
} as const

/** AMD 56860 Table "SIGNATURE_ALGO": 1 = ECDSA P-384 with SHA-384; everything else unsupported. */
export const SIG_ALGO_ECDSA_P384_SHA384 = 1
/** AMD 56860 "ECDSA P-384 with SHA-384 Signature": R and S are 72-byte little-endian fields,
 *  only the low 48 bytes of each are significant; bytes 0x90–0x1FF of SIGNATURE are reserved. */
export const ECDSA_COMPONENT_SIZE = 72
export const P384_SCALAR_SIZE = 48
export const SIG_R_OFF = 0x00
export const SIG_S_OFF = 0x48
export const SIG_USED = 0x90

/** AMD 56860 "Guest Policy" bit positions. Bits above PAGE_SWAP_DISABLE are reserved (MBZ). */
export const POLICY_BIT = {
  SMT: 16,
  RESERVED_MUST_BE_ONE: 17,
  MIGRATE_MA: 18,
  DEBUG: 19,
  SINGLE_SOCKET: 20,
  CXL_ALLOW: 21,
  MEM_AES_256_XTS: 22,
  RAPL_DIS: 23,
  CIPHERTEXT_HIDING: 24,
  PAGE_SWAP_DISABLE: 25,
} as const
export const POLICY_KNOWN_MASK = (1n << 26n) - 1n

/** AMD 56860 "PLATFORM_INFO" bit positions. */
export const PLATFORM_INFO_BIT = {
  SMT_EN: 0,
  TSME_EN: 1,
  ECC_EN: 2,
  RAPL_DIS: 3,
  CIPHERTEXT_HIDING_DRAM_EN: 4,
  ALIAS_CHECK_COMPLETE: 5,
  TIO_EN: 7,
} as const

/** SIGNING_KEY (FLAGS[4:2]): 0 VCEK, 1 VLEK, 7 none; 2–6 reserved. */
export const SIGNING_KEY = { VCEK: 0, VLEK: 1, NONE: 7 } as const

/**
 * TCB_VERSION byte positions. Milan and Genoa (AMD 56860 Table "TCB_VERSION Structure"):
 * [0] BOOT_LOADER [1] TEE [2..5] reserved [6] SNP [7] MICROCODE. Turin (family 1Ah) moves them:
 * [0] FMC [1] BOOT_LOADER [2] TEE [3] SNP [4..6] reserved [7] MICROCODE.
 */
export const TCB_LAYOUT = {
  milanGenoa: { bootloader: 0, tee: 1, snp: 6, microcode: 7, fmc: undefined, reserved: [2, 3, 4, 5] },
  turin: { bootloader: 1, tee: 2, snp: 3, microcode: 7, fmc: 0, reserved: [4, 5, 6] },
} as const

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin'
export const PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin']

/**
 * Product from CPUID_FAM_ID/CPUID_MOD_ID (report version ≥ 3). Family 19h models 00h–0Fh are
 * Milan, 10h–1Fh Genoa, A0h–AFh Siena (Genoa keys); family 1Ah models 00h–1Fh Turin.
 */
export function productFromCpuid(family: number, model: number): SnpProduct | undefined {
  if (family === 0x19) {
    if (model <= 0x0f) return 'Milan'
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return 'Genoa'
  }
  if (family === 0x1a && model <= 0x1f) return 'Turin'
  return undefined
}

/** AMD 57230 (VCEK) and VLEK specification: X.509 extension OIDs of the leaf certificate. */
export const OID = {
  STRUCT_VERSION: '1.3.6.1.4.1.3704.1.1',
  PRODUCT_NAME: '1.3.6.1.4.1.3704.1.2',
  BL_SPL: '1.3.6.1.4.1.3704.1.3.1',
  TEE_SPL: '1.3.6.1.4.1.3704.1.3.2',
  SNP_SPL: '1.3.6.1.4.1.3704.1.3.3',
  UCODE_SPL: '1.3.6.1.4.1.3704.1.3.8',
  FMC_SPL: '1.3.6.1.4.1.3704.1.3.9',
  HW_ID: '1.3.6.1.4.1.3704.1.4',
  CSP_ID: '1.3.6.1.4.1.3704.1.5',
} as const

/** GHCB spec (AMD 56421) certificate table GUIDs, in RFC 4122 byte order. */
export const CERT_TABLE_GUID = {
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
} as const
export const CERT_TABLE_ENTRY_SIZE = 24
