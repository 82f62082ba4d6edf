// The contract between the broker and each TEE verifier. Every verifier returns the same
// normalized claims shape; policy sees only these claims, never raw evidence bytes.
import type { X509Certificate } from 'node:crypto'
import type { Tee } from '../protocol/tee.js'
import type { VerifiedClaims } from '../protocol/claims.js'

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
