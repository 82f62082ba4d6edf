// keyward's own Vault credential: a token read from a file (e.g. a Vault Agent sink) or an
// AppRole login, kept alive with auth/token/renew-self before it expires (Vault API docs,
// auth/token "Renew a token (self)", auth/approle "Login with AppRole"). The token lives only in
// the node-vault instance's header state; it is never logged nor put into an error.
import { readFile } from 'node:fs/promises'
import { KeywardError } from '../errors.js'
import { authBlockSchema, lookupSelfSchema } from './schemas.js'

export type VaultAuthConfig =
  | { kind: 'token-file'; path: string }
  | { kind: 'approle'; roleId: string; secretIdFile: string; mount?: string }

export interface SessionStatus {
  authenticated: boolean
  /** Epoch ms when keyward's own token expires; null for non-expiring (root/periodic-less) tokens. */
  expiresAt: number | null
  logins: number
  renewals: number
  failures: number
}

export interface SessionLogger {
  info(obj: Record<string, unknown>, msg: string): void
  warn(obj: Record<string, unknown>, msg: string): void
}

/** The three calls a session needs; the client passes retried, error-mapped versions. */
export interface SessionIo {
  setToken(token: string): void
  login(mount: string, body: { role_id: string; secret_id: string }): Promise<unknown>
  lookupSelf(): Promise<unknown>
  renewSelf(increment: number): Promise<unknown>
}

export interface Session {
  ensure(): Promise<void>
  stop(): void
  status(): SessionStatus
}

export interface SessionOptions {
  auth: VaultAuthConfig
  io: SessionIo
  now: () => number
  /** Renew when this fraction of the lease has elapsed (default 2/3). */
  renewFraction: number
  /** Wait after a failed renewal before trying again, bounded by the time left. */
  retryAfterFailureMs: number
  logger?: SessionLogger
}

const TOKEN_RE = /^[\x21-\x7e]{1,512}$/

async function readCredentialFile(path: string, what: string): Promise<string> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new KeywardError('ERR_CONFIG', `cannot read ${what} file`, { detail: { path, errno: (e as { code?: string }).code } })
  }
  const v = text.trim()
  if (!TOKEN_RE.test(v)) throw new KeywardError('ERR_CONFIG', `${what} file is empty or malformed`, { detail: { path } })
  return v
}

export function createSession(o: SessionOptions): Session {
  const st: SessionStatus = { authenticated: false, expiresAt: null, logins: 0, renewals: 0, failures: 0 }
  let timer: NodeJS.Timeout | undefined
  let inflight: Promise<void> | undefined
  let stopped = false
  /** Lease we asked for at login; a shorter renewal means token_max_ttl capped it. */
  let loginLease = 0

  function schedule(ms: number, fn: () => Promise<void>): void {
    if (stopped) return
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      fn().catch(() => undefined)
    }, Math.max(10, ms))
    timer.unref()
  }

  function scheduleRenewal(leaseSeconds: number, renewable: boolean): void {
    st.expiresAt = leaseSeconds > 0 ? o.now() + leaseSeconds * 1000 : null
    const wait = leaseSeconds * 1000 * o.renewFraction
    if (o.auth.kind === 'approle') {
      // A non-renewable token, or one whose renewal came back shorter than asked for (capped by
      // token_max_ttl, Vault API docs auth/approle), is replaced by a fresh login instead.
      if (!renewable || leaseSeconds < loginLease) schedule(wait, () => refresh(true))
      else schedule(wait, () => refresh(false))
      return
    }
    // A token with ttl 0 never expires (root); a non-renewable one is replaced through its file.
    if (leaseSeconds <= 0) return
    schedule(wait, () => refresh(!renewable))
  }

  async function login(): Promise<void> {
    if (o.auth.kind === 'token-file') {
      o.io.setToken(await readCredentialFile(o.auth.path, 'Vault token'))
      const parsed = lookupSelfSchema.safeParse(await o.io.lookupSelf())
      if (!parsed.success) throw new KeywardError('ERR_VAULT_ERROR', 'unexpected Vault lookup-self response')
      st.logins++
      st.authenticated = true
      loginLease = parsed.data.data.ttl
      scheduleRenewal(parsed.data.data.ttl, parsed.data.data.renewable ?? false)
      return
    }
    const secretId = await readCredentialFile(o.auth.secretIdFile, 'AppRole secret_id')
    const body = await o.io.login(o.auth.mount ?? 'approle', { role_id: o.auth.roleId, secret_id: secretId })
    const parsed = authBlockSchema.safeParse((body as { auth?: unknown } | null)?.auth)
    if (!parsed.success) throw new KeywardError('ERR_VAULT_ERROR', 'unexpected Vault AppRole login response')
    o.io.setToken(parsed.data.client_token)
    st.logins++
    st.authenticated = true
    loginLease = parsed.data.lease_duration
    scheduleRenewal(parsed.data.lease_duration, parsed.data.renewable)
  }

  async function refresh(relogin: boolean): Promise<void> {
    try {
      if (relogin) {
        await login()
        o.logger?.info({ logins: st.logins }, 'vault: logged in again')
        return
      }
      const body = await o.io.renewSelf(loginLease)
      const parsed = authBlockSchema.safeParse((body as { auth?: unknown } | null)?.auth)
      if (!parsed.success) throw new KeywardError('ERR_VAULT_ERROR', 'unexpected Vault renew-self response')
      st.renewals++
      scheduleRenewal(parsed.data.lease_duration, parsed.data.renewable)
    } catch (e) {
      st.failures++
      const code = e instanceof KeywardError ? e.code : 'ERR_INTERNAL'
      o.logger?.warn({ code, relogin }, 'vault: credential refresh failed')
      // Try again with a fresh login (AppRole) or a fresh read of the token file (a Vault Agent
      // sink may hold a new token), well before the current token runs out when possible.
      const left = st.expiresAt === null ? Infinity : st.expiresAt - o.now()
      if (left <= 0) st.authenticated = false // the next operation logs in first
      schedule(left > 0 ? Math.min(o.retryAfterFailureMs, left / 2) : o.retryAfterFailureMs, () => refresh(true))
    }
  }

  return {
    ensure(): Promise<void> {
      if (stopped) return Promise.reject(new KeywardError('ERR_VAULT_UNAVAILABLE', 'Vault client stopped'))
      if (st.authenticated) return Promise.resolve()
      inflight ??= login().finally(() => {
        inflight = undefined
      })
      return inflight
    },
    stop(): void {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = undefined
    },
    status: () => ({ ...st }),
  }
}
