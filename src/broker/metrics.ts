// Prometheus metrics (prom-client), one registry per app so tests and workers do not share state.
// Labels take values from bounded sets only (TEE names, error codes, stored secret names on
// release, Vault operations, table names), never from what an unauthenticated caller sends.
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'

export interface Metrics {
  registry: Registry
  attestations: Counter<'tee' | 'result'>
  releases: Counter<'kind' | 'result'>
  httpDuration: Histogram<'method' | 'route' | 'status'>
  /** Refused unauthenticated requests (noise), which are not audited. */
  rejected: Counter<'route' | 'code'>
  /** Failing policy conditions of denied attestations, by TEE and condition name (names come from applied policies). */
  policyFailures: Counter<'tee' | 'condition'>
  /** Evidence verification (signatures, chains, binding) per TEE, in seconds. */
  verifyDuration: Histogram<'tee'>
  /** Secrets released, by name (allowed releases only: a denied name may be anything). */
  secretReleases: Counter<'secret'>
  /** Workloads whose last attestation was denied after an allow; set by setDriftSource's reader at scrape. */
  drifted: Gauge
  vaultCalls: Counter<'op' | 'result'>
  /** Change notifications from other processes (src/store/changes.ts), by table ('*': reconnect, drop all). */
  cacheInvalidations: Counter<'topic'>
  /** Periodic job runs in this process (one process per deployment runs each job). */
  jobRuns: Counter<'job' | 'result'>
  /** Webhook deliveries (src/broker/alerts.ts) by event type and result: delivered, retry, failed (gave up). */
  alertDeliveries: Counter<'type' | 'result'>
  /** How the drifted gauge reads its value at scrape time (the store). */
  setDriftSource(read: () => Promise<number>): void
  /** Requests of this process being worked on (`running`) and waiting for admission (`queued`), read at scrape. */
  admission: Gauge<'state'>
  /** How the admission gauge reads its values at scrape time (app.ts: the process's admission). */
  setAdmissionSource(read: () => { inflight: number; queued: number }): void
  /** The text GET /metrics answers: this registry's, or, in a `--workers` process, every worker's merged (setExposition). */
  exposition(): Promise<string>
  /** How exposition() reads (server.ts: a cluster worker asks the primary, src/broker/cluster-metrics.ts). */
  setExposition(read: () => Promise<string>): void
}

export function createMetrics(opts: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'keyward_' })
  let driftSource: (() => Promise<number>) | undefined
  let admissionSource: (() => { inflight: number; queued: number }) | undefined
  let exposition = (): Promise<string> => registry.metrics()
  return {
    exposition: () => exposition(),
    setExposition(read) {
      exposition = read
    },
    setDriftSource(read) {
      driftSource = read
    },
    setAdmissionSource(read) {
      admissionSource = read
    },
    admission: new Gauge({
      name: 'keyward_http_requests_admitted',
      help: 'HTTP requests being worked on (running) and waiting for admission (queued), summed over --workers processes; see limits.maxInflightRequests (per process)',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        if (!admissionSource) return
        const { inflight, queued } = admissionSource()
        this.set({ state: 'running' }, inflight)
        this.set({ state: 'queued' }, queued)
      },
    }),
    policyFailures: new Counter({
      name: 'keyward_policy_failures_total',
      help: 'Failing policy conditions of denied attestations, by TEE and condition',
      labelNames: ['tee', 'condition'],
      registers: [registry],
    }),
    verifyDuration: new Histogram({
      name: 'keyward_verify_duration_seconds',
      help: 'Evidence verification latency per TEE (signatures, certificate chains, binding)',
      labelNames: ['tee'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    secretReleases: new Counter({
      name: 'keyward_secret_releases_total',
      help: 'Secrets released, by secret name',
      labelNames: ['secret'],
      registers: [registry],
    }),
    drifted: new Gauge({
      name: 'keyward_drifted_workloads',
      help: 'Workloads whose last attestation was denied after they had been allowed (read from the store at scrape)',
      registers: [registry],
      // Every worker reads the same store: merged across `--workers`, one reading, not their sum.
      aggregator: 'max',
      async collect() {
        if (driftSource) this.set(await driftSource().catch(() => Number.NaN))
      },
    }),
    vaultCalls: new Counter({
      name: 'keyward_vault_calls_total',
      help: 'Calls to Vault by operation (mint, revoke, kv-read) and result (ok or error code)',
      labelNames: ['op', 'result'],
      registers: [registry],
    }),
    cacheInvalidations: new Counter({
      name: 'keyward_cache_invalidations_total',
      help: 'Change notifications received from the store, by table (* = reconnected: every cache dropped)',
      labelNames: ['topic'],
      registers: [registry],
    }),
    alertDeliveries: new Counter({
      name: 'keyward_alert_deliveries_total',
      help: 'Webhook alert delivery attempts by event type and result (delivered, retry, failed: gave up after the last attempt)',
      labelNames: ['type', 'result'] as const,
      registers: [registry],
    }),
    jobRuns: new Counter({
      name: 'keyward_job_runs_total',
      help: 'Periodic jobs run by this process, by job and result',
      labelNames: ['job', 'result'],
      registers: [registry],
    }),
    registry,
    attestations: new Counter({
      name: 'keyward_attestations_total',
      help: 'Attestations by TEE and result (allow, deny, error code)',
      labelNames: ['tee', 'result'],
      registers: [registry],
    }),
    releases: new Counter({
      name: 'keyward_releases_total',
      help: 'Releases of secrets, Vault tokens and tool credentials by result',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'keyward_rejected_requests_total',
      help: 'Refused unauthenticated or rate-limited requests by route and error code (counted here, not audited)',
      labelNames: ['route', 'code'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'keyward_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  }
}
