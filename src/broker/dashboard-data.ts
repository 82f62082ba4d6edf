// What the drift dashboard (/ui) shows, read from the store and the audit: no HTTP here, so the
// pages, the admin API and the CLI share one reading of the data (workloadsView is the one of
// `keyward workloads`). Audit scans are bounded by time and by AUDIT_SCAN_LIMIT rows.
import type { BrokerDeps, PolicyFailure } from './deps.js'
import type { AkRow, AuditRow } from '../store/types.js'
import { workloadsView, type WorkloadView } from './admin-services.js'
import { listPendingEnrolments } from './enrolment.js'

type Deps = Pick<BrokerDeps, 'store' | 'clock' | 'config'>

/** The most audit rows one page reads; pages say so when a window holds more. */
export const AUDIT_SCAN_LIMIT = 20_000

export const WINDOWS = { '1h': 3600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 } as const
export type WindowName = keyof typeof WINDOWS

export interface Overview {
  workloads: WorkloadView[]
  counts: { workloads: number; drifted: number; inLine: number; pendingEnrolments: number; storedChallenges: number; denials24h: number; releases24h: number }
}

export interface Denial {
  seq: number
  at: string
  /** attestation, release:secret, release:vault-token, release:tool-credential */
  type: string
  subject: string
  workload: string | null
  code: string
  message: string
  failures: PolicyFailure[]
}

export interface ReleaseSeries {
  name: string
  total: number
  counts: number[]
}

export interface Releases {
  window: WindowName
  start: number
  bucketMs: number
  buckets: number
  perSecret: ReleaseSeries[]
  perWorkload: ReleaseSeries[]
  /** True when the window held more audit rows than one page reads (the oldest were left out). */
  truncated: boolean
}

const isDenial = (r: AuditRow): boolean => r.decision === 'deny' && (r.type === 'attestation' || r.type.startsWith('release:'))
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)

/** Workloads (drifted first), and how many of each thing need a look. */
export async function overview(deps: Deps): Promise<Overview> {
  const now = deps.clock().getTime()
  const workloads = sortDriftedFirst(await workloadsView(deps))
  const day = await deps.store.listAuditSince(now - WINDOWS['24h'], AUDIT_SCAN_LIMIT)
  const drifted = workloads.filter((w) => w.drifted).length
  return {
    workloads,
    counts: {
      workloads: workloads.length,
      drifted,
      inLine: workloads.length - drifted,
      pendingEnrolments: (await listPendingEnrolments(deps)).length,
      storedChallenges: await deps.store.countNonces(),
      denials24h: day.filter(isDenial).length,
      releases24h: day.filter((r) => r.decision === 'allow' && r.type.startsWith('release:')).length,
    },
  }
}

export function sortDriftedFirst(ws: WorkloadView[]): WorkloadView[] {
  return [...ws].sort((a, b) => Number(b.drifted) - Number(a.drifted) || (a.divergedAt ?? '').localeCompare(b.divergedAt ?? '') || a.id.localeCompare(b.id))
}

/** Attestations waiting on someone: stored challenges and TPM enrolments awaiting approval. */
export async function pending(deps: Deps): Promise<{ storedChallenges: number; pendingActivations: number; enrolments: AkRow[] }> {
  return { storedChallenges: await deps.store.countNonces(), pendingActivations: await deps.store.countActivations(), enrolments: await listPendingEnrolments(deps) }
}

/** Denied attestations and releases of the last `window`, newest first, each with every failing condition. */
export async function recentDenials(deps: Deps, window: WindowName, limit = 200): Promise<Denial[]> {
  const rows = await deps.store.listAuditSince(deps.clock().getTime() - WINDOWS[window], AUDIT_SCAN_LIMIT)
  return rows
    .filter(isDenial)
    .reverse()
    .slice(0, limit)
    .map((r) => ({
      seq: r.seq,
      at: new Date(r.at).toISOString(),
      type: r.type,
      subject: r.subject,
      workload: str(r.detail.workload),
      code: str(r.detail.code) ?? 'unknown',
      message: str(r.detail.message) ?? '',
      failures: Array.isArray(r.detail.failures) ? (r.detail.failures as PolicyFailure[]) : [],
    }))
}

/**
 * Releases over the window in equal buckets, per secret (secret releases) and per workload (every
 * release kind). A release names its caller's key; the workload comes from the allowed
 * attestation of that key, which is at most a token lifetime older than the release.
 */
export async function releasesOverTime(deps: Deps, window: WindowName, buckets = 24): Promise<Releases> {
  const now = deps.clock().getTime()
  const span = WINDOWS[window]
  const bucketMs = span / buckets
  const start = now - span
  const lookback = (deps.config.tokenTtlSeconds + deps.config.clockSkewSeconds) * 1000
  const rows = await deps.store.listAuditSince(start - lookback, AUDIT_SCAN_LIMIT)
  const workloadOf = new Map<string, string>()
  const perSecret = new Map<string, number[]>()
  const perWorkload = new Map<string, number[]>()
  const add = (m: Map<string, number[]>, k: string, i: number) => {
    const counts = m.get(k) ?? new Array<number>(buckets).fill(0)
    counts[i]!++
    m.set(k, counts)
  }
  for (const r of rows) {
    if (r.type === 'attestation' && r.decision === 'allow' && typeof r.detail.workload === 'string') workloadOf.set(r.subject, r.detail.workload)
    if (!r.type.startsWith('release:') || r.decision !== 'allow' || r.at < start) continue
    const i = Math.min(buckets - 1, Math.floor((r.at - start) / bucketMs))
    if (r.type === 'release:secret' && typeof r.detail.name === 'string') add(perSecret, r.detail.name, i)
    add(perWorkload, workloadOf.get(r.subject) ?? `key ${r.subject.slice(0, 12)}…`, i)
  }
  const series = (m: Map<string, number[]>): ReleaseSeries[] =>
    [...m].map(([name, counts]) => ({ name, counts, total: counts.reduce((a, b) => a + b, 0) })).sort((a, b) => b.total - a.total || a.name.localeCompare(b.name))
  return { window, start, bucketMs, buckets, perSecret: series(perSecret), perWorkload: series(perWorkload), truncated: rows.length >= AUDIT_SCAN_LIMIT }
}
