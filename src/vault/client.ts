// keyward's Vault client: typed operations over node-vault for exactly the endpoints keyward
// uses (Vault API docs: auth/token, auth/approle, sys/wrapping, secret/kv/kv-v2, secret/transit,
// sys/health). Every failure becomes a KeywardError with a stable code (map-error.ts); reads,
// revocation, renewal and transit en/decryption retry with backoff, token creation and key
// rotation only when the connection was refused (the request never reached Vault).
import nodeVault from 'node-vault'
import { z } from 'zod'
import { KeywardError } from '../errors.js'
import { parseVaultDuration } from './duration.js'
import { mapVaultError } from './map-error.js'
import { ciphertextVersion } from './transit-format.js'
import { defaultSleep, withRetry, type RetryOptions } from './retry.js'
import {
  healthSchema,
  kvReadSchema,
  tokenResponseSchema,
  transitCiphertextSchema,
  transitKeySchema,
  transitPlaintextSchema,
} from './schemas.js'
import { createSession, type SessionLogger, type SessionStatus, type VaultAuthConfig } from './session.js'

export type { VaultAuthConfig, SessionStatus, SessionLogger } from './session.js'
export { ciphertextVersion } from './transit-format.js'

export interface VaultClientConfig {
  /** Base address, e.g. "https://vault.internal:8200". */
  addr: string
  namespace?: string
  /** PEM CA bundle for Vault's TLS certificate (default: system roots). */
  caPem?: string
  auth: VaultAuthConfig
  /** Per-request timeout (default 5000 ms). */
  timeoutMs?: number
  /** Extra attempts for retry-safe operations (default 2, at most 5). */
  retries?: number
  /** Backoff base and cap (defaults 100 ms and 2000 ms). */
  backoff?: { baseDelayMs?: number; maxDelayMs?: number; random?: () => number }
  /** Fraction of keyward's own token lease after which it is renewed (default 2/3). */
  renewFraction?: number
  retryAfterFailureMs?: number
  logger?: SessionLogger
  now?: () => number
}

export interface CreateTokenOptions {
  policies: string[]
  /** Vault duration: seconds or "15m". */
  ttl: string | number
  /** 0 = unlimited uses. */
  numUses: number
  /** Token metadata (Vault: map<string|string>), shown in Vault's audit log and lookups. */
  meta: Record<string, string>
  /** When set, the token comes back response-wrapped (X-Vault-Wrap-TTL). */
  wrapTtl?: string | number
}

export interface CreatedToken {
  /** Present when not wrapped. */
  token?: string
  /** Single-use wrapping token whose unwrap (sys/wrapping/unwrap) yields the token; present when wrapped. */
  wrapToken?: string
  wrapTtl?: number
  /** The created token's accessor (for wrapped responses: wrap_info.wrapped_accessor). */
  accessor: string
  /** Seconds the token lives. */
  leaseDuration: number
}

export interface KvVersion {
  data: Record<string, unknown>
  version: number
}

export interface TransitCiphertext {
  /** "vault:vN:<base64>" */
  ciphertext: string
  keyVersion: number
}

export interface TransitKeyInfo {
  type: string
  derived: boolean
  latestVersion: number
}

export interface VaultHealth {
  initialized: boolean
  sealed: boolean
  standby: boolean
  version?: string
}

export interface VaultClient {
  /** Logs in (AppRole) or reads the token file and starts renewal; operations call it lazily. */
  start(): Promise<void>
  /** Stops the renewal timer; later operations fail with ERR_VAULT_UNAVAILABLE. */
  stop(): void
  status(): SessionStatus
  health(): Promise<VaultHealth>
  createToken(role: string, o: CreateTokenOptions): Promise<CreatedToken>
  revokeAccessor(accessor: string): Promise<void>
  kvRead(mount: string, path: string, version?: number): Promise<KvVersion>
  transitEncrypt(key: string, plaintext: Uint8Array, context?: Uint8Array): Promise<TransitCiphertext>
  transitDecrypt(key: string, ciphertext: string, context?: Uint8Array): Promise<Uint8Array>
  transitRewrap(key: string, ciphertext: string, context?: Uint8Array): Promise<TransitCiphertext>
  transitRotate(key: string): Promise<number>
  transitKeyInfo(key: string): Promise<TransitKeyInfo>
}

/** Names that go into URL paths: no "..", no encoding tricks, no query. */
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const KV_PATH_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(\/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){0,15}$/

