// The contract between the broker and each TEE verifier. Every verifier returns the same
// normalized claims shape; policy sees only these claims, never raw evidence bytes.
import type { X509Certificate } from 'node:crypto'
import type { AkTrustClaim, VerifiedClaims } from '../protocol/claims.js'

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
  /**
   * The challenge nonce itself, where the evidence carries it raw: Nitro's `nonce` field; a TPM
   * quote's extraData only when no expectedBinding is given (offline, as `tpm2_checkquote -q`).
   */
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

/** The AK registry's answer: how the AK came to be trusted, the workload it was registered for, and whether it was revoked. */
export interface AkTrust extends AkTrustClaim {
  revoked: boolean
}

/**
 * One TEE's verifier, the same shape for every TEE (trustee's `Verifier` trait): each
 * `src/verifiers/<tee>/index.ts` exports `create<Tee>Verifier(options)` returning one.
 * `decode` is structural only (bounded, linear): the broker runs it before spending the
 * challenge nonce; `verify` does the costly checks (X.509, signatures) and must be given
 * what this verifier's own `decode` returned.
 */
export interface Verifier<E = unknown, C extends VerifiedClaims = VerifiedClaims> {
  readonly tee: C['tee']
  /** Parses the `evidence` member of an attest request; throws KeywardError(ERR_EVIDENCE_MALFORMED) on any bad input. */
  decode(wire: unknown): E
  /** Checks signatures, chains and the binding; returns the TEE's claims or throws a KeywardError. */
  verify(evidence: E, ctx: VerifyContext): Promise<C>
}
