// Abuse controls: token buckets per client address and per attested key, and the accounting of
// unauthenticated noise. Noise (docs/threat-model.md §Unauthenticated noise) is counted in
// Prometheus and sampled in the log, never chained into the audit: the audit keeps decisions
// about authenticated callers and verified evidence, and an anonymous flood cannot grow it.
// Buckets live in this process (with N workers or replicas a client gets up to N× the rate);
// the clock is deps.clock so tests move time instead of sleeping.
import { KeywardError, type ErrorCode } from '../errors.js'
import type { BrokerDeps } from './deps.js'

export interface Bucket {
  ratePerSecond: number
  burst: number
}

export interface RateLimiter {
  /** Takes one token for `key`; throws ERR_RATE_LIMITED (429, Retry-After) when the bucket is empty. */
  take(key: string): void
}

/** Bounded memory: at most maxKeys buckets; the least recently refilled go first. */
export function createRateLimiter(bucket: Bucket, clock: () => Date, what: string, maxKeys = 50_000): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>()
  return {
    take(key) {
      const now = clock().getTime()
      const b = buckets.get(key) ?? { tokens: bucket.burst, at: now }
      buckets.delete(key)
      b.tokens = Math.min(bucket.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * bucket.ratePerSecond)
      b.at = now
      if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!)
      buckets.set(key, b)
      if (b.tokens < 1) {
        const retryAfterSeconds = Math.max(1, Math.ceil((1 - b.tokens) / bucket.ratePerSecond))
        throw new KeywardError('ERR_RATE_LIMITED', `too many requests ${what}; retry later`, { detail: { retryAfterSeconds } })
      }
      b.tokens -= 1
    },
  }
}

/**
 * Counts a refused unauthenticated request and logs it at most once a minute per route and code
 * (with how many were not logged in between), so a flood costs neither the store nor the log.
 */
/** Counts (and samples in the log) a refused unauthenticated request: the route label, its code, the request id. */
export type Noise = (route: string, code: ErrorCode | string, reqId: string) => void

export function createNoiseRecorder(deps: Pick<BrokerDeps, 'metrics' | 'logger' | 'clock'>): Noise {
  const lastLogged = new Map<string, { at: number; suppressed: number }>()
  return (route, code, reqId) => {
    deps.metrics.rejected.inc({ route, code })
    const key = `${route} ${code}`
    const now = deps.clock().getTime()
    const seen = lastLogged.get(key)
    if (seen && now - seen.at < 60_000) {
      seen.suppressed++
      return
    }
    if (lastLogged.size > 1000) lastLogged.clear()
    lastLogged.set(key, { at: now, suppressed: 0 })
    deps.logger.info({ reqId, route, code, suppressedSinceLast: seen?.suppressed ?? 0 }, 'unauthenticated request refused (sampled)')
  }
}

/** Caps stored rows (so the table never outgrows `cap`): at the cap, prunes expired ones, then refuses with ERR_TOO_MANY_PENDING. */
export async function enforceCap(count: () => Promise<number>, prune: () => Promise<number>, cap: number, what: string, retryAfterSeconds: number): Promise<void> {
  if ((await count()) < cap) return
  await prune()
  if ((await count()) < cap) return
  throw new KeywardError('ERR_TOO_MANY_PENDING', `too many outstanding ${what}; retry later`, { detail: { retryAfterSeconds } })
}

export interface Admission {
  /**
   * Runs fn once fewer than `maxInflight` admitted calls are running, first come first served.
   * Refuses without waiting: ERR_RATE_LIMITED when `key` (the client address) already has
   * `maxPerKey` calls running or waiting, ERR_OVERLOADED when `maxQueued` calls wait (Retry-After 1).
   */
  run<T>(key: string, fn: () => Promise<T>): Promise<T>
  /** Calls running and waiting now (metrics, tests). */
  load(): { inflight: number; queued: number }
}

/**
 * Admission control of one process: what a flood can hold at once is bounded by what is admitted
 * (a waiting HTTP request has not read its body), so a heap limit cannot be reached by numbers
 * alone. The per-key bound keeps one client (slow bodies, say) from taking every slot.
 */
export function createAdmission(o: { maxInflight: number; maxQueued: number; maxPerKey: number }): Admission {
  let inflight = 0
  const waiting: (() => void)[] = []
  /** Calls running or waiting per key; a key leaves the map with its last call, so it stays bounded. */
  const perKey = new Map<string, number>()
  // A finishing call hands its slot to the first waiter, so `inflight` never drops in between and
  // a newcomer cannot overtake the queue.
  const release = (): void => {
    const next = waiting.shift()
    if (next) next()
    else inflight--
  }
  return {
    async run(key, fn) {
      const mine = perKey.get(key) ?? 0
      if (mine >= o.maxPerKey) throw new KeywardError('ERR_RATE_LIMITED', 'too many requests in flight from this address; retry later', { detail: { retryAfterSeconds: 1 } })
      const now = inflight < o.maxInflight
      if (!now && waiting.length >= o.maxQueued) throw new KeywardError('ERR_OVERLOADED', 'the broker is at its limit of requests in flight; retry later', { detail: { retryAfterSeconds: 1 } })
      perKey.set(key, mine + 1)
      try {
        if (now) inflight++
        else await new Promise<void>((admit) => waiting.push(admit))
        try {
          return await fn()
        } finally {
          release()
        }
      } finally {
        const left = perKey.get(key)! - 1
        if (left === 0) perKey.delete(key)
        else perKey.set(key, left)
      }
    },
    load: () => ({ inflight, queued: waiting.length }),
  }
}
