// Admin and relying-party credentials: `kw.<kind>.<name>.<secret>` bearer tokens, looked up by
// id and checked against their stored hash in constant time (the admin API is routes/admin.ts).
import { KeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import { hashCredential, isLegacyHash, verifyCredential } from '../sealing/credentials.js'

export type RequireCredential = (authorization: string | undefined, kind?: 'admin' | 'relying-party') => Promise<string>

/**
 * Returns a checker that resolves to the caller's credential id or throws ERR_UNAUTHORIZED.
 * Every well-formed attempt costs the same: one store read and one SHA-256, compared in constant
 * time whether the name is unknown, revoked or right. Nothing is cached, so a revocation holds
 * at once on every replica sharing the store.
 */
export function createAdminAuth(deps: BrokerDeps): RequireCredential {
  return async (authorization, kind = 'admin') => {
    const m = /^Bearer (kw\.(admin|rp)\.([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{20,}))$/.exec(authorization ?? '')
    const deny = () => new KeywardError('ERR_UNAUTHORIZED', `${kind} credential required`)
    if (!m) throw deny()
    const wantPrefix = kind === 'admin' ? 'admin' : 'rp'
    const id = `${wantPrefix}:${m[3]}`
    const row = await deps.store.getCredential(id)
    const ok = await verifyCredential(m[4]!, row?.hash)
    if (!ok || m[2] !== wantPrefix || !row || row.revokedAt !== null || row.kind !== kind) throw deny()
    if (isLegacyHash(row.hash)) await deps.store.rehashCredential(id, await hashCredential(m[4]!))
    return id
  }
}
