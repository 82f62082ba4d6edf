// What a verifier proved, in the one shape every TEE shares: the broker and policy read these
// claims, never raw evidence (docs/architecture.md).
import type { Tee } from './tee.js'

/** JSON-safe values: what claims may hold (hex strings for bytes, numbers, booleans). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue }
export type JsonObject = { [k: string]: JsonValue }

/**
 * What a verifier proved. `details` is TEE-specific and JSON-safe (bytes as lowercase hex,
 * 64-bit counters as decimal strings when they may exceed 2^53).
 */
export interface VerifiedClaims<D extends JsonObject = JsonObject> {
  tee: Tee
  /** Lowercase hex of the digest that identifies the launched workload image:
   *  SNP MEASUREMENT, Nitro PCR0 (NitroTPM: PCR4), TPM: the quote's pcrDigest. */
  measurement: string
  /** True when the hardware reports a debuggable guest/enclave. */
  debug: boolean
  /** When the hardware stamped the evidence (ISO 8601), if it carries a time. */
  issuedAt: string | null
  /**
   * The bytes the evidence carries for the challenge binding (docs/protocol.md):
   * TPM extraData, SNP REPORT_DATA (64), Nitro user_data. Checked by the verifier against
   * ctx.expectedBinding when that is set; kept for the broker's audit, not shown to policy.
   */
  bindingData: Uint8Array
  /** Nitro only: the document's `nonce` field; SNP/TPM: null. */
  nonce: Uint8Array | null
  /** Nitro only: the document's `public_key` field (DER SPKI) when present. */
  publicKey: Uint8Array | null
  details: D
}
