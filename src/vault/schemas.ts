// zod schemas for the parts of Vault's responses keyward relies on (Vault API docs:
// auth/token, auth/approle, sys/wrapping, secret/kv/kv-v2, secret/transit, sys/health).
// Vault's responses are a trust boundary: unknown members pass, missing or mistyped ones fail.
import { z } from 'zod'

export const authBlockSchema = z.object({
  client_token: z.string().min(1),
  accessor: z.string().min(1),
  policies: z.array(z.string()).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  lease_duration: z.number().int().nonnegative(),
  renewable: z.boolean(),
})

export const wrapInfoSchema = z.object({
  token: z.string().min(1),
  accessor: z.string().optional(),
  ttl: z.number().int().nonnegative(),
  creation_time: z.string(),
  creation_path: z.string(),
  /** The accessor of the wrapped token when the wrapped response created one. */
  wrapped_accessor: z.string().optional(),
})

export const tokenResponseSchema = z.object({
  auth: authBlockSchema.nullish(),
  wrap_info: wrapInfoSchema.nullish(),
})

export const lookupSelfSchema = z.object({
  data: z.object({
    ttl: z.number().int().nonnegative(),
    renewable: z.boolean().optional(),
  }),
})

export const kvReadSchema = z.object({
  data: z.object({
    data: z.record(z.string(), z.unknown()).nullable(),
    metadata: z.object({
      version: z.number().int().positive(),
      deletion_time: z.string(),
      destroyed: z.boolean(),
    }),
  }),
})

export const transitCiphertextSchema = z.object({
  data: z.object({
    ciphertext: z.string().regex(/^vault:v[1-9]\d*:[A-Za-z0-9+/]+={0,2}$/),
    key_version: z.number().int().positive().optional(),
  }),
})

export const transitPlaintextSchema = z.object({
  data: z.object({ plaintext: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/) }),
})

export const transitKeySchema = z.object({
  data: z.object({
    type: z.string(),
    derived: z.boolean(),
    latest_version: z.number().int().positive(),
  }),
})

export const healthSchema = z.object({
  initialized: z.boolean(),
  sealed: z.boolean(),
  standby: z.boolean(),
  version: z.string().optional(),
})
