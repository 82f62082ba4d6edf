// TPM enrolment: who may bind a workload name to a TPM. Credential activation proves only that an
// AK lives in the TPM of a certified EK; any TPM of a trusted manufacturer can do that, so the
// name a registrant asks for counts only with an authority's say: an admin approves the pending
// enrolment, the registrant presents a single-use enrolment token an admin issued for that name,
// or the EK is on the admin's allow list for that name. Without one the AK stays pending and
// admits nothing (ERR_ENROLMENT_PENDING). A denied EK can neither register nor attest.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { KeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import type { AkRow, EkListRow } from '../store/types.js'
import { sha256, toHex } from '../util/bytes.js'

type Deps = Pick<BrokerDeps, 'store' | 'clock' | 'audit' | 'vault'>

/** Enrolled TPM names: lowercase, no ':' so `tpm:<name>` never collides with another namespace. */
export const ENROLLED_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/
const DIGEST = /^[0-9a-f]{64}$/
const TOKEN_PREFIX = 'kwe.'
export const DEFAULT_TOKEN_TTL_S = 3600
const MAX_TOKEN_TTL_S = 30 * 24 * 3600

export function checkEnrolledName(name: string): string {
  if (!ENROLLED_NAME.test(name)) {
    throw new KeywardError('ERR_BAD_REQUEST', 'workload names are 1–63 of [a-z0-9._-], starting with a letter or digit')
  }
  return name
}

export function checkEkDigest(hex: string): string {
  const h = hex.toLowerCase().replace(/:/g, '')
  if (!DIGEST.test(h)) throw new KeywardError('ERR_BAD_REQUEST', 'an EK digest is 64 hex digits (SHA-256)')
  return h
}

/** SHA-256 of the EK public key as SPKI DER: the same digest whatever form the key came in. */
export function ekPublicDigest(key: KeyObject): string {
  return toHex(sha256(new Uint8Array(key.export({ type: 'spki', format: 'der' }))))
}

export const enrolTokenHash = (token: string): string => createHash('sha256').update(token).digest('hex')

function eksOf(row: { ekFingerprint: string | null; ekPubDigest: string | null }): string[] {
  return [row.ekFingerprint, row.ekPubDigest].filter((e): e is string => e !== null)
}

/** Throws ERR_EK_DENIED when any digest of this EK is on the deny list. */
export async function assertEkNotDenied(
  ekList: { listEkEntries(eks: string[]): Promise<EkListRow[]> },
  ek: { ekFingerprint: string | null; ekPubDigest: string | null },
): Promise<void> {
  const eks = eksOf(ek)
  if (eks.length === 0) return
  const denied = (await ekList.listEkEntries(eks)).find((e) => e.kind === 'deny')
  if (denied) throw new KeywardError('ERR_EK_DENIED', 'this TPM\'s endorsement key is denied', { detail: { ek: denied.ek } })
}

/**
 * Decides how a freshly activated AK is enrolled: an enrolment token for the name (consumed
 * exactly once here), else an allow-list entry of its EK for the name, else pending.
 */
export async function enrolmentFor(
  deps: Pick<Deps, 'store' | 'clock'>,
  a: { akName: string; workload: string; enrolTokenHash: string | null; ekFingerprint: string | null; ekPubDigest: string | null },
): Promise<{ status: 'enrolled' | 'pending'; enrolledBy: string | null; reason?: string }> {
  const now = deps.clock().getTime()
  if (a.enrolTokenHash !== null) {
    if (await deps.store.consumeEnrolmentToken(a.enrolTokenHash, a.workload, now, a.akName)) {
      return { status: 'enrolled', enrolledBy: `enrol-token:${a.enrolTokenHash.slice(0, 16)}` }
    }
  }
  const allowed = (await deps.store.listEkEntries(eksOf(a))).find((e) => e.kind === 'allow' && e.workload === a.workload)
  if (allowed) return { status: 'enrolled', enrolledBy: `ek-allow:${allowed.id}` }
  return {
    status: 'pending',
    enrolledBy: null,
    reason: a.enrolTokenHash !== null ? 'the enrolment token is unknown, used, expired or for another name' : 'waiting for an admin to approve the enrolment',
  }
}

// --- admin operations (admin API and CLI) ----------------------------------------------

export async function listPendingEnrolments(deps: Pick<Deps, 'store'>): Promise<AkRow[]> {
  return (await deps.store.listAks()).filter((a) => a.status === 'pending' && a.revokedAt === null)
}

export async function decideEnrolment(deps: Deps, akName: string, decision: 'approve' | 'reject', by: string): Promise<AkRow> {
  const row = await deps.store.getAk(akName)
  if (!row) throw new KeywardError('ERR_NOT_FOUND', 'no such enrolment')
  if (decision === 'approve') await assertEkNotDenied(deps.store, row)
  if (!(await deps.store.setAkStatus(akName, decision === 'approve' ? 'enrolled' : 'rejected', by))) {
    throw new KeywardError('ERR_CONFLICT', `the enrolment is ${row.status}, not pending`)
  }
  await deps.audit({ type: `enrolment.${decision}`, subject: akName, decision: 'info', detail: { workload: row.workload, ekFingerprint: row.ekFingerprint, by } })
  return (await deps.store.getAk(akName))!
}

