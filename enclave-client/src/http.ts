// Requests to the broker: per-attempt timeout, retries with exponential backoff and full jitter
// on network errors, timeouts and 5xx; never on a 4xx (a denial stays a denial). TLS options
// (CA bundle, client certificate) go to an undici Agent used as fetch's dispatcher.
import { readFileSync } from 'node:fs'
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici'
import { z } from 'zod'
import { BrokerError, ClientConfigError, DeniedError, NetworkError, ProtocolError, TimeoutError, type DenialFailure } from './errors.js'

export interface TlsOptions {
  /** PEM bundle of CAs that may sign the broker's certificate (replaces the system roots). */
  ca?: string | Uint8Array
  /** Client certificate (PEM) and key (PEM) for mutual TLS. */
  cert?: string | Uint8Array
  key?: string | Uint8Array
}

export interface RetryOptions {
  /** Retries after the first attempt (default 3). */
  retries: number
  /** First backoff in ms (default 200); doubles per retry, capped at maxDelayMs. */
  baseDelayMs: number
  maxDelayMs: number
  /** Source of randomness for the jitter, injectable for tests. */
  random: () => number
}

export interface HttpOptions extends Partial<RetryOptions> {
  broker: string
  /** Allow http:// to a broker that is not on loopback (a man in the middle sees and changes everything). */
  insecureHttp?: boolean
  timeoutMs?: number
  tls?: TlsOptions
  /** Called before each retry (progress lines). */
  onRetry?: (info: { attempt: number; delayMs: number; error: Error; path: string }) => void
}

export interface RequestSpec {
  method: 'GET' | 'POST'
  path: string
  body?: unknown
  /** An application/x-www-form-urlencoded body (OAuth endpoints, RFC 6749 §3.2) instead of JSON. */
  form?: Record<string, string>
  /** Headers computed per attempt (a DPoP proof must be fresh for every attempt). */
  headers?: (url: string) => Promise<Record<string, string>> | Record<string, string>
  /** Overrides the client's retry count for this request (0: exactly one attempt). */
  retries?: number
  /**
   * false: the request mints something (a Vault token, a credential), so it is retried only when
   * it certainly never reached the broker (connection refused, no route, DNS) or the broker
   * refused it unread (503 ERR_OVERLOADED); never after a timeout, a reset or another 5xx, when
   * the broker may have acted on it. Default true.
   */
  idempotent?: boolean
}

export interface HttpClient {
  readonly broker: string
  request<T>(spec: RequestSpec, schema: z.ZodType<T>): Promise<T>
  /** The last DPoP-Nonce the broker sent (RFC 9449 §8), for the next proof. */
  dpopNonce(): string | undefined
  /** Runs `fn` with the same retry policy (for multi-request flows that must restart as a whole). */
  withRetries<T>(what: string, fn: () => Promise<T>, retries?: number, retryable?: (e: unknown) => boolean): Promise<T>
  close(): Promise<void>
}

/** RFC 6749 §5.2 errors of keyward's OAuth endpoints, with keyward's code beside the OAuth one. */
const OAuthErrorBody = z.object({ error: z.string(), error_description: z.string().default(''), keyward_code: z.string().optional() })

const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string().default(''),
    failures: z.array(z.unknown()).optional(),
  }),
})

/** Whether a URL's host is the loopback interface (127.0.0.0/8, ::1, localhost): no network in between. */
export function isLoopback(u: URL): boolean {
  const h = u.hostname
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

/** Whether a failure may succeed when tried again: network errors, timeouts and 5xx, never a 4xx. */
export function isRetryable(e: unknown): boolean {
  if (e instanceof NetworkError || e instanceof TimeoutError) return true
  if (e instanceof BrokerError) return e.httpStatus >= 500
  return false
}

/** Connection errors that happen before a single byte of the request was sent. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])

/**
 * Retryable for a request that must not run twice: it never left this host, or the broker
 * refused it before reading it (503 ERR_OVERLOADED: at its limit of requests in flight).
 */
export function neverRan(e: unknown): boolean {
  return (e instanceof NetworkError && !e.requestMayBeSent) || (e instanceof BrokerError && e.brokerCode === 'ERR_OVERLOADED')
}

/** Backoff before retry `attempt` (1-based): full jitter over min(max, base·2^(attempt-1)). */
export function backoffDelay(attempt: number, o: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const cap = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1))
  return Math.floor(o.random() * cap)
}

function readPem(v: string | Uint8Array | undefined, what: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string') return Buffer.from(v).toString('utf8')
  if (v.includes('-----BEGIN')) return v
  try {
    return readFileSync(v, 'utf8')
  } catch (e) {
    throw new ClientConfigError(`cannot read ${what} file ${v}`, { cause: e })
  }
}

function toFailures(v: unknown[] | undefined): DenialFailure[] {
  return (v ?? []).map((f) => (f !== null && typeof f === 'object' ? (f as DenialFailure) : { message: String(f) }))
}

