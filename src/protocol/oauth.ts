// The OAuth 2.0 wire vocabulary keyward shares with the enclave client (docs/agents.md): the
// explicit JWT types (RFC 8725 §3.11), the headers of Attestation-Based Client Authentication
// (draft-ietf-oauth-attestation-based-client-auth, keyward as the Client Attester) and the
// answers of the client-attestation and token endpoints.
import { z } from 'zod'

/** draft-ietf-oauth-attestation-based-client-auth §4.2 (JWT header `typ`). */
export const CLIENT_ATTESTATION_TYP = 'oauth-client-attestation+jwt'
/** draft-ietf-oauth-attestation-based-client-auth §4.3 (JWT header `typ`). */
export const CLIENT_ATTESTATION_POP_TYP = 'oauth-client-attestation-pop+jwt'
/** RFC 9068 §2.1. */
export const ACCESS_TOKEN_TYP = 'at+jwt'
export const CLIENT_ATTESTATION_HEADER = 'OAuth-Client-Attestation'
export const CLIENT_ATTESTATION_POP_HEADER = 'OAuth-Client-Attestation-PoP'
/** RFC 8414 `token_endpoint_auth_methods_supported` value for attestation-based client authentication. */
export const ATTEST_JWT_CLIENT_AUTH = 'attest_jwt_client_auth'

export const OAUTH_PATHS = {
  metadata: '/.well-known/oauth-authorization-server',
  clientAttestation: '/v1/oauth/client-attestation',
  token: '/v1/oauth/token',
  introspect: '/v1/oauth/introspect',
  revoke: '/v1/oauth/revoke',
} as const

/** The answer of POST /v1/oauth/client-attestation. */
export const ClientAttestationAnswer = z.object({
  client_attestation: z.string().min(1),
  client_id: z.string().min(1),
  expires_at: z.string(),
})

/** RFC 6749 §5.1 as keyward answers a client_credentials request (RFC 9449 §5: token_type DPoP). */
export const TokenAnswer = z.object({
  access_token: z.string().min(1),
  token_type: z.string(),
  expires_in: z.number().int().positive(),
  scope: z.string().optional(),
})
