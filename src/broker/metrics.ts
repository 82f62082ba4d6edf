// Prometheus metrics (prom-client), one registry per app so tests and workers do not share state.
import { Registry, Counter, Histogram, collectDefaultMetrics } from 'prom-client'

export interface Metrics {
  registry: Registry
  attestations: Counter<'tee' | 'result'>
  releases: Counter<'kind' | 'result'>
  httpDuration: Histogram<'method' | 'route' | 'status'>
  /** Refused unauthenticated requests (noise), which are not audited. */
  rejected: Counter<'route' | 'code'>
}

export function createMetrics(opts: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'keyward_' })
  return {
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
