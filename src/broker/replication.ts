// What makes several broker processes on one store behave as one (docs/operations.md §Replicas):
// change notifications drop this process's caches, and each periodic job runs in one process of
// the deployment (src/store/changes.ts decides which).
import type { BrokerDeps } from './deps.js'
import type { ChangeFeed } from '../store/changes.js'
import { deliverDue } from './alerts.js'

/** Tables whose change drops the token issuer's key list ('*' drops everything). */
const KEY_TOPICS = new Set(['*', 'signing_keys'])

/**
 * Subscribes this process's caches to the feed. What is cached in a process, and its bound:
 * - token signing keys and the JWKS list (src/broker/tokens.ts): dropped on a `signing_keys`
 *   notification; reloaded at least every KEY_CACHE_TTL_MS without one;
 * - compiled policies (src/broker/appraiser.ts) are keyed by the policy's SHA-256, so a changed
 *   policy is never served from the cache; active policies, reference values, AKs, EK lists and
 *   credentials are read from the store on every request (no bound to state: the next request).
 */
export function subscribeCaches(deps: Pick<BrokerDeps, 'tokens' | 'metrics' | 'logger'>, feed: ChangeFeed): () => void {
  return feed.onChange((topic) => {
    deps.metrics.cacheInvalidations.inc({ topic })
    if (KEY_TOPICS.has(topic)) deps.tokens.invalidate()
    if (topic === '*') deps.logger.info('change feed (re)connected: caches dropped')
  })
}

export interface PeriodicJob {
  name: string
  run(deps: BrokerDeps): Promise<void>
}

/** Expiry sweeps (idempotent deletes of rows that can no longer be used) and webhook delivery (one sender per deployment). */
export const PERIODIC_JOBS: PeriodicJob[] = [
  { name: 'prune-nonces', run: async (d) => void (await d.store.pruneNonces(d.clock().getTime() - 3600_000)) },
  { name: 'prune-dpop-proofs', run: async (d) => void (await d.store.pruneDpopProofs(d.clock().getTime())) },
  { name: 'prune-activations', run: async (d) => void (await d.store.pruneActivations(d.clock().getTime() - 3600_000)) },
  { name: 'prune-ui-sessions', run: async (d) => void (await d.store.pruneUiSessions(d.clock().getTime())) },
  // An expired access token is inactive with or without its row (introspection), and a KBS session past its expiry admits nothing.
  { name: 'prune-oauth-tokens', run: async (d) => void (await d.store.pruneOAuthTokens(d.clock().getTime())) },
  { name: 'prune-kbs-sessions', run: async (d) => void (await d.store.pruneKbsSessions(d.clock().getTime())) },
  { name: 'deliver-alerts', run: async (d) => void (await deliverDue(d)) },
]

/** Runs every job this process owns once; a job's failure is logged and counted, never thrown. */
export async function runJobsOnce(deps: BrokerDeps, feed: ChangeFeed, jobs: PeriodicJob[] = PERIODIC_JOBS): Promise<string[]> {
  const ran: string[] = []
  for (const job of jobs) {
    try {
      if (await feed.runJob(job.name, () => job.run(deps))) {
        ran.push(job.name)
        deps.metrics.jobRuns.inc({ job: job.name, result: 'ok' })
      }
    } catch (e) {
      deps.metrics.jobRuns.inc({ job: job.name, result: 'error' })
      deps.logger.warn({ job: job.name, err: String(e) }, 'periodic job failed')
    }
  }
  return ran
}
