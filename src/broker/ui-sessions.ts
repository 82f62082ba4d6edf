// Dashboard sessions (/ui): a login exchanges an admin credential for a random session cookie.
// The session lives in the store (every replica sees it; logout and expiry hold everywhere),
// keyed by the SHA-256 of the cookie, so a copy of the database holds no usable cookie. The
// CSRF token of a session is an HMAC of its cookie value: only a holder of the cookie can know
// it, and nothing more is stored. Revoking the admin credential ends its sessions at once.
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { KeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import type { RequireCredential } from './admin.js'
import { constantTimeEqual } from '../util/bytes.js'

type Deps = Pick<BrokerDeps, 'store' | 'clock' | 'audit'>

/** A session lasts this long from login; there is no sliding renewal. */
export const UI_SESSION_TTL_MS = 8 * 3600 * 1000
const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/

export interface UiSession {
  credentialId: string
  /** The token every POST form of this session carries. */
  csrf: string
  expiresAt: number
}

const sessionId = (cookie: string): string => createHash('sha256').update(cookie).digest('hex')
const csrfFor = (cookie: string): string => createHmac('sha256', cookie).update('keyward-ui-csrf-v1').digest('base64url')

/** Checks the credential (as the admin API does) and opens a session; returns the cookie value once. */
export async function openUiSession(deps: Deps, requireAdmin: RequireCredential, credential: string): Promise<{ cookie: string; session: UiSession }> {
  const credentialId = await requireAdmin(`Bearer ${credential.trim()}`)
  const now = deps.clock().getTime()
  await deps.store.pruneUiSessions(now)
  const cookie = randomBytes(32).toString('base64url')
  const expiresAt = now + UI_SESSION_TTL_MS
  await deps.store.insertUiSession({ id: sessionId(cookie), credentialId, createdAt: now, expiresAt })
  await deps.audit({ type: 'ui.login', subject: credentialId, decision: 'info', detail: { session: sessionId(cookie).slice(0, 16) } })
  return { cookie, session: { credentialId, csrf: csrfFor(cookie), expiresAt } }
}

/** The live session of a cookie value, or null (unknown, expired, logged out, or its credential revoked). */
export async function resolveUiSession(deps: Pick<Deps, 'store' | 'clock'>, cookie: string | undefined): Promise<UiSession | null> {
  if (cookie === undefined || !COOKIE_VALUE.test(cookie)) return null
  const row = await deps.store.getUiSession(sessionId(cookie), deps.clock().getTime())
  if (!row) return null
  const cred = await deps.store.getCredential(row.credentialId)
  if (!cred || cred.revokedAt !== null || cred.kind !== 'admin') return null
  return { credentialId: row.credentialId, csrf: csrfFor(cookie), expiresAt: row.expiresAt }
}

/** Throws ERR_FORBIDDEN unless `token` is the session's CSRF token. */
export function checkCsrf(session: UiSession, token: unknown): void {
  const enc = new TextEncoder()
  if (typeof token !== 'string' || !constantTimeEqual(enc.encode(token), enc.encode(session.csrf))) {
    throw new KeywardError('ERR_FORBIDDEN', 'the form is missing its CSRF token, or it is not this session\'s')
  }
}

export async function closeUiSession(deps: Deps, cookie: string, session: UiSession): Promise<void> {
  await deps.store.deleteUiSession(sessionId(cookie))
  await deps.audit({ type: 'ui.logout', subject: session.credentialId, decision: 'info', detail: { session: sessionId(cookie).slice(0, 16) } })
}