export function createHttpClient(o: HttpOptions): HttpClient {
  let base: URL
  try {
    base = new URL(o.broker.endsWith('/') ? o.broker : `${o.broker}/`)
  } catch (e) {
    throw new ClientConfigError(`broker URL is not a URL: ${o.broker}`, { cause: e })
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new ClientConfigError('broker URL must be http(s)')
  if (base.protocol === 'http:' && !isLoopback(base) && !o.insecureHttp) {
    throw new ClientConfigError(`refusing plain http:// to ${base.host}, which is not loopback: use https, or --insecure-http with --broker-jwks`)
  }
  const retry: RetryOptions = {
    retries: o.retries ?? 3,
    baseDelayMs: o.baseDelayMs ?? 200,
    maxDelayMs: o.maxDelayMs ?? 5000,
    random: o.random ?? Math.random,
  }
  const timeoutMs = o.timeoutMs ?? 10_000
  const ca = readPem(o.tls?.ca, 'CA bundle')
  const cert = readPem(o.tls?.cert, 'client certificate')
  const key = readPem(o.tls?.key, 'client key')
  if ((cert === undefined) !== (key === undefined)) throw new ClientConfigError('client certificate and key must be given together')
  const dispatcher: Dispatcher = new Agent({
    connect: { ...(ca !== undefined && { ca }), ...(cert !== undefined && { cert }), ...(key !== undefined && { key }) },
  })

  let dpopNonce: string | undefined
  async function once<T>(spec: RequestSpec, schema: z.ZodType<T>): Promise<T> {
    const url = new URL(spec.path.replace(/^\//, ''), base).toString()
    const headers: Record<string, string> = { accept: 'application/json', ...(await spec.headers?.(url)) }
    if (spec.body !== undefined) headers['content-type'] = 'application/json'
    if (spec.form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded'
    let res
    try {
      res = await undiciFetch(url, {
        method: spec.method,
        headers,
        body: spec.form !== undefined ? new URLSearchParams(spec.form).toString() : spec.body === undefined ? undefined : JSON.stringify(spec.body),
        signal: AbortSignal.timeout(timeoutMs),
        dispatcher,
      })
    } catch (e) {
      const name = e instanceof Error ? e.name : ''
      if (name === 'TimeoutError' || name === 'AbortError') throw new TimeoutError(timeoutMs, { cause: e })
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : String(e)
      const code = e instanceof Error && e.cause instanceof Error ? (e.cause as NodeJS.ErrnoException).code : undefined
      throw new NetworkError(`cannot reach broker ${base.host}: ${cause}`, { cause: e }, !NOT_SENT.has(code ?? ''))
    }
    dpopNonce = res.headers.get('dpop-nonce') ?? dpopNonce
    let text: string
    try {
      text = await res.text()
    } catch (e) {
      const name = e instanceof Error ? e.name : ''
      if (name === 'TimeoutError' || name === 'AbortError') throw new TimeoutError(timeoutMs, { cause: e })
      throw new NetworkError(`broker connection broke while reading ${spec.path}`, { cause: e })
    }
    let json: unknown
    try {
      json = text === '' ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    if (!res.ok) {
      const err = ErrorBody.safeParse(json)
      const oauth = OAuthErrorBody.safeParse(json)
      const code = err.success ? err.data.error.code : oauth.success ? (oauth.data.keyward_code ?? oauth.data.error) : `HTTP_${res.status}`
      const msg = err.success ? err.data.error.message : oauth.success ? `${oauth.data.error}: ${oauth.data.error_description}` : `broker answered ${res.status} ${res.statusText}`
      const failures = err.success ? toFailures(err.data.error.failures) : []
      if (res.status === 401 || res.status === 403) throw new DeniedError(res.status, code, msg, failures)
      throw new BrokerError(res.status, code, msg, failures)
    }
    const parsed = schema.safeParse(json)
    if (!parsed.success) {
      throw new ProtocolError(`unexpected answer from ${spec.method} ${spec.path}`, { detail: { issues: parsed.error.issues.map((i) => i.message) } })
    }
    return parsed.data
  }

  async function withRetries<T>(what: string, fn: () => Promise<T>, retries = retry.retries, retryable = isRetryable): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn()
      } catch (e) {
        if (attempt >= retries || !retryable(e)) throw e
        const delayMs = backoffDelay(attempt + 1, retry)
        o.onRetry?.({ attempt: attempt + 1, delayMs, error: e as Error, path: what })
        await new Promise((r) => setTimeout(r, delayMs))
      }
    }
  }

  return {
    broker: base.toString(),
    request: (spec, schema) => withRetries(spec.path, () => once(spec, schema), spec.retries, spec.idempotent === false ? neverRan : isRetryable),
    dpopNonce: () => dpopNonce,
    withRetries,
    async close() {
      await dispatcher.close()
    },
  }
}