/** Issues a single-use enrolment token for a name; returns it once (only its hash is kept). */
export async function issueEnrolmentToken(deps: Deps, workload: string, ttlSeconds: number, by: string): Promise<{ token: string; workload: string; expiresAt: string }> {
  checkEnrolledName(workload)
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_S) throw new KeywardError('ERR_BAD_REQUEST', `ttl is 1–${MAX_TOKEN_TTL_S} seconds`)
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
  const id = enrolTokenHash(token)
  const now = deps.clock().getTime()
  await deps.store.insertEnrolmentToken({ id, workload, createdAt: now, createdBy: by, expiresAt: now + ttlSeconds * 1000, usedAt: null, usedBy: null })
  await deps.audit({ type: 'enrolment.token', subject: workload, decision: 'info', detail: { tokenId: id.slice(0, 16), ttlSeconds, by } })
  return { token, workload, expiresAt: new Date(now + ttlSeconds * 1000).toISOString() }
}

export async function allowEk(deps: Deps, ek: string, workload: string, by: string, note: string | null = null): Promise<EkListRow> {
  const row: EkListRow = { id: randomUUID(), kind: 'allow', ek: checkEkDigest(ek), workload: checkEnrolledName(workload), createdAt: deps.clock().getTime(), createdBy: by, note }
  await deps.store.putEkEntry(row)
  await deps.audit({ type: 'ek.allow', subject: row.ek, decision: 'info', detail: { id: row.id, workload, by } })
  return row
}

export async function removeEkEntry(deps: Deps, id: string, by: string): Promise<void> {
  if ((await deps.store.removeEkEntries({ id })) === 0) throw new KeywardError('ERR_NOT_FOUND', 'no such EK list entry')
  await deps.audit({ type: 'ek.remove', subject: id, decision: 'info', detail: { by } })
}

/** Lifts the denial of an EK, by either of its digests (certificate or public key): both go. */
export async function undenyEk(deps: Deps, ek: string, by: string): Promise<number> {
  const digest = checkEkDigest(ek)
  const same = new Set([digest])
  for (const a of await deps.store.listAks()) if (eksOf(a).includes(digest)) eksOf(a).forEach((e) => same.add(e))
  let n = 0
  for (const e of same) n += await deps.store.removeEkEntries({ kind: 'deny', ek: e })
  if (n === 0) throw new KeywardError('ERR_NOT_FOUND', 'that EK is not denied')
  await deps.audit({ type: 'ek.undeny', subject: digest, decision: 'info', detail: { by, digests: [...same] } })
  return n
}

/**
 * Revokes an AK, its live attestations and their Vault leases. With denyEk, also denies its EK
 * (every digest known for it): no new AK of that TPM registers, and no AK of it attests or keeps
 * live attestations, until `keyward ek undeny`.
 */
export async function revokeAk(deps: Deps, akName: string, opts: { denyEk: boolean }, by: string): Promise<{ aks: string[]; attestations: number; vaultTokens: number; deniedEks: string[] }> {
  const row = await deps.store.getAk(akName)
  if (!row) throw new KeywardError('ERR_NOT_FOUND', 'no such AK')
  const now = deps.clock().getTime()
  await deps.store.revokeAk(akName, now)
  const aks = [akName]
  const deniedEks: string[] = []
  if (opts.denyEk) {
    const eks = eksOf(row)
    if (eks.length === 0) throw new KeywardError('ERR_BAD_REQUEST', 'this AK was pinned without an EK; there is no EK to deny')
    const existing = new Set((await deps.store.listEkEntries(eks)).filter((e) => e.kind === 'deny').map((e) => e.ek))
    for (const ek of eks) {
      if (!existing.has(ek)) await deps.store.putEkEntry({ id: randomUUID(), kind: 'deny', ek, workload: null, createdAt: now, createdBy: by, note: `ak revoke ${akName}` })
      deniedEks.push(ek)
    }
    for (const other of await deps.store.listAks()) {
      if (other.name !== akName && eksOf(other).some((e) => eks.includes(e))) aks.push(other.name)
    }
  }
  const revoked = await deps.store.revokeAttestationsByAk(aks, now)
  let vaultTokens = 0
  if (deps.vault) {
    for (const a of revoked) vaultTokens += await deps.vault.revokeFor({ jti: a.jti }, `AK ${akName} revoked`)
  }
  await deps.audit({ type: 'ak.revoke', subject: akName, decision: 'info', detail: { by, aks, attestations: revoked.length, vaultTokens, deniedEks } })
  return { aks, attestations: revoked.length, vaultTokens, deniedEks }
}
