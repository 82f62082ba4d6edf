// The wire contract of HTTP API v1: request and response schemas of every endpoint. The broker
// validates requests with them (src/broker/http/validate.ts) and generates /openapi.json from
// them; the enclave client parses the broker's answers with the response schemas. Neither side
// imports the other, so the document, the server and the client cannot drift apart.
import { z } from 'zod'
import { TEES } from './tee.js'

const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be base64url without padding')
const b64 = z.string().max(4 * 1024 * 1024).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')

export const EcJwk = z
  .object({
    kty: z.literal('EC'),
    crv: z.enum(['P-256', 'P-384']),
    x: b64url.max(100),
    y: b64url.max(100),
    alg: z.string().optional(),
    use: z.string().optional(),
    kid: z.string().max(200).optional(),
  })
  .strict()

export const RsaJwk = z
  .object({
    kty: z.literal('RSA'),
    n: b64url.min(342, 'RSA keys must be at least 2048 bits').max(1400),
    e: b64url.max(12),
    alg: z.string().optional(),
    use: z.string().optional(),
    kid: z.string().max(200).optional(),
  })
  .strict()

export const PublicJwk = z.discriminatedUnion('kty', [EcJwk, RsaJwk])

export const ChallengeResponse = z.object({ nonce: b64url, expiresAt: z.string() })

export const RuntimeState = z
  .object({
    allowlist: z
      .object({
        records: z.array(z.string().regex(/^[0-9a-f]{272}$/, 'a record is 136 bytes of lowercase hex')).max(64),
        statement: z.string().regex(/^[0-9a-f]{480}$/, 'a statement is 240 bytes of lowercase hex'),
      })
      .strict(),
  })
  .strict()

export const AttestRequest = z
  .object({
    tee: z.enum(TEES),
    nonce: b64url.length(43, 'nonce must be 32 bytes'),
    key: PublicJwk,
    evidence: z.record(z.string(), z.unknown()),
    runtimeState: RuntimeState.optional(),
    /** Ask for a token for another audience (one of config extraAudiences, e.g. vault) instead of keyward's own. */
    audience: z.string().min(1).max(256).optional(),
  })
  .strict()

export const AttestResponse = z.object({
  token: z.string(),
  expiresAt: z.string(),
  policy: z.string(),
  claims: z.record(z.string(), z.unknown()),
})

/** The token's audience is the relying party that asks, never a field of the request. */
export const AppraiseRequest = AttestRequest.omit({ audience: true })

export const ReleaseResponse = z.object({ name: z.string(), version: z.number(), jwe: z.string() })

/** POST /v1/vault/token: the token payload (VaultTokenPayload) sealed to the bound key. */
export const VaultTokenResponse = z.object({ jwe: z.string(), accessor: z.string().optional(), leaseDuration: z.number().optional() })
/** The plaintext of a Vault-token release: a token, or a response-wrapping token with `wrap`. */
export const VaultTokenPayload = z.object({
  token: z.string().optional(),
  wrapToken: z.string().optional(),
  accessor: z.string().optional(),
  leaseDuration: z.number().optional(),
})

/** POST /v1/credentials/{tool}: a short-lived JWT or a stored API key, sealed to the bound key. */
export const ToolCredentialResponse = z.object({ tool: z.string(), kind: z.enum(['jwt', 'api-key']), expiresAt: z.string().nullable(), jwe: z.string() })

export const SecretName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'secret names are 1–128 of [A-Za-z0-9._-]')
/** A tool name as policies spell it (src/policy/schema.ts identifier). */
export const ToolName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$/, 'tool names are 1–128 of [A-Za-z0-9._/:-]')

export const PutSecretRequest = z
  .object({
    /** The value, base64; or `text` for UTF-8 values; or a Vault KV v2 reference. */
    value: b64.optional(),
    text: z.string().max(1024 * 1024).optional(),
    vaultKv: z
      .object({ mount: z.string().default('secret'), path: z.string().min(1), version: z.number().int().min(1).optional(), field: z.string().optional() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((r) => [r.value, r.text, r.vaultKv].filter((x) => x !== undefined).length === 1, 'give exactly one of value, text, vaultKv')

export const ApplyPolicyRequest = z.object({ source: z.string().min(1).max(256 * 1024) }).strict()

export const ReferenceValueRequest = z
  .object({
    set: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, 'reference set names are lowercase a-z 0-9 . _ -'),
    tee: z.enum(TEES),
    value: z.string().min(1).max(256),
    source: z.string().min(1).max(512),
    expiresAt: z.string().datetime().optional(),
    note: z.string().max(1024).optional(),
  })
  .strict()

export const PinAkRequest = z
  .object({ workload: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/), ak: b64 })
  .strict()

/** A workload name an authority can bind to a TPM (src/broker/enrolment.ts ENROLLED_NAME). */
export const EnrolledName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'workload names are 1–63 of [a-z0-9._-], starting with a letter or digit')

export const TpmRegisterRequest = z
  .object({
    workload: EnrolledName,
    /** A single-use enrolment token an admin issued for `workload` (keyward enrol token). */
    enrolToken: z.string().min(1).max(256).optional(),
    ekPub: b64,
    ekCert: b64.optional(),
    akPub: b64,
  })
  .strict()

export const TpmActivateRequest = z.object({ activationId: z.string().uuid(), secret: b64 }).strict()

export const VaultTokenRequest = z.object({ role: z.string().max(128).optional(), wrap: z.boolean().optional() }).strict()

export const ErrorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string(), failures: z.array(z.record(z.string(), z.unknown())).optional() }),
})

export const EnrolmentTokenRequest = z.object({ workload: EnrolledName, ttlSeconds: z.number().int().min(1).max(30 * 24 * 3600).optional() }).strict()
export const EkAllowRequest = z.object({ workload: EnrolledName, ek: z.string().min(64).max(95), note: z.string().max(1024).optional() }).strict()
export const RevokeAkRequest = z.object({ denyEk: z.boolean().optional() }).strict()
