// Replicas as one broker. A ChangeFeed tells this process when another one (a replica, a worker,
// a `keyward` command acting on the store) changed something it may cache, and decides which
// process runs each periodic job.
//
// PostgreSQL: one dedicated connection per process LISTENs on `keyward_changes`; triggers
// (drizzle/postgres/0006_change_notify.sql) send the changed table's name at commit. If that
// connection drops, notifications may have been missed, so subscribers are told '*' (drop every
// cache) at once and again when the connection is back. Periodic jobs: the process that holds
// the job's session advisory lock on that connection runs it; the lock is kept, so one process
// per deployment runs each job, and when it dies its session ends and another takes the job at
// its next tick.
//
// SQLite: no cross-process notification; processes sharing the file (--workers) rely on the TTL
// backstop of each cache, and every process runs the jobs (they are idempotent prunes).
import type pg from 'pg'

export const CHANGE_CHANNEL = 'keyward_changes'
/** The listening connection's application_name (pg_stat_activity shows one per broker process). */
export const APPLICATION_NAME = 'keyward-changes'
/** What a subscriber is told: a table name from the triggers, or '*' (anything may have changed). */
export type ChangeTopic = string

export interface ChangeFeed {
  /** Subscribes; returns the unsubscribe function. */
  onChange(fn: (topic: ChangeTopic) => void): () => void
  /** Runs `fn` if this process owns job `name` in the deployment; true when it ran. */
  runJob(name: string, fn: () => Promise<void>): Promise<boolean>
  close(): Promise<void>
}

// Advisory lock class for periodic jobs ("kw" + 2; 0x6b77/0x6b78 are the store's).
const LOCK_JOB_CLASS = 0x6b79
const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 5_000

function subscribers() {
  const fns = new Set<(topic: ChangeTopic) => void>()
  return {
    add(fn: (topic: ChangeTopic) => void) {
      fns.add(fn)
      return () => void fns.delete(fn)
    },
    emit(topic: ChangeTopic) {
      for (const fn of fns) {
        try {
          fn(topic)
        } catch {
          // A subscriber's failure must not stop the others from dropping their caches.
        }
      }
    },
  }
}

/** The SQLite feed: in-process only. */
export function localChangeFeed(): ChangeFeed {
  const subs = subscribers()
  return {
    onChange: (fn) => subs.add(fn),
    async runJob(_name, fn) {
      await fn()
      return true
    },
    async close() {},
  }
}

export interface PostgresFeedOptions {
  onError?(e: unknown): void
}

/** Connects the listening client; resolves once LISTEN is in place. */
export async function postgresChangeFeed(url: string, opts: PostgresFeedOptions = {}): Promise<ChangeFeed> {
  const { default: pgModule } = await import('pg') // on demand: SQLite deployments never load it
  const subs = subscribers()
  let client: pg.Client | null = null
  let closed = false
  let delay = RECONNECT_MIN_MS
  let timer: NodeJS.Timeout | null = null
  /** Jobs whose session lock this connection holds. */
  const held = new Set<string>()

  const lost = (c: pg.Client, e?: unknown) => {
    if (client !== c) return
    client = null
    held.clear()
    if (e) opts.onError?.(e)
    c.end().catch(() => {})
    if (closed) return
    // A notification may have been missed: nothing cached may be trusted any more.
    subs.emit('*')
    timer = setTimeout(() => void connect().catch(() => {}), delay)
    timer.unref()
    delay = Math.min(delay * 2, RECONNECT_MAX_MS)
  }

  async function connect(): Promise<void> {
    timer = null
    if (closed) return
    const c = new pgModule.Client({ connectionString: url, application_name: APPLICATION_NAME })
    c.on('error', (e) => lost(c, e))
    c.on('end', () => lost(c))
    c.on('notification', (m) => {
      if (m.channel === CHANGE_CHANNEL) subs.emit(m.payload ?? '*')
    })
    client = c
    try {
      await c.connect()
      await c.query(`LISTEN ${CHANGE_CHANNEL}`)
    } catch (e) {
      lost(c, e)
      throw e
    }
    delay = RECONNECT_MIN_MS
    // Whatever changed while this connection was not listening is unknown.
    subs.emit('*')
  }

  await connect()

  return {
    onChange: (fn) => subs.add(fn),
    async runJob(name, fn) {
      const c = client
      if (!c) return false
      if (!held.has(name)) {
        const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_JOB_CLASS, name]).then(
          (r) => r.rows[0]?.ok === true,
          (e: unknown) => (opts.onError?.(e), false),
        )
        if (!got || client !== c) return false
        held.add(name)
      }
      await fn()
      return true
    },
    async close() {
      closed = true
      if (timer) clearTimeout(timer)
      const c = client
      client = null
      held.clear()
      // Ending the session releases its job locks, so another replica takes the jobs over.
      if (c) await c.end().catch(() => {})
    },
  }
}

export async function openChangeFeed(databaseUrl: string | undefined, opts: PostgresFeedOptions = {}): Promise<ChangeFeed> {
  return databaseUrl ? postgresChangeFeed(databaseUrl, opts) : localChangeFeed()
}
