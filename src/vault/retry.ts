// Bounded retries with exponential backoff and full jitter (AWS Architecture Blog,
// "Exponential Backoff And Jitter"). Only the caller knows whether an operation is safe to
// repeat: idempotent operations retry on any retryable failure, others only when the
// request provably never reached Vault (connection refused).
import { KeywardError } from '../errors.js'

export interface RetryOptions {
  /** Extra attempts after the first; 0 disables retries. */
  retries: number
  baseDelayMs: number
  maxDelayMs: number
  /** Uniform [0,1); injectable so tests are deterministic. */
  random: () => number
  sleep: (ms: number) => Promise<void>
}

export const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export function backoffDelay(attempt: number, o: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const ceiling = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** attempt)
  return Math.floor(o.random() * ceiling)
}

function shouldRetry(e: KeywardError, idempotent: boolean): boolean {
  if (e.detail?.retryable !== true) return false
  return idempotent || e.detail.delivered === false
}

/** Runs `fn`, mapping failures with `map`, retrying at most `o.retries` times. */
export async function withRetry<T>(
  fn: () => Promise<T>,
  map: (e: unknown) => KeywardError,
  idempotent: boolean,
  o: RetryOptions,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn()
    } catch (raw) {
      const e = map(raw)
      if (attempt >= o.retries || !shouldRetry(e, idempotent)) {
        throw new KeywardError(e.code, e.message, { detail: { ...e.detail, attempts: attempt + 1 } })
      }
      await o.sleep(backoffDelay(attempt, o))
    }
  }
}
