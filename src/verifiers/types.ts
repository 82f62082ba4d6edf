// The contract between the broker and each TEE verifier. Every verifier returns the same
// normalized claims shape; policy sees only these claims, never raw evidence bytes.
import type { X509Certificate } from 'node:crypto'
import type { Tee } from '../protocol/tee.js'
// Kept for src/broker/schemas.ts until the in-flight merge on it lands; import TEES from src/protocol/tee.ts.
export { TEES } from '../protocol/tee.js'


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

/** Everything a verifier may depend on, injected: verifiers never read the clock or roots from module scope. */
export interface VerifyContext {
  now: Date
  /** Tolerance applied to certificate validity windows, in milliseconds (default 60 000). */
  clockSkewMs?: number
  /**
   * The 32-byte binding digest the evidence must commit to (docs/protocol.md). Undefined for
   * offline checks (`keyward verify`), where the CLI compares nonces itself.
   */
  expectedBinding?: Uint8Array
  /** Nitro: the 32-byte challenge nonce expected in the document's `nonce` field. */
  expectedNonce?: Uint8Array
  /** Trust anchors per TEE; a verifier uses its pinned defaults when its entry is absent. */
  trust?: TrustAnchors
  /** TPM: resolves an AK (by its TPM name, hex) to a trust record, or null when unknown. */
  resolveAk?: (akNameHex: string) => Promise<AkTrust | null>
}

export interface TrustAnchors {
  nitro?: { roots: X509Certificate[] }
  snp?: { arks?: X509Certificate[]; crls?: Uint8Array[] }
  tpm?: { ekRoots?: X509Certificate[] }
}

export interface AkTrust {
  /** How the AK came to be trusted. */
  via: 'credential-activation' | 'pinned'
  /** Workload identity the AK was registered for. */
  workload: string
  revoked: boolean
}

/** One TEE's verifier. `decode` turns the wire evidence (JSON from the HTTP API) into a parsed structure. */
export interface Verifier<E = unknown> {
  readonly tee: Tee
  /** Parses the `evidence` member of an attest request; throws KeywardError(ERR_EVIDENCE_MALFORMED) on any bad input. */
  decode(evidence: unknown): E
  /** Checks signatures, chains and the binding; returns normalized claims or throws a KeywardError. */
  verify(evidence: E, ctx: VerifyContext): Promise<VerifiedClaims>
}
