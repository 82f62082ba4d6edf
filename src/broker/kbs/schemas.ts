// The Trustee KBS protocol payloads (trustee kbs/docs/kbs_attestation_protocol.md; kbs-types
// 0.18 as guest-components use it), validated at the trust boundary.
import { z } from 'zod'

const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be base64url without padding')

/** kbs-types `Request`. `extra-params` is a JSON object (guest-components) or "" (the protocol text). */
export const KbsRequest = z.object({
  version: z.string().max(32),
  tee: z.string().min(1).max(32),
  'extra-params': z.union([z.record(z.string(), z.unknown()), z.string().max(0)]).optional(),
})

/**
 * kbs-types `TeePubKey`, the keys guest-components generate (keypair.rs): EC P-256 or P-521 for
 * ECDH-ES+A256KW, RSA (≥ 2048 bits) for RSA-OAEP-256. RSA1_5 (PKCS #1 v1.5, which Trustee still
 * accepts with a deprecation warning) is refused. Unknown members are dropped, as serde drops
 * them, so the runtime-data digest covers exactly what the client hashed.
 */
export const TeePubKey = z.discriminatedUnion('kty', [
  z.object({ kty: z.literal('EC'), crv: z.enum(['P-256', 'P-521']), alg: z.literal('ECDH-ES+A256KW'), x: b64url.max(100), y: b64url.max(100) }),
  z.object({ kty: z.literal('RSA'), alg: z.literal('RSA-OAEP-256'), n: b64url.min(342, 'RSA keys must be at least 2048 bits').max(1400), e: b64url.max(12) }),
])
export type TeePubKey = z.infer<typeof TeePubKey>

/** kbs-types `Attestation` (kebab-case members; CompositeEvidence keeps its snake_case ones). */
export const KbsAttestation = z.object({
  'init-data': z.object({ format: z.string().max(16), body: z.string().max(64 * 1024) }).nullable().optional(),
  'runtime-data': z.object({ nonce: z.string().max(64), 'tee-pubkey': TeePubKey }),
  'tee-evidence': z.object({ primary_evidence: z.unknown(), additional_evidence: z.string().max(256 * 1024) }),
})
export type KbsAttestation = z.infer<typeof KbsAttestation>
