// Broker configuration: one zod schema, filled from a config file (YAML or JSON), then the
// environment, then command-line flags. Only src/main.ts and the CLI read process.env.
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { KeywardError } from '../errors.js'
import { EAR_FORMS } from './ear.js'
import { ALERT_TYPES } from './alert-types.js'

const Bucket = z.object({ ratePerSecond: z.coerce.number().positive(), burst: z.coerce.number().int().min(1) })

export const ConfigSchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.coerce.number().int().min(0).max(65535).default(8080),
    dataDir: z.string().default('./.data'),
    /** postgres://… switches storage to PostgreSQL; absent means SQLite in dataDir. */
    databaseUrl: z.string().url().optional(),
    /**
     * The origin (and optional base path) clients address, e.g. https://keyward.example: DPoP
     * proofs must name it (htu). Required unless the broker listens on loopback only.
     */
    publicUrl: z.string().url().refine((u) => /^https?:$/.test(new URL(u).protocol), 'publicUrl must be http(s)').optional(),
    /** Require server-provided DPoP nonces (RFC 9449 §8) on releases: proofs must carry a fresh DPoP-Nonce. */
    requireDpopNonce: z.boolean().default(false),
    /** Peer addresses (reverse proxies) whose X-Forwarded-Proto/-Host count when publicUrl is not set. */
    trustedProxies: z.array(z.union([z.ipv4(), z.ipv6()])).default([]),
    /** Serving processes sharing the port and the store; `auto`: one per CPU the host and the store allow (src/broker/workers.ts; one on SQLite). */
    workers: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(64)]).default('auto'),
    issuer: z.string().default('keyward'),
    audience: z.string().default('keyward'),
    /** Audiences a workload may ask POST /v1/attest for (field `audience`), e.g. "vault" for Vault's JWT auth (docs/vault.md). */
    extraAudiences: z.array(z.string().min(1)).default([]),
    /**
     * The attestation-result form (docs/ear.md): draft-ietf-rats-ear-04 (default), or Veraison's
     * dotted legacy form for relying parties that use Veraison's `ear` libraries.
     */
    earForm: z.enum(EAR_FORMS).default('draft-04'),
    nonceTtlSeconds: z.coerce.number().int().min(5).max(3600).default(60),
    tokenTtlSeconds: z.coerce.number().int().min(30).max(86400).default(300),
    maxBodyBytes: z.coerce.number().int().min(1024).max(16 * 1024 * 1024).default(512 * 1024),
    clockSkewSeconds: z.coerce.number().int().min(0).max(600).default(60),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    tls: z
      .object({
        cert: z.string(),
        key: z.string(),
        /** When set, admin endpoints require a client certificate from this CA (mTLS). */
        clientCa: z.string().optional(),
      })
      .optional(),
    kek: z
      .discriminatedUnion('provider', [
        z.object({ provider: z.literal('local') }),
        z.object({ provider: z.literal('vault-transit'), key: z.string().default('keyward') }),
      ])
      .default({ provider: 'local' }),
    vault: z
      .object({
        addr: z.string().url(),
        namespace: z.string().optional(),
        tokenFile: z.string().optional(),
        approle: z
          .object({ roleId: z.string().optional(), roleIdFile: z.string().optional(), secretIdFile: z.string(), mount: z.string().optional() })
          .refine((a) => (a.roleId === undefined) !== (a.roleIdFile === undefined), 'give exactly one of roleId, roleIdFile')
          .optional(),
        timeoutMs: z.coerce.number().int().min(100).default(5000),
      })
      .optional(),
    tpm: z
      .object({
        /** PEM files of trusted TPM manufacturer (EK) CAs. */
        ekCaFiles: z.array(z.string()).default([]),
        allowlistPcr: z.coerce.number().int().min(0).max(23).default(15),
      })
      .default({ ekCaFiles: [], allowlistPcr: 15 }),
    snp: z.object({ certCacheDir: z.string().optional() }).default({}),
    /** Abuse controls (docs/threat-model.md): token buckets per client address and per attested key, and caps on pending state. */
    limits: z
      .object({
        perAddress: Bucket.prefault({ ratePerSecond: 20, burst: 100 }),
        perWorkload: Bucket.prefault({ ratePerSecond: 5, burst: 30 }),
        /** Unexpired challenge nonces kept at once (used or not); beyond it /v1/challenge answers ERR_TOO_MANY_PENDING. */
        maxOutstandingNonces: z.coerce.number().int().min(1).default(10_000),
        /** Unexpired TPM credential activations kept at once. */
        maxPendingActivations: z.coerce.number().int().min(1).default(1_000),
        /**
         * Requests handled at once by this process (health and metrics apart). The rest wait, their
         * bodies unread, in a queue of at most maxQueuedRequests; beyond it ERR_OVERLOADED (503).
         * Bounds the memory a flood can hold: about maxInflightRequests × 4 × maxBodyBytes at worst
         * (docs/operations.md §Memory).
         */
        maxInflightRequests: z.coerce.number().int().min(1).max(100_000).default(128),
        maxQueuedRequests: z.coerce.number().int().min(0).max(1_000_000).default(1_024),
        /** Requests running or waiting from one client address; beyond it ERR_RATE_LIMITED (429), so one client cannot take every slot. */
        maxInflightPerAddress: z.coerce.number().int().min(1).max(1_000_000).default(32),
      })
      .prefault({}),
    /** SPIFFE identities for attested workloads (docs/spiffe.md); absent: the /v1/spiffe endpoints answer ERR_NOT_FOUND. */
    spiffe: z
      .object({
        /** The trust domain keyward's SPIFFE CA signs for (SPIFFE-ID.md §2.1): lowercase [a-z0-9._-]. */
        trustDomain: z.string().regex(/^[a-z0-9._-]{1,255}$/, 'a trust domain name is 1–255 of lowercase letters, digits, ".", "_" and "-"'),
        /** The intermediate CA's lifetime; `keys rotate` replaces it sooner. The root lives ten times as long. */
        caTtlSeconds: z.coerce.number().int().min(3600).max(5 * 365 * 86400).default(30 * 86400),
        /** spiffe_refresh_hint of the bundle endpoint (SPIFFE_Trust_Domain_and_Bundle.md §4.1.2). */
        refreshHintSeconds: z.coerce.number().int().min(60).max(30 * 86400).default(300),
      })
      .strict()
      .optional(),
    /** Signed webhooks for security events (docs/operations.md §Alerts), delivered from a durable outbox. */
    alerts: z
      .object({
        webhooks: z
          .array(
            z
              .strictObject({
                url: z.string().url().refine((u) => /^https?:$/.test(new URL(u).protocol), 'a webhook url must be http(s)'),
                /** The HMAC key: a file holding it, or an environment variable naming it. Never in the config itself. */
                secretFile: z.string().min(1).optional(),
                secretEnv: z.string().min(1).optional(),
                events: z.array(z.enum(ALERT_TYPES)).min(1),
              })
              .refine((w) => (w.secretFile === undefined) !== (w.secretEnv === undefined), 'give exactly one of secretFile, secretEnv'),
          )
          .default([]),
        /** Attempts before a delivery is marked failed; attempt n waits 2^n s, at most maxBackoffSeconds. */
        maxAttempts: z.coerce.number().int().min(1).max(30).default(8),
        maxBackoffSeconds: z.coerce.number().int().min(1).max(86400).default(3600),
        timeoutMs: z.coerce.number().int().min(100).max(60_000).default(5000),
      })
      .strict()
      .prefault({}),
    /** What a workload sees of a policy denial: a summary (code and count) or every failure (conditions, expressions, reference sets). */
    denialDetail: z.enum(['summary', 'full']).default('summary'),
    /** OpenTelemetry tracing of attest and release: off, or OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (src/broker/tracing.ts). */
    tracing: z.enum(['off', 'otlp']).default('off'),
  })
  .strict()

