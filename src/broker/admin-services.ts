// Administrative operations, shared by the admin HTTP API and the `keyward` CLI so that both
// take the same path: validation, audit, revocation side effects.
import { randomBytes } from 'node:crypto'
import type { z } from 'zod'
import { KeywardError } from '../errors.js'
import type { BrokerDeps, PolicyFailure } from './deps.js'
import { parseItems, type MeasuredItems } from './measured-items.js'
import type { PutSecretRequest, ReferenceValueRequest } from '../protocol/wire.js'
import { fromB64, sha256, toHex } from '../util/bytes.js'
import { storeSecret, type RewrapResult } from '../sealing/sealer.js'
import type { AuditChainResult } from '../audit/chain.js'
import { verifyStoredAuditChain } from '../audit/verify-store.js'
import type { AuditRow, ReferenceValueRow } from '../store/types.js'
import { activeRefs, referenceValue } from '../policy/reference-values.js'
import { parseTpmPublic, akName, checkAkAttributes } from '../verifiers/tpm/index.js'
import { checkEnrolledName } from './enrolment.js'

type AdminDeps = Pick<BrokerDeps, 'store' | 'sealer' | 'kek' | 'appraiser' | 'clock' | 'audit' | 'vault' | 'tokens' | 'spiffe'>

export async function putSecret(deps: AdminDeps, name: string, req: z.infer<typeof PutSecretRequest>, by: string): Promise<number> {
  let value: Uint8Array = new Uint8Array(0)
  let source: string | null = null
  if (req.vaultKv) source = JSON.stringify({ vaultKv: req.vaultKv })
  else if (req.text !== undefined) value = new TextEncoder().encode(req.text)
  else value = fromB64(req.value!) ?? new Uint8Array(0)
  const at = deps.clock().getTime()
  // The version and its audit row commit in one transaction: a crash leaves both or neither.
  return storeSecret(deps.store, deps.sealer, { name, value, source, createdBy: by, createdAt: at }, {
    at,
    entry: (version) => ({ type: 'secret.put', subject: name, decision: 'info', detail: { version, by, kind: source ? 'vault-kv' : 'stored' } }),
  })
}

export async function removeSecret(deps: AdminDeps, name: string, by: string): Promise<void> {
  if (!(await deps.store.deleteSecret(name, by))) throw new KeywardError('ERR_NOT_FOUND', `secret ${name} not found`)
  await deps.audit({ type: 'secret.rm', subject: name, decision: 'info', detail: { by } })
}

export async function applyPolicy(deps: AdminDeps, source: string, by: string): Promise<{ name: string; version: number }> {
  const { name } = deps.appraiser.validate(source)
  const at = deps.clock().getTime()
  const version = await deps.store.putPolicy(
    { name, source, sha256: toHex(sha256(new TextEncoder().encode(source))), createdAt: at, createdBy: by },
    { at, entry: (v) => ({ type: 'policy.apply', subject: name, decision: 'info', detail: { version: v, by } }) },
  )
  // Tokens admitted by an older version keep their grants only as the new version states them
  // (release re-checks grants); Vault tokens minted under the old version are revoked.
  if (version > 1 && deps.vault) await deps.vault.revokeFor({ policy: name }, `policy ${name} changed to version ${version}`)
  return { name, version }
}

/** Deactivates a policy; the Vault tokens minted under it are revoked. */
export async function deactivatePolicy(deps: AdminDeps, name: string, by: string): Promise<void> {
  if (!(await deps.store.deactivatePolicy(name))) throw new KeywardError('ERR_NOT_FOUND', 'no such policy')
  await deps.audit({ type: 'policy.deactivate', subject: name, decision: 'info', detail: { by } })
  if (deps.vault) await deps.vault.revokeFor({ policy: name }, 'policy deactivated')
}

export async function addReferenceValue(deps: AdminDeps, req: z.infer<typeof ReferenceValueRequest>, by: string): Promise<string> {
  const row = referenceValue(req.set, req.tee, req.value, {
    createdBy: by,
    source: req.source,
    now: deps.clock(),
    expiresAt: req.expiresAt ? Date.parse(req.expiresAt) : null,
    note: req.note ?? null,
  })
  const [id] = await storeReferenceValues(deps, [row], by)
  return id!
}

