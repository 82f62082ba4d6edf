// TPM 2.0 constants: TCG TPM 2.0 Library Part 2 (Structures) and the TCG PC Client Platform
// Firmware Profile (event types). Numbers only; parsing lives in parse.ts / eventlog.ts.
import type { HashName } from '../../util/bytes.js'

/** Part 2 §6.2 TPM_GENERATED: every TPMS_ATTEST starts with this magic. */
export const TPM_GENERATED_VALUE = 0xff544347
/** Part 2 §6.9 TPM_ST: structure tags. */
export const TPM_ST_ATTEST_QUOTE = 0x8018

/** Part 2 §6.3 TPM_ALG_ID (the subset keyward understands). */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  ECSCHNORR: 0x001c,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const

/** Hash algorithms by TPM_ALG_ID; digest sizes from Part 2 §10.1 (TPMU_HA). */
export const HASH_ALGS: ReadonlyMap<number, { name: HashName; size: number }> = new Map([
  [TPM_ALG.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
])

export function hashAlgId(name: HashName): number {
  for (const [id, h] of HASH_ALGS) if (h.name === name) return id
  /* c8 ignore next */
  throw new Error(`no TPM_ALG_ID for ${name}`)
}

/** Part 2 §6.4 TPM_ECC_CURVE → node:crypto curve names and coordinate sizes. */
export const ECC_CURVES: ReadonlyMap<number, { name: 'P-256' | 'P-384' | 'P-521'; size: number }> = new Map([
  [0x0003, { name: 'P-256', size: 32 }],
  [0x0004, { name: 'P-384', size: 48 }],
  [0x0005, { name: 'P-521', size: 66 }],
])

/** Part 2 §8.3 TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const

/** What an attestation key must have (go-tpm-tools server/verify.go, Part 1 §27 key properties). */
export const AK_REQUIRED_ATTRIBUTES = [
  'fixedTPM',
  'fixedParent',
  'sensitiveDataOrigin',
  'restricted',
  'sign',
] as const satisfies readonly (keyof typeof TPMA_OBJECT)[]

/** Part 2 §10.6 TPMS_PCR_SELECTION: PCR_SELECT_MAX for 24 PCRs is 3 bytes; tpm2-tools' native struct holds 4. */
export const PCR_SELECT_MAX = 4
export const PCR_COUNT_MAX = PCR_SELECT_MAX * 8
/** Part 2 §10.9 TPML_DIGEST holds at most 8 digests; TPML_PCR_SELECTION at most HASH_COUNT (16 in tss2). */
export const TPML_DIGEST_MAX = 8
export const TPML_PCR_SELECTION_MAX = 16

/**
 * tpm2-tools "serialized" PCR file (tpm2_quote -o): the native little-endian tss2 structs.
 * TPML_PCR_SELECTION = u32 count + 16 × TPMS_PCR_SELECTION(u16 hash, u8 sizeofSelect,
 * u8[4] pcrSelect, 1 pad) = 132 bytes; then u32 number of TPML_DIGEST, each u32 count +
 * 8 × TPM2B_DIGEST(u16 size, u8[64]) = 532 bytes.
 */
export const PCRS_FILE = {
  selectionSize: 4 + TPML_PCR_SELECTION_MAX * 8,
  selectionEntrySize: 8,
  digestBufferSize: 64,
  tpm2bDigestSize: 2 + 64,
  tpmlDigestSize: 4 + TPML_DIGEST_MAX * 66,
} as const

/** Upper bounds on TPM2B sizes (Part 2: MAX_DIGEST_BUFFER, MAX_RSA_KEY_BYTES, MAX_ECC_KEY_BYTES). */
export const MAX = {
  digest: 64,
  name: 2 + 64,
  data: 64,
  rsaKeyBytes: 512,
  eccKeyBytes: 66,
  authPolicy: 64,
  attest: 1024,
  public: 1024,
} as const

/** TCG PC Client Platform Firmware Profile §10.4.1 event types. */
export const EV = {
  PREBOOT_CERT: 0x0,
  POST_CODE: 0x1,
  NO_ACTION: 0x3,
  SEPARATOR: 0x4,
  ACTION: 0x5,
  EVENT_TAG: 0x6,
  S_CRTM_CONTENTS: 0x7,
  S_CRTM_VERSION: 0x8,
  CPU_MICROCODE: 0x9,
  PLATFORM_CONFIG_FLAGS: 0xa,
  TABLE_OF_DEVICES: 0xb,
  COMPACT_HASH: 0xc,
  IPL: 0xd,
  IPL_PARTITION_DATA: 0xe,
  NONHOST_CODE: 0xf,
  NONHOST_CONFIG: 0x10,
  NONHOST_INFO: 0x11,
  OMIT_BOOT_DEVICE_EVENTS: 0x12,
  EFI_VARIABLE_DRIVER_CONFIG: 0x80000001,
  EFI_VARIABLE_BOOT: 0x80000002,
  EFI_BOOT_SERVICES_APPLICATION: 0x80000003,
  EFI_BOOT_SERVICES_DRIVER: 0x80000004,
  EFI_RUNTIME_SERVICES_DRIVER: 0x80000005,
  EFI_GPT_EVENT: 0x80000006,
  EFI_ACTION: 0x80000007,
  EFI_PLATFORM_FIRMWARE_BLOB: 0x80000008,
  EFI_HANDOFF_TABLES: 0x80000009,
  EFI_PLATFORM_FIRMWARE_BLOB2: 0x8000000a,
  EFI_HANDOFF_TABLES2: 0x8000000b,
  EFI_VARIABLE_BOOT2: 0x8000000c,
  EFI_HCRTM_EVENT: 0x80000010,
  EFI_VARIABLE_AUTHORITY: 0x800000e0,
  EFI_SPDM_FIRMWARE_BLOB: 0x800000e1,
  EFI_SPDM_FIRMWARE_CONFIG: 0x800000e2,
} as const

/** Limits that keep a hostile event log from exhausting memory (real logs are < 1 MiB, < 10 000 events). */
export const EVENTLOG_LIMITS = { maxEvents: 65_536, maxEventSize: 16 * 1024 * 1024, pcrs: 24 } as const
