// What a verifier proved, in one shape per TEE with a common core: the broker and policy read
// these claims, never raw evidence (docs/architecture.md). What the broker acts on is typed (the
// AK and its registered workload, PCR values as bytes, the key a document binds); `details` holds
// the TEE-specific rest, JSON-safe, for policy and the attestation result, and the broker never
// reads it (go-tpm-tools' typed MachineState rather than an untyped map).
import type { Tee } from './tee.js'
import type { HashName } from '../util/bytes.js'

/** JSON-safe values: what claims may hold (hex strings for bytes, numbers, booleans). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue }
export type JsonObject = { [k: string]: JsonValue }

/** Register values a signature covers: hash bank → register index → value. */
export type PcrBanks = Partial<Record<HashName, ReadonlyMap<number, Uint8Array>>>

/** How an attestation key came to be trusted, and the workload it was registered for. */
export interface AkTrustClaim {
  via: 'credential-activation' | 'pinned'
  workload: string
}

interface ClaimsCore<T extends Tee, D extends JsonObject> {
  tee: T
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
  /** The challenge nonce where the evidence has a field of its own for it (Nitro `nonce`); else null. */
  nonce: Uint8Array | null
  /**
   * The key the evidence itself binds (DER SPKI; Nitro `public_key`), or null when it binds none.
   * The broker requires it to be the key the workload presents (AWS KMS's model).
   */
  publicKey: Uint8Array | null
  /** TEE-specific claims for policy (JSON-safe: bytes as lowercase hex, 64-bit values as strings). */
  details: D
}

export interface TpmClaims<D extends JsonObject = JsonObject> extends ClaimsCore<'tpm', D> {
  /** The attestation key that signed the quote. */
  ak: {
    /** TPM name (lowercase hex) when the AK came as a TPM public area; null for a bare SPKI. */
    name: string | null
    /** What the AK registry answered (VerifyContext.resolveAk); null when it was not asked (offline). */
    trust: AkTrustClaim | null
  }
  /** PCR values the signed pcrDigest proves. */
  pcrs: PcrBanks
}

export interface NitroClaims<D extends JsonObject = JsonObject> extends ClaimsCore<'nitro', D> {
  /** The document's PCRs (bank sha384), covered by its signature. */
  pcrs: PcrBanks
}

export type SevSnpClaims<D extends JsonObject = JsonObject> = ClaimsCore<'sev-snp', D>

/** What a verifier proved: one member per TEE, told apart by `tee`. */
export type VerifiedClaims<D extends JsonObject = JsonObject> = TpmClaims<D> | NitroClaims<D> | SevSnpClaims<D>

/** The claims of one TEE. */
export type ClaimsOf<T extends Tee, D extends JsonObject = JsonObject> = Extract<VerifiedClaims<D>, { tee: T }>