export type BrokerConfig = z.infer<typeof ConfigSchema>

/** Merges a config file, environment variables (KEYWARD_*) and flags; later sources win. */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Record<string, unknown> }): BrokerConfig {
  let fromFile: Record<string, unknown> = {}
  if (opts.file) {
    let text: string
    try {
      text = readFileSync(opts.file, 'utf8')
    } catch (e) {
      throw new KeywardError('ERR_CONFIG', `cannot read config file ${opts.file}`, { cause: e })
    }
    const parsed: unknown = parseYaml(text)
    if (parsed !== null && typeof parsed !== 'object') throw new KeywardError('ERR_CONFIG', 'config file must hold a mapping')
    fromFile = (parsed ?? {}) as Record<string, unknown>
  }
  const env = opts.env ?? {}
  const fromEnv: Record<string, unknown> = {}
  const envMap: Record<string, string> = {
    KEYWARD_HOST: 'host',
    KEYWARD_PORT: 'port',
    KEYWARD_DATA_DIR: 'dataDir',
    DATABASE_URL: 'databaseUrl',
    KEYWARD_WORKERS: 'workers',
    KEYWARD_LOG_LEVEL: 'logLevel',
    KEYWARD_ISSUER: 'issuer',
    KEYWARD_PUBLIC_URL: 'publicUrl',
    KEYWARD_EAR_FORM: 'earForm',
    KEYWARD_TRACING: 'tracing',
  }
  for (const [k, field] of Object.entries(envMap)) if (env[k] !== undefined && env[k] !== '') fromEnv[field] = env[k]
  const merged = { ...fromFile, ...fromEnv, ...stripUndefined(opts.overrides ?? {}) }
  const r = ConfigSchema.safeParse(merged)
  if (!r.success) {
    const issue = r.error.issues[0]!
    throw new KeywardError('ERR_CONFIG', `invalid configuration at ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  return r.data
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))
}