/** Stores reference values (from referenceValue() or a platform importer) and audits each with its provenance. */
export async function storeReferenceValues(deps: AdminDeps, rows: ReferenceValueRow[], by: string): Promise<string[]> {
  for (const row of rows) {
    await deps.store.putReferenceValue(row)
    await deps.audit({ type: 'reference.add', subject: row.set, decision: 'info', detail: { id: row.id, tee: row.tee, referenceValue: row.value, source: row.source, by } })
  }
  return rows.map((r) => r.id)
}

/** Revokes a reference value: it denies at once, and every token and Vault lease granted on it is revoked. */
export async function revokeReferenceValue(deps: AdminDeps, id: string, by: string): Promise<{ attestations: number; vaultTokens: number }> {
  const at = deps.clock().getTime()
  if (!(await deps.store.revokeReferenceValue(id, by, at))) throw new KeywardError('ERR_NOT_FOUND', `reference value ${id} not found`)
  const revoked = await deps.store.revokeAttestationsByReference(id, at)
  const vaultTokens = deps.vault ? await deps.vault.revokeFor({ referenceId: id }, `reference value ${id} revoked`) : 0
  await deps.audit({ type: 'reference.revoke', subject: id, decision: 'info', detail: { by, attestations: revoked.length, vaultTokens } })
  return { attestations: revoked.length, vaultTokens }
}

/** Rotates the KEK and re-wraps every data key; plaintext at rest is never touched. */
export async function rotateKek(deps: AdminDeps): Promise<RewrapResult> {
  const r = await deps.sealer.rewrapAll(deps.store)
  await deps.audit({ type: 'keys.rotate-kek', subject: r.kekId, decision: r.failed.length ? 'deny' : 'info', detail: { total: r.total, rewrapped: r.rewrapped, failed: r.failed } })
  if (r.failed.length) throw new KeywardError('ERR_UNSEAL', `${r.failed.length} secret versions could not be re-wrapped`, { detail: { failed: r.failed } })
  return r
}

/** A new token-signing key and, with SPIFFE configured, a new SVID intermediate CA and JWT-SVID key. */
export async function rotateSigningKey(deps: AdminDeps): Promise<string> {
  const kid = await deps.tokens.rotate()
  await deps.audit({ type: 'keys.rotate-signing', subject: kid, decision: 'info', detail: {} })
  if (deps.spiffe) {
    const s = await deps.spiffe.rotate()
    await deps.audit({ type: 'keys.rotate-spiffe', subject: deps.spiffe.trustDomain, decision: 'info', detail: { x509: s.x509, jwt: s.jwt } })
  }
  return kid
}

export async function allAuditRows(deps: Pick<BrokerDeps, 'store'>): Promise<AuditRow[]> {
  const rows: AuditRow[] = []
  let after = 0
  for (;;) {
    const page = await deps.store.listAudit({ afterSeq: after, limit: 5000 })
    rows.push(...page)
    if (page.length < 5000) return rows
    after = page[page.length - 1]!.seq
  }
}

export async function verifyAudit(deps: Pick<BrokerDeps, 'store'>): Promise<AuditChainResult> {
  return verifyStoredAuditChain(deps.store)
}

/** Pins an AK (TPM2B_PUBLIC or TPMT_PUBLIC bytes) for a workload: attestations with it are trusted. */
export async function pinAk(deps: AdminDeps, workload: string, ak: Uint8Array, by: string): Promise<{ name: string; workload: string }> {
  checkEnrolledName(workload)
  const pub = parseTpmPublic(ak)
  checkAkAttributes(pub)
  const name = toHex(akName(pub))
  await deps.store.putAk({ name, publicArea: Buffer.from(ak).toString('base64'), workload, via: 'pinned', ekFingerprint: null, createdAt: deps.clock().getTime(), revokedAt: null, status: 'enrolled', enrolledBy: by, ekPubDigest: null })
  await deps.audit({ type: 'ak.pin', subject: name, decision: 'info', detail: { workload, by } })
  return { name, workload }
}

/** Revokes an admin or relying-party credential; it is refused on every replica from the next request on. */
export async function revokeCredential(deps: Pick<BrokerDeps, 'store' | 'clock' | 'audit'>, kind: 'admin' | 'relying-party', name: string, by: string): Promise<void> {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new KeywardError('ERR_BAD_REQUEST', 'credential names are 1–64 of [A-Za-z0-9_-]')
  const id = `${kind === 'admin' ? 'admin' : 'rp'}:${name}`
  if (!(await deps.store.revokeCredential(id, deps.clock().getTime()))) throw new KeywardError('ERR_NOT_FOUND', `no live ${kind} credential ${name}`)
  await deps.audit({ type: 'credential.revoke', subject: id, decision: 'info', detail: { by } })
}