export function assertVaultName(v: string, what: string): void {
  if (!NAME_RE.test(v) || v.includes('..')) throw new KeywardError('ERR_BAD_REQUEST', `invalid Vault ${what}`, { detail: { what } })
}
export function assertKvPath(v: string): void {
  if (!KV_PATH_RE.test(v) || v.split('/').some((s) => s === '.' || s.startsWith('..'))) {
    throw new KeywardError('ERR_BAD_REQUEST', 'invalid Vault KV path')
  }
}

const configSchema = z.object({
  addr: z.url({ protocol: /^https?$/ }),
  namespace: z.string().regex(/^[A-Za-z0-9_/.-]{1,256}$/).optional(),
  timeoutMs: z.number().int().min(1).max(120_000).optional(),
  retries: z.number().int().min(0).max(5).optional(),
  renewFraction: z.number().gt(0).lt(1).optional(),
})

function parse<T>(schema: z.ZodType<T>, body: unknown, op: string): T {
  const r = schema.safeParse(body)
  if (!r.success) throw new KeywardError('ERR_VAULT_ERROR', 'unexpected Vault response', { detail: { op } })
  return r.data
}

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')

export function createVaultClient(cfg: VaultClientConfig): VaultClient {
  const checked = configSchema.safeParse(cfg)
  if (!checked.success) throw new KeywardError('ERR_CONFIG', 'invalid Vault client configuration', { detail: { issues: checked.error.issues.map((i) => i.path.join('.')) } })
  const now = cfg.now ?? Date.now
  const common = {
    endpoint: cfg.addr,
    // node-vault's debug output would print request bodies (plaintexts, secret_ids): silenced.
    debug: () => undefined,
    // node-vault turns TLS verification off when VAULT_SKIP_VERIFY is set; keyward never does.
    rpDefaults: { strictSSL: true },
    requestOptions: { timeout: cfg.timeoutMs ?? 5000, ...(cfg.caPem ? { ca: cfg.caPem } : {}) },
  }
  // node-vault falls back to VAULT_TOKEN, VAULT_NAMESPACE and VAULT_PREFIX from the environment;
  // keyward's configuration is explicit (only main.ts reads the environment), so all are reset.
  const explicit = (c: ReturnType<typeof nodeVault>): ReturnType<typeof nodeVault> => {
    const o = c as unknown as { token: string; namespace: string | undefined; pathPrefix: string }
    o.token = ''
    o.namespace = cfg.namespace
    o.pathPrefix = ''
    return c
  }
  const api = explicit(nodeVault(common))
  // Logins go through a token-less instance so no stale X-Vault-Token is sent with them.
  const loginApi = explicit(nodeVault(common))
  const retry: RetryOptions = {
    retries: cfg.retries ?? 2,
    baseDelayMs: cfg.backoff?.baseDelayMs ?? 100,
    maxDelayMs: cfg.backoff?.maxDelayMs ?? 2000,
    random: cfg.backoff?.random ?? Math.random,
    sleep: defaultSleep,
  }
  const raw = <T>(op: string, idempotent: boolean, fn: () => Promise<T>): Promise<T> =>
    withRetry(fn, (e) => mapVaultError(e, op), idempotent, retry)

  const session = createSession({
    auth: cfg.auth,
    now,
    renewFraction: cfg.renewFraction ?? 2 / 3,
    retryAfterFailureMs: cfg.retryAfterFailureMs ?? 5000,
    ...(cfg.logger ? { logger: cfg.logger } : {}),
    io: {
      setToken: (t) => {
        api.token = t
      },
      // A login mints a token; repeating one after a timeout only leaves an unused token behind,
      // which expires with its TTL, so login retries like a read.
      login: (mount, body) => raw('approle-login', true, () => loginApi.write(`auth/${mount}/login`, body)),
      lookupSelf: () => raw('lookup-self', true, () => api.read('auth/token/lookup-self')),
      renewSelf: (increment) => raw('renew-self', true, () => api.write('auth/token/renew-self', increment > 0 ? { increment } : {})),
    },
  })

  async function call<T>(op: string, idempotent: boolean, fn: () => Promise<unknown>, schema: z.ZodType<T>): Promise<T> {
    await session.ensure()
    return parse(schema, await raw(op, idempotent, fn), op)
  }

  function transitBody(extra: Record<string, unknown>, context?: Uint8Array): Record<string, unknown> {
    return context ? { ...extra, context: b64(context) } : extra
  }

  async function keyInfo(key: string): Promise<TransitKeyInfo> {
    assertVaultName(key, 'transit key')
    const res = await call('transit-read-key', true, () => api.read(`transit/keys/${key}`), transitKeySchema)
    return { type: res.data.type, derived: res.data.derived, latestVersion: res.data.latest_version }
  }

  return {
    start: () => session.ensure(),
    stop: () => session.stop(),
    status: () => session.status(),

    // sys/health answers 503 with a body when sealed; node-vault resolves it like a 200.
    health: async () => {
      const body = await raw('health', true, () => api.health())
      return parse(healthSchema, body, 'health')
    },

    async createToken(role, o) {
      assertVaultName(role, 'token role')
      const ttl = parseVaultDuration(o.ttl)
      const wrapTtl = o.wrapTtl === undefined ? undefined : parseVaultDuration(o.wrapTtl)
      if (ttl === undefined || ttl === 0 || (o.wrapTtl !== undefined && !wrapTtl) || !Number.isSafeInteger(o.numUses) || o.numUses < 0) {
        throw new KeywardError('ERR_BAD_REQUEST', 'invalid Vault token parameters')
      }
      const body = { policies: o.policies, meta: o.meta, ttl: `${ttl}s`, num_uses: o.numUses, renewable: false }
      const headers = wrapTtl ? { 'X-Vault-Wrap-TTL': `${wrapTtl}s` } : {}
      // Not idempotent: a retry after a timeout could mint a second, untracked token.
      const res = await call('token-create', false, () => api.write(`auth/token/create/${role}`, body, { headers }), tokenResponseSchema)
      if (wrapTtl) {
        const w = res.wrap_info
        if (!w?.wrapped_accessor) throw new KeywardError('ERR_VAULT_ERROR', 'Vault did not wrap the token', { detail: { op: 'token-create' } })
        return { wrapToken: w.token, wrapTtl: w.ttl, accessor: w.wrapped_accessor, leaseDuration: ttl }
      }
      if (!res.auth) throw new KeywardError('ERR_VAULT_ERROR', 'Vault returned no token', { detail: { op: 'token-create' } })
      return { token: res.auth.client_token, accessor: res.auth.accessor, leaseDuration: res.auth.lease_duration }
    },

    async revokeAccessor(accessor) {
      if (!/^[A-Za-z0-9._-]{1,256}$/.test(accessor)) throw new KeywardError('ERR_BAD_REQUEST', 'invalid accessor')
      await call('token-revoke-accessor', true, () => api.write('auth/token/revoke-accessor', { accessor }), z.unknown())
    },

    async kvRead(mount, path, version) {
      assertVaultName(mount, 'mount')
      assertKvPath(path)
      if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) throw new KeywardError('ERR_BAD_REQUEST', 'invalid KV version')
      const q = version === undefined ? '' : `?version=${version}`
      const res = await call('kv-read', true, () => api.read(`${mount}/data/${path}${q}`), kvReadSchema)
      const { data, metadata } = res.data
      // KV v2: a deleted or destroyed version reads as data:null (Vault answers 404 for those).
      if (data === null || metadata.destroyed || metadata.deletion_time !== '') {
        throw new KeywardError('ERR_NOT_FOUND', 'Vault KV version deleted or destroyed', { detail: { mount, path, version: metadata.version } })
      }
      return { data, version: metadata.version }
    },

    async transitEncrypt(key, plaintext, context) {
      assertVaultName(key, 'transit key')
      const res = await call('transit-encrypt', true, () => api.write(`transit/encrypt/${key}`, transitBody({ plaintext: b64(plaintext) }, context)), transitCiphertextSchema)
      return { ciphertext: res.data.ciphertext, keyVersion: res.data.key_version ?? ciphertextVersion(res.data.ciphertext) }
    },

    async transitDecrypt(key, ciphertext, context) {
      assertVaultName(key, 'transit key')
      const res = await call('transit-decrypt', true, () => api.write(`transit/decrypt/${key}`, transitBody({ ciphertext }, context)), transitPlaintextSchema)
      return new Uint8Array(Buffer.from(res.data.plaintext, 'base64'))
    },

    async transitRewrap(key, ciphertext, context) {
      assertVaultName(key, 'transit key')
      const res = await call('transit-rewrap', true, () => api.write(`transit/rewrap/${key}`, transitBody({ ciphertext }, context)), transitCiphertextSchema)
      return { ciphertext: res.data.ciphertext, keyVersion: res.data.key_version ?? ciphertextVersion(res.data.ciphertext) }
    },

    async transitRotate(key) {
      assertVaultName(key, 'transit key')
      // Not idempotent: a repeated rotate adds a second version.
      const res = await call('transit-rotate', false, () => api.write(`transit/keys/${key}/rotate`, {}), z.unknown())
      // Vault >= 1.12 answers with the key (200); older versions with 204 and no body.
      const parsed = transitKeySchema.safeParse(res)
      if (parsed.success) return parsed.data.data.latest_version
      return (await keyInfo(key)).latestVersion
    },

    transitKeyInfo: keyInfo,
  }
}
