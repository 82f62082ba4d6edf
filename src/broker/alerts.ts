// Signed webhooks for security events (docs/operations.md §Alerts). An event is written to the
// durable outbox (one row per subscribed webhook) where it happens; deliverDue() sends what is
// due, retrying with exponential backoff on the injected clock, and runs as a periodic job with
// one owner per deployment (src/broker/replication.ts), so replicas do not send twice.
// Bodies carry event fields only (workload names, codes, ids): never a secret value.
import { createHmac, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { KeywardError } from '../errors.js'
import type { AuditInput, AlertOutboxRow } from '../store/types.js'
import type { BrokerDeps } from './deps.js'
import type { AlertType } from './alert-types.js'
import type { BrokerConfig } from './config.js'

export { ALERT_TYPES, type AlertType } from './alert-types.js'

export interface AlertEvent {
  type: AlertType
  workload?: string
  detail: Record<string, unknown>
}

type Webhook = BrokerConfig['alerts']['webhooks'][number]

/** Writes one outbox row per webhook subscribed to the event's type; a no-op without webhooks. */
export async function emitAlert(deps: Pick<BrokerDeps, 'config' | 'store' | 'clock'>, ev: AlertEvent): Promise<void> {
  const hooks = deps.config.alerts.webhooks.filter((w) => w.events.includes(ev.type))
  if (hooks.length === 0) return
  const now = deps.clock().getTime()
  const id = randomUUID()
  const body = JSON.stringify({ id, type: ev.type, at: new Date(now).toISOString(), ...(ev.workload === undefined ? {} : { workload: ev.workload }), detail: ev.detail })
  await deps.store.insertAlerts(
    hooks.map((w): AlertOutboxRow => ({ id: `${id}:${w.url}`, url: w.url, type: ev.type, body, status: 'pending', attempts: 0, nextAt: now, createdAt: now, lastError: null })),
  )
}

/**
 * The alert an audit entry raises, if any: revocations (AK revoke, EK deny through it, credential
 * revoke, reference revoke) and TPM AKs waiting for enrolment approval. Hooked into deps.audit so
 * every admin path that audits one raises it, and none can forget to.
 */
export function alertForAudit(entry: AuditInput): AlertEvent | null {
  switch (entry.type) {
    case 'ak.revoke':
    case 'credential.revoke':
    case 'reference.revoke':
      return { type: 'revocation', detail: { what: entry.type.split('.')[0], subject: entry.subject, ...pick(entry.detail, ['by', 'attestations', 'deniedEks']) } }
    case 'tpm.activate':
      if (entry.detail.status !== 'pending') return null
      return { type: 'enrolment-request', detail: { akName: entry.subject, ...pick(entry.detail, ['workload']) } }
    default:
      return null
  }
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]))
}

/** The header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">`. */
export function signWebhook(secret: Uint8Array, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')
  return `t=${unixSeconds},v1=${mac}`
}

/** The webhook's HMAC key, read at each delivery (a rotated file takes effect without a restart). */
export function webhookSecret(hook: Webhook, env: Readonly<Record<string, string | undefined>>): Uint8Array {
  let value: string | undefined
  if (hook.secretFile !== undefined) {
    try {
      value = readFileSync(hook.secretFile, 'utf8').trim()
    } catch (e) {
      throw new KeywardError('ERR_CONFIG', `cannot read the webhook secret file ${hook.secretFile}`, { cause: e })
    }
  } else if (hook.secretEnv !== undefined) value = env[hook.secretEnv]
  if (!value) throw new KeywardError('ERR_CONFIG', `the webhook secret for ${hook.url} is empty or unset`)
  return new TextEncoder().encode(value)
}

/** Backoff before attempt n+1 after n failed attempts: 2^n s, capped. */
export function backoffMs(attempts: number, capSeconds: number): number {
  return Math.min(2 ** attempts, capSeconds) * 1000
}

export interface DeliveryResult {
  delivered: number
  retried: number
  failed: number
}

/**
 * Sends every pending delivery due at deps.clock(): a 2xx marks it delivered; anything else
 * (status, network error, timeout) schedules attempt n at +2^n s until maxAttempts, then marks
 * it failed and counts it in keyward_alert_deliveries_total{result="failed"}.
 */
export async function deliverDue(deps: BrokerDeps, opts: { limit?: number; fetch?: typeof fetch } = {}): Promise<DeliveryResult> {
  const cfg = deps.config.alerts
  const send = opts.fetch ?? fetch
  const now = deps.clock().getTime()
  const res: DeliveryResult = { delivered: 0, retried: 0, failed: 0 }
  for (const row of await deps.store.dueAlerts(now, opts.limit ?? 100)) {
    const hook = cfg.webhooks.find((w) => w.url === row.url)
    let error: string | null
    if (!hook) error = 'the webhook is no longer configured'
    else {
      try {
        const r = await send(row.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-keyward-signature': signWebhook(webhookSecret(hook, deps.env ?? {}), row.body, Math.floor(now / 1000)) },
          body: row.body,
          redirect: 'manual',
          signal: AbortSignal.timeout(cfg.timeoutMs),
        })
        await r.body?.cancel()
        error = r.status >= 200 && r.status < 300 ? null : `HTTP ${r.status}`
      } catch (e) {
        error = e instanceof KeywardError ? e.message : 'delivery failed (network error or timeout)'
      }
    }
    const attempts = row.attempts + 1
    if (error === null) {
      await deps.store.updateAlert(row.id, { status: 'delivered', attempts, nextAt: row.nextAt, lastError: null })
      deps.metrics.alertDeliveries.inc({ type: row.type, result: 'delivered' })
      res.delivered++
    } else if (attempts >= cfg.maxAttempts || !hook) {
      await deps.store.updateAlert(row.id, { status: 'failed', attempts, nextAt: row.nextAt, lastError: error })
      deps.metrics.alertDeliveries.inc({ type: row.type, result: 'failed' })
      deps.logger.warn({ alert: row.id, type: row.type, url: row.url, attempts, error }, 'webhook delivery failed for good')
      res.failed++
    } else {
      await deps.store.updateAlert(row.id, { status: 'pending', attempts, nextAt: now + backoffMs(attempts, cfg.maxBackoffSeconds), lastError: error })
      deps.metrics.alertDeliveries.inc({ type: row.type, result: 'retry' })
      res.retried++
    }
  }
  return res
}