/** Creates an admin or relying-party credential; returns the bearer token once (only its hash is kept). */
export async function createCredential(deps: Pick<BrokerDeps, 'store' | 'clock'>, kind: 'admin' | 'relying-party', name: string, hash: (s: string) => Promise<string>): Promise<string> {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new KeywardError('ERR_BAD_REQUEST', 'credential names are 1–64 of [A-Za-z0-9_-]')
  const id = `${kind === 'admin' ? 'admin' : 'rp'}:${name}`
  const secret = randomBytes(32).toString('base64url')
  await deps.store.putCredential({ id, kind, hash: await hash(secret), createdAt: deps.clock().getTime(), revokedAt: null })
  return `kw.${kind === 'admin' ? 'admin' : 'rp'}.${name}.${secret}`
}

/** One measured item of a workload: its value now, when last allowed, and which reference sets list it. */
export interface WorkloadItem {
  item: string
  actual: string | null
  baseline: string | null
  /** Active reference sets of the workload's TEE that hold the actual value. */
  declaredIn: string[]
  /** True when the value differs from the one it had when last allowed. */
  changed: boolean
}

/** A workload's declared-versus-actual state (`keyward workloads`, GET /v1/admin/workloads, the dashboard). */
export interface WorkloadView {
  id: string
  tee: string
  policy: string | null
  lastAttestedAt: string
  lastDecision: 'allow' | 'deny'
  actual: Record<string, unknown>
  /** Whether an active reference value of the TEE equals the measurement; null without one. */
  declaredMatches: boolean | null
  /** When the workload stopped being allowed; null while in line. */
  divergedAt: string | null
  drifted: boolean
  /** What it measured when last allowed; null when never allowed. */
  baseline: { at: string; policy: string | null; items: MeasuredItems } | null
  items: WorkloadItem[]
  /** The failing conditions of the last attestation when it was denied. */
  failures: PolicyFailure[]
}

/** Declared (reference values, last allowed baseline) versus actual (last attested) state per workload. */
export async function workloadsView(deps: Pick<BrokerDeps, 'store' | 'clock'>): Promise<WorkloadView[]> {
  const refs = await deps.store.listReferenceValues()
  const now = deps.clock()
  return (await deps.store.listWorkloads()).map((w): WorkloadView => {
    const actual = JSON.parse(w.actual) as { measurement?: string; policy?: string; items?: unknown; failures?: unknown }
    const active = activeRefs(refs, now, w.tee)
    const declared = refs.filter((r) => r.tee === w.tee && r.revokedAt === null).map((r) => ({ set: r.set, value: r.value }))
    const base = w.baseline === null ? null : (JSON.parse(w.baseline) as { at: number; policy: string | null; items?: unknown })
    const items = parseItems(actual.items)
    const baseItems = parseItems(base?.items)
    const names = [...new Set([...Object.keys(items), ...Object.keys(baseItems)])]
    return {
      id: w.id,
      tee: w.tee,
      policy: actual.policy ?? base?.policy ?? null,
      lastAttestedAt: new Date(w.lastAttestedAt).toISOString(),
      lastDecision: w.lastDecision,
      actual,
      declaredMatches: actual.measurement ? declared.some((d) => d.value === actual.measurement) : null,
      divergedAt: w.divergedAt === null ? null : new Date(w.divergedAt).toISOString(),
      drifted: w.divergedAt !== null,
      baseline: base === null ? null : { at: new Date(base.at).toISOString(), policy: base.policy, items: baseItems },
      items: names.map((item) => {
        const value = items[item] ?? null
        return {
          item,
          actual: value,
          baseline: baseItems[item] ?? null,
          declaredIn: value === null ? [] : Object.keys(active.byValue).filter((set) => Object.keys(active.byValue[set]!).some((v) => v.toLowerCase() === value.toLowerCase())),
          changed: base !== null && baseItems[item] !== value,
        }
      }),
      failures: w.lastDecision === 'deny' && Array.isArray(actual.failures) ? (actual.failures as PolicyFailure[]) : [],
    }
  })
}
