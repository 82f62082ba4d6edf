// AWS Nitro attestation document layout. Sources: Nitro Enclaves User Guide, "Nitro Enclaves
// attestation process" (AttestationDocument CDDL, "Attestation document validation"), and the
// NitroTPM attestation document CDDL in the EC2 User Guide (same envelope, `nitrotpm_pcrs`).
//
//   AttestationDocument = {
//     module_id: text, digest: "SHA384", timestamp: uint .size 8,   ; ms since the epoch
//     pcrs / nitrotpm_pcrs: { + index => pcr },                     ; index = 0..31
//     certificate: cert, cabundle: [* cert],
//     ? public_key: user_data, ? user_data: user_data, ? nonce: user_data }
//   cert = bytes .size (1..1024); user_data = bytes .size (0..1024); pcr = bytes .size (32/48/64)

/** COSE algorithm allow-list: the NSM signs with ECDSA P-384 / SHA-384 only. */
export const NITRO_ALGS = ['ES384'] as const

/** NSM_RESPONSE_MAX_SIZE (aws-nitro-enclaves-nsm-api driver): no genuine document is larger. */
export const MAX_DOCUMENT_BYTES = 0x3000

export const FIELD = {
  moduleId: 'module_id',
  digest: 'digest',
  timestamp: 'timestamp',
  pcrs: 'pcrs',
  nitrotpmPcrs: 'nitrotpm_pcrs',
  certificate: 'certificate',
  cabundle: 'cabundle',
  publicKey: 'public_key',
  userData: 'user_data',
  nonce: 'nonce',
} as const

export const KNOWN_FIELDS: ReadonlySet<string> = new Set(Object.values(FIELD))

/** `digest = "SHA384"`: the only value the CDDL allows. */
export const DIGEST_SHA384 = 'SHA384'
/** module_id is `text`; the nsm-api README bounds it to 1..255. */
export const MODULE_ID_MAX = 255
/** `cert = bytes .size (1..1024)` (certificate and every cabundle entry). */
export const CERT_MIN = 1
export const CERT_MAX = 1024
/** `user_data = bytes .size (0..1024)`, also the type of public_key and nonce. */
export const USER_DATA_MAX = 1024
/** `pcr = bytes .size (32/48/64)`, `index = 0..31`. */
export const PCR_SIZES: readonly number[] = [32, 48, 64]
export const PCR_INDEX_MAX = 31
/** Largest millisecond timestamp a JavaScript Date can hold (ECMA-262 §21.4.1.22). */
export const TIMESTAMP_MAX_MS = 8.64e15

/** Enclave documents: PCR0 = enclave image file, PCR1 = kernel and bootstrap, PCR2 = application. */
export const ENCLAVE_MEASUREMENT_PCR = 0
/** Debug-mode enclaves report PCR0, PCR1 and PCR2 as all zero bytes (Nitro Enclaves User Guide, "Debug mode"). */
export const DEBUG_ZERO_PCRS: readonly number[] = [0, 1, 2]
/**
 * NitroTPM documents: PCR4 (UEFI boot manager code: the boot loader / unified kernel image) is the
 * digest that identifies the booted image of an attestable AMI; PCR0 there is AWS's firmware and is
 * the same on every instance. NitroTPM has no debug mode.
 */
export const NITROTPM_MEASUREMENT_PCR = 4

export type NitroKind = 'enclave' | 'nitrotpm'
