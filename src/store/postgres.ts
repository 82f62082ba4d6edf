// Store on PostgreSQL (node-postgres Pool + drizzle-orm). Several `keyward serve` processes share
// one database and act as one broker, so every exactly-once or ordered operation is decided by
// the database, never by process memory:
// - consumeNonce / consumeActivation: one conditional UPDATE ... WHERE used_at IS NULL RETURNING;
// - putSecretVersion: INSERT ... ON CONFLICT DO NOTHING on the (name, version) primary key;
// - putPolicy: transaction + per-name advisory lock + partial unique index, retried on conflict;
// - putSecretVersion and putPolicy append their audit row inside their own transaction;
// - appendAudit: appends arriving together are group-committed by one INSERT chained from the
//   head this process last saw (APPEND_AUDIT_SQL); the seq primary key and a guard on that head
//   refuse it when another writer moved the head, and the batch is chained again under the
//   chain's advisory lock (appendAuditIn), as are the next ones while other writers append.
import pg from 'pg'
import { and, asc, count, desc, eq, gt, gte, inArray, isNotNull, isNull, lt, lte, max, or, sql, type SQL } from 'drizzle-orm'
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import { KeywardError } from '../errors.js'
import { buildAuditRows, canonicalJson, normalizeAuditEntry } from '../audit/chain.js'
import {
  AUDIT_BATCH_MAX, MAX_TX_ATTEMPTS, attestationParams, backoff, type PendingAudit, clampLimit, isRetryable, isUniqueViolation, migrationsFolder, parseIdList, summarizeSecrets,
  workloadParams, workloadDecisionSet, workloadDecisionRow, WORKLOAD_FIELDS,
  containsLiteral, toAuditRow, toBuffer, toReferenceRow, toSecretRow, toStoreError,
} from './common.js'
import { pgNonceCount, pgSchema as t } from './schema.js'
import type { AttestationRow, AuditInput, AuditRow, Store, WorkloadRow } from './types.js'

// Advisory lock keys (two-int form: class, object). Class 0x6b77 ("kw") is keyward's.
const LOCK_CLASS = 0x6b77
const LOCK_MIGRATE = 1
const LOCK_AUDIT = 2
const LOCK_POLICY_CLASS = 0x6b78

type Db = NodePgDatabase

/**
 * Both pools keep the connections they open (min = max). node-postgres closes a connection idle
 * for 10 s, and a new one costs the server ~25 ms of CPU and the request that waits for it ~28 ms
 * (measured here): a broker between bursts, or at one request every few seconds, paid it again and
 * again. The connection budget per process (docs/operations.md) is unchanged.
 */
const POOL_SIZE = { max: 10, min: 10 } as const

/**
 * The server's connection slots not yet taken: max_connections, less the superuser-reserved ones
 * and the client backends connected now (`workers: auto`, src/broker/workers.ts).
 */
export async function freeConnectionSlots(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    const r = await c.query<{ free: number }>(
      `SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
         - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS free`,
    )
    return r.rows[0]!.free
  } finally {
    await c.end()
  }
}

/** Connects a pool to `url` and applies the migrations (serialized across processes). */
export async function openPostgresStore(url: string): Promise<Store> {
  const pool = new pg.Pool({ connectionString: url, ...POOL_SIZE })
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => {})
  // A checked-out client whose connection is cut between two statements (pg_terminate_backend
  // mid-transaction) emits 'error' outside any query; unhandled, that would kill the process.
  // The statement in flight fails on its own and the pool drops the client.
  pool.on('connect', (client) => void client.on('error', () => {}))
  try {
    const client = await pool.connect()
    try {
      await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, LOCK_MIGRATE])
      try {
        await migrate(drizzle({ client }), { migrationsFolder: migrationsFolder('postgres') })
      } finally {
        await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCK_MIGRATE])
      }
    } finally {
      client.release()
    }
  } catch (e) {
    await pool.end().catch(() => {})
    throw toStoreError(e, 'migrate')
  }
  // Writes that acknowledge nothing by themselves (a challenge nonce and its use, a DPoP proof id,
  // the attestation and workload rows of a decision) go through connections with
  // synchronous_commit = off: every answer that depends on them is given only after the
  // decision's audit row commits synchronously on the main pool, and that commit flushes the WAL
  // up to its own record, so every earlier commit with it (docs/operations.md). Visibility and
  // the exactly-once decisions are unchanged; only an unanswered request's writes can be lost
  // in a server crash. As large as the main pool: with 4 connections its queue was what requests
  // waited on at 64 clients (Nitro over HTTP, one worker: 120–132 → 151–191 flows/s).
  const relaxedPool = new pg.Pool({ connectionString: url, ...POOL_SIZE, options: '-c synchronous_commit=off' })
  relaxedPool.on('error', () => {})
  relaxedPool.on('connect', (client) => void client.on('error', () => {}))
  return createPostgresStore(pool, drizzle({ client: pool }), relaxedPool, drizzle({ client: relaxedPool }))
}

/**
 * Appends rows to the chain inside transaction `q`: the advisory lock (held to commit) serializes
 * the head read and the insert across replicas, so a change and its audit row commit together.
 */
async function appendAuditIn(q: Db, entries: readonly { entry: AuditInput; at: number }[]): Promise<AuditRow[]> {
  await q.execute(sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${LOCK_AUDIT})`)
  const [head] = await q.select({ seq: t.auditLog.seq, hash: t.auditLog.hash }).from(t.auditLog)
    .orderBy(desc(t.auditLog.seq)).limit(1)
  const built = buildAuditRows(head ?? null, entries)
  await q.insert(t.auditLog).values(built.map((r) => ({ ...r, detail: canonicalJson(r.detail) })))
  return built
}

/** Batches in a row that must find no other writer's row before appends try APPEND_AUDIT_SQL again. */
const LOCKED_QUIET = 32

/**
 * One statement, so one round trip and one synchronous commit, for a batch of audit rows already
 * chained from the head ($9 seq, $10 hash; both null for an empty chain). It inserts only if that
 * head is still the chain's last row: the seq primary key refuses a row another writer added first
 * (unique violation), and the guard refuses a head that is gone (the log was restored to an
 * earlier point), so a batch never leaves a gap or a fork. The advisory lock is the one
 * appendAuditIn takes, so a transaction appending under it (putPolicy, putSecretVersion) is not
 * made to retry by a batch written between its head read and its insert.
 */
const APPEND_AUDIT_SQL = `WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock($11, $12))
INSERT INTO audit_log (seq, at, type, subject, decision, detail, prev_hash, hash)
SELECT u.seq, u.at, u.type, u.subject, u.decision, u.detail, u.prev_hash, u.hash
FROM lock, unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
  AS u(seq, at, type, subject, decision, detail, prev_hash, hash)
WHERE CASE WHEN $9::bigint IS NULL THEN NOT EXISTS (SELECT 1 FROM audit_log)
  ELSE EXISTS (SELECT 1 FROM audit_log WHERE seq = $9::bigint AND hash = $10::text) END`

function createPostgresStore(pool: pg.Pool, db: Db, relaxedPool: pg.Pool, relaxedDb: Db): Store {
  let closed = false
  const run = async <T>(op: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (e) {
      throw toStoreError(e, op)
    }
  }
  /** A transaction retried on unique races, serialization failures and deadlocks. */
  const tx = async <T>(op: string, fn: (tx: Db) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction((t2) => fn(t2 as unknown as Db))
      } catch (e) {
        if (e instanceof KeywardError || attempt >= MAX_TX_ATTEMPTS || !isRetryable(e)) throw toStoreError(e, op)
        await backoff(attempt)
      }
    }
  }

  const revokeAttestations = (op: string, at: number, where: SQL, keep: (r: AttestationRow) => boolean) =>
    tx(op, async (q) => {
      // FOR UPDATE: a concurrent revocation waits, then sees revoked_at set and skips the row.
      const candidates = await q.select().from(t.attestations)
        .where(and(isNull(t.attestations.revokedAt), where)).for('update')
      const hit = candidates.filter(keep)
      if (hit.length === 0) return []
      await q.update(t.attestations).set({ revokedAt: at })
        .where(inArray(t.attestations.jti, hit.map((r) => r.jti)))
      return hit.map((r) => ({ ...r, revokedAt: at }))
    })

  // Statements on the per-request paths, prepared once: drizzle builds their SQL here instead of
  // on every call (its query building was a tenth of the broker's CPU on PostgreSQL), and each
  // connection parses them once (named statements). Writes that acknowledge nothing by themselves
  // run on the relaxed pool, as above.
  const ph = sql.placeholder
  const liveSecret = and(eq(t.secretVersions.name, ph('name')), isNull(t.secretVersions.deletedAt))
  const hot = {
    insertNonce: relaxedDb.insert(t.nonces)
      .values({ id: ph('id'), createdAt: ph('createdAt'), expiresAt: ph('expiresAt'), usedAt: null }).prepare('kw_insert_nonce'),
    consumeNonce: relaxedDb.update(t.nonces).set({ usedAt: sql`${ph('now')}` })
      .where(and(eq(t.nonces.id, ph('id')), isNull(t.nonces.usedAt), gt(t.nonces.expiresAt, ph('now'))))
      .returning({ id: t.nonces.id }).prepare('kw_consume_nonce'),
    getNonce: db.select().from(t.nonces).where(eq(t.nonces.id, ph('id'))).prepare('kw_get_nonce'),
    // Every challenge checks the cap: the trigger-kept row (migration 0009), not count(*) over the table.
    countNonces: db.select({ n: pgNonceCount.n }).from(pgNonceCount).where(eq(pgNonceCount.id, 1)).prepare('kw_count_nonces'),
    useDpopProof: relaxedDb.insert(t.dpopProofs).values({ id: ph('id'), expiresAt: ph('expiresAt') }).onConflictDoNothing().prepare('kw_use_dpop_proof'),
    latestSecret: db.select().from(t.secretVersions).where(liveSecret).orderBy(desc(t.secretVersions.version)).limit(1).prepare('kw_latest_secret'),
    secretVersion: db.select().from(t.secretVersions).where(and(liveSecret, eq(t.secretVersions.version, ph('version')))).prepare('kw_secret_version'),
    // Read on every attestation (appraisal, drift) and release (grants re-check).
    activePolicies: db.select().from(t.policies).where(eq(t.policies.active, true)).orderBy(asc(t.policies.name)).prepare('kw_active_policies'),
    allReferenceValues: db.select().from(t.referenceValues).orderBy(asc(t.referenceValues.createdAt), asc(t.referenceValues.id)).prepare('kw_all_reference_values'),
    getAk: db.select().from(t.aks).where(eq(t.aks.name, ph('name'))).prepare('kw_get_ak'),
    insertAttestation: relaxedDb.insert(t.attestations).values(attestationParams).prepare('kw_insert_attestation'),
    getAttestation: db.select().from(t.attestations).where(eq(t.attestations.jti, ph('jti'))).prepare('kw_get_attestation'),
    getWorkload: db.select().from(t.workloads).where(eq(t.workloads.id, ph('id'))).prepare('kw_get_workload'),
    getQuarantine: db.select().from(t.quarantines).where(eq(t.quarantines.workload, ph('workload'))).prepare('kw_get_quarantine'),
    decisionStateVersion: db.select({ token: t.decisionStateVersion.token }).from(t.decisionStateVersion).where(eq(t.decisionStateVersion.id, 1)).prepare('kw_decision_state_version'),
  }

  // The chain's head as this process last wrote or read it; undefined when it must be read again
  // (at start, and after any append that did not go as expected).
  let auditHead: { seq: number; hash: string } | null | undefined
  const auditHeadQuery = db.select({ seq: t.auditLog.seq, hash: t.auditLog.hash }).from(t.auditLog)
    .orderBy(desc(t.auditLog.seq)).limit(1).prepare('kw_audit_head')
  // A workload's decision in one round trip: the upsert (drizzle's SQL, so both stores share the
  // ON CONFLICT rules of common.ts) runs as a data-modifying CTE beside a read of the row it
  // replaces. Both see the statement's snapshot, so `prev` is the row before this write.
  const decisionUpsert = relaxedDb.insert(t.workloads).values(workloadParams).onConflictDoUpdate({ target: t.workloads.id, set: workloadDecisionSet }).toSQL()
  // Each parameter is drizzle's Param around the placeholder of one field of the row.
  const decisionParams = decisionUpsert.params.map((p) => {
    const name = ((p as { value?: unknown }).value as { name?: unknown } | undefined)?.name
    if (typeof name !== 'string' || !(WORKLOAD_FIELDS as readonly string[]).includes(name)) throw new Error('recordWorkloadDecision: unexpected parameter in the upsert')
    return name as keyof WorkloadRow
  })
  const RECORD_WORKLOAD_DECISION_SQL = `WITH prev AS (SELECT id, tee, last_attested_at, last_decision, actual, diverged_at, baseline FROM workloads WHERE id = $${decisionParams.indexOf('id') + 1}),
  up AS (${decisionUpsert.sql})
SELECT * FROM prev`

  // A batch chained from the head this process last saw fails when another process (a replica,
  // a --workers sibling) appended since: a unique violation, an ERROR in the server's log, and a
  // second try. So after one such collision, batches take the chain's lock before they read the
  // head (appendAuditIn: four more round trips, but no failure), until LOCKED_QUIET batches in a
  // row found nobody else's row since their own last one.
  let lockedBatches = 0
  const appendLocked = async (batch: readonly PendingAudit[]): Promise<AuditRow[]> => {
    const own = auditHead
    auditHead = undefined
    const rows = await tx('appendAudit', (q) => appendAuditIn(q, batch))
    auditHead = rows.at(-1)!
    lockedBatches = own && rows[0]!.seq === own.seq + 1 ? lockedBatches - 1 : LOCKED_QUIET
    return rows
  }
  const appendBatch = async (batch: readonly PendingAudit[]): Promise<AuditRow[]> => {
    if (lockedBatches > 0) return appendLocked(batch)
    if (auditHead === undefined) auditHead = (await auditHeadQuery.execute())[0] ?? null
    const head = auditHead
    const rows = buildAuditRows(head, batch)
    const col = <K extends keyof AuditRow>(k: K) => rows.map((r) => r[k])
    auditHead = undefined
    let inserted = 0
    try {
      const r = await pool.query({
        name: 'kw_append_audit',
        text: APPEND_AUDIT_SQL,
        values: [col('seq'), col('at'), col('type'), col('subject'), col('decision'), rows.map((r) => canonicalJson(r.detail)), col('prevHash'), col('hash'),
          head?.seq ?? null, head?.hash ?? null, LOCK_CLASS, LOCK_AUDIT],
      })
      inserted = r.rowCount ?? 0
    } catch (e) {
      if (!isUniqueViolation(e)) throw e
    }
    if (inserted === rows.length) {
      auditHead = rows.at(-1)!
      return rows
    }
    // Another writer moved the head, or it is gone (a restore): chained again under the lock.
    lockedBatches = LOCKED_QUIET
    return appendLocked(batch)
  }

  // Appends waiting for the current audit batch are written together in the next one: one
  // multi-row INSERT and one commit for the whole batch (APPEND_AUDIT_SQL).
  const auditQueue: PendingAudit[] = []
  let auditFlush: Promise<void> | null = null
  const flushAudit = async (): Promise<void> => {
    try {
      while (auditQueue.length > 0) {
        const batch = auditQueue.splice(0, AUDIT_BATCH_MAX)
        let rows: AuditRow[]
        try {
          rows = await appendBatch(batch)
        } catch (err) {
          const e = toStoreError(err, 'appendAudit')
          for (const p of batch) p.reject(e)
          continue
        }
        batch.forEach((p, i) => p.resolve(rows[i]!))
      }
    } finally {
      // Reached with no await after the queue was seen empty: a caller woken by this batch runs
      // later, finds the flag clear and starts the next flush, so no append is ever stranded.
      auditFlush = null
    }
  }

  return {
    kind: 'postgres',
    async close() {
      if (closed) return
      closed = true
      if (auditFlush !== null) await auditFlush
      await Promise.all([pool.end(), relaxedPool.end()])
    },
    ready: () => run('ready', async () => {
      await db.execute(sql`SELECT count(*) FROM signing_keys`)
    }),

    // --- nonces ---
    insertNonce: (row) => run('insertNonce', async () => {
      await hot.insertNonce.execute({ id: row.id, createdAt: row.createdAt, expiresAt: row.expiresAt })
    }),
    consumeNonce: (id, now) => run('consumeNonce', async () => {
      // The conditional UPDATE is the decision: of any number of concurrent callers on any
      // number of replicas, exactly one gets the row back. The read only explains refusals.
      const won = await hot.consumeNonce.execute({ id, now })
      if (won.length === 1) return 'ok' as const
      const [row] = await hot.getNonce.execute({ id })
      if (row === undefined) return 'unknown' as const
      return row.usedAt !== null ? ('used' as const) : ('expired' as const)
    }),
    pruneNonces: (before) => run('pruneNonces', async () =>
      (await db.delete(t.nonces).where(lt(t.nonces.expiresAt, before))).rowCount ?? 0),
    pruneSpentNonces: (now) => run('pruneSpentNonces', async () =>
      (await db.delete(t.nonces).where(or(lt(t.nonces.expiresAt, now), isNotNull(t.nonces.usedAt)))).rowCount ?? 0),
    countNonces: () => run('countNonces', async () => (await hot.countNonces.execute())[0]?.n ?? 0),

    // --- DPoP proof ids ---
    // The primary key decides: of concurrent inserts on any number of replicas, one inserts a row.
    nonceLive: (id, now) => run('nonceLive', async () => {
      const [row] = await hot.getNonce.execute({ id })
      return row !== undefined && row.usedAt === null && row.expiresAt > now
    }),
    useDpopProof: (id, expiresAt) => run('useDpopProof', async () => ((await hot.useDpopProof.execute({ id, expiresAt })).rowCount ?? 0) === 1),
    insertKbsSession: (row) => run('insertKbsSession', async () => {
      await db.insert(t.kbsSessions).values(row)
    }),
    getKbsSession: (id) => run('getKbsSession', async () => (await db.select().from(t.kbsSessions).where(eq(t.kbsSessions.id, id)))[0] ?? null),
    getKbsSessionByJti: (jti) => run('getKbsSessionByJti', async () => (await db.select().from(t.kbsSessions).where(eq(t.kbsSessions.jti, jti)))[0] ?? null),
    attestKbsSession: (id, v) => run('attestKbsSession', async () =>
      ((await db.update(t.kbsSessions).set(v).where(and(eq(t.kbsSessions.id, id), isNull(t.kbsSessions.jti)))).rowCount ?? 0) === 1),
    pruneKbsSessions: (before) => run('pruneKbsSessions', async () =>
      (await db.delete(t.kbsSessions).where(lt(t.kbsSessions.expiresAt, before))).rowCount ?? 0),
    pruneDpopProofs: (before) => run('pruneDpopProofs', async () =>
      (await db.delete(t.dpopProofs).where(lt(t.dpopProofs.expiresAt, before))).rowCount ?? 0),

    // --- secrets ---
    // With `audit`, the version and its audit row commit in one transaction.
    putSecretVersion: (row, audit) => tx('putSecretVersion', async (q) => {
      const r = await q.insert(t.secretVersions).values({
        ...row,
        ciphertext: toBuffer(row.ciphertext),
        iv: toBuffer(row.iv),
        wrappedKey: toBuffer(row.wrappedKey),
      }).onConflictDoNothing()
      const inserted = r.rowCount === 1
      if (inserted && audit) {
        auditHead = undefined // this transaction moves the head the batches chain from
        await appendAuditIn(q, [{ entry: audit.entry(row.version), at: audit.at }])
      }
      return inserted
    }),
    getSecretVersion: (name, version) => run('getSecretVersion', async () => {
      const [r] = version === undefined ? await hot.latestSecret.execute({ name }) : await hot.secretVersion.execute({ name, version })
      return r === undefined ? null : toSecretRow(r)
    }),
    listSecrets: () => run('listSecrets', async () =>
      summarizeSecrets(await db.select({
        name: t.secretVersions.name,
        version: t.secretVersions.version,
        createdAt: t.secretVersions.createdAt,
        deletedAt: t.secretVersions.deletedAt,
      }).from(t.secretVersions))),
    deleteSecret: (name, by) => run('deleteSecret', async () => {
      const r = await db.update(t.secretVersions).set({ deletedAt: Date.now(), deletedBy: by })
        .where(and(eq(t.secretVersions.name, name), isNull(t.secretVersions.deletedAt)))
      return (r.rowCount ?? 0) > 0
    }),
    allSecretVersions: () => run('allSecretVersions', async () =>
      (await db.select().from(t.secretVersions).where(isNull(t.secretVersions.deletedAt))
        .orderBy(asc(t.secretVersions.name), asc(t.secretVersions.version))).map(toSecretRow)),
    updateWrappedKey: (name, version, wrappedKey, kekId) => run('updateWrappedKey', async () => {
      const r = await db.update(t.secretVersions).set({ wrappedKey: toBuffer(wrappedKey), kekId })
        .where(and(eq(t.secretVersions.name, name), eq(t.secretVersions.version, version)))
      if ((r.rowCount ?? 0) === 0) throw new KeywardError('ERR_NOT_FOUND', 'secret version not found')
    }),

    // --- policies ---
    putPolicy: (row, audit) => tx('putPolicy', async (q) => {
      await q.execute(sql`SELECT pg_advisory_xact_lock(${LOCK_POLICY_CLASS}, hashtext(${row.name}))`)
      const [cur] = await q.select({ v: max(t.policies.version) }).from(t.policies).where(eq(t.policies.name, row.name))
      const version = (cur?.v ?? 0) + 1
      await q.update(t.policies).set({ active: false })
        .where(and(eq(t.policies.name, row.name), eq(t.policies.active, true)))
      await q.insert(t.policies).values({ ...row, version, active: true })
      if (audit) {
        auditHead = undefined // this transaction moves the head the batches chain from
        await appendAuditIn(q, [{ entry: audit.entry(version), at: audit.at }])
      }
      return version
    }),
    getActivePolicies: () => run('getActivePolicies', () => hot.activePolicies.execute()),
    decisionStateVersion: () => run('decisionStateVersion', async () => (await hot.decisionStateVersion.execute())[0]?.token ?? null),
    getPolicy: (name, version) => run('getPolicy', async () => {
      const [r] = version === undefined
        ? await db.select().from(t.policies).where(eq(t.policies.name, name)).orderBy(desc(t.policies.version)).limit(1)
        : await db.select().from(t.policies).where(and(eq(t.policies.name, name), eq(t.policies.version, version)))
      return r ?? null
    }),
    deactivatePolicy: (name) => run('deactivatePolicy', async () =>
      ((await db.update(t.policies).set({ active: false })
        .where(and(eq(t.policies.name, name), eq(t.policies.active, true)))).rowCount ?? 0) > 0),

    // --- reference values ---
    putReferenceValue: (row) => run('putReferenceValue', async () => {
      await db.insert(t.referenceValues).values(row)
    }),
    listReferenceValues: (set) => run('listReferenceValues', async () =>
      (await (set === undefined
        ? hot.allReferenceValues.execute()
        : db.select().from(t.referenceValues).where(eq(t.referenceValues.set, set))
          .orderBy(asc(t.referenceValues.createdAt), asc(t.referenceValues.id)))).map(toReferenceRow)),
    revokeReferenceValue: (id, by, at) => run('revokeReferenceValue', async () =>
      ((await db.update(t.referenceValues).set({ revokedAt: at, revokedBy: by })
        .where(and(eq(t.referenceValues.id, id), isNull(t.referenceValues.revokedAt)))).rowCount ?? 0) > 0),

    // --- signing keys ---
    putSigningKey: (row) => run('putSigningKey', async () => {
      await db.insert(t.signingKeys).values(row)
    }),
    listSigningKeys: () => run('listSigningKeys', () =>
      db.select().from(t.signingKeys).orderBy(asc(t.signingKeys.createdAt), asc(t.signingKeys.kid))),
    retireSigningKey: (kid, at) => run('retireSigningKey', async () => {
      const [found] = await db.select({ kid: t.signingKeys.kid }).from(t.signingKeys).where(eq(t.signingKeys.kid, kid))
      if (found === undefined) throw new KeywardError('ERR_NOT_FOUND', 'signing key not found')
      await db.update(t.signingKeys).set({ retiredAt: at })
        .where(and(eq(t.signingKeys.kid, kid), isNull(t.signingKeys.retiredAt)))
    }),

    updateSigningKeySealed: (kid, sealedPrivate) => run('updateSigningKeySealed', async () =>
      ((await db.update(t.signingKeys).set({ sealedPrivate }).where(eq(t.signingKeys.kid, kid))).rowCount ?? 0) > 0),

    // --- AKs and activation ---
    putAk: (row) => run('putAk', async () => {
      await db.insert(t.aks).values(row)
    }),
    getAk: (name) => run('getAk', async () => (await hot.getAk.execute({ name }))[0] ?? null),
    listAks: () => run('listAks', () => db.select().from(t.aks).orderBy(asc(t.aks.createdAt), asc(t.aks.name))),
    revokeAk: (name, at) => run('revokeAk', async () =>
      ((await db.update(t.aks).set({ revokedAt: at })
        .where(and(eq(t.aks.name, name), isNull(t.aks.revokedAt)))).rowCount ?? 0) > 0),
    setAkStatus: (name, status, by) => run('setAkStatus', async () =>
      ((await db.update(t.aks).set({ status, enrolledBy: status === 'enrolled' ? by : null })
        .where(and(eq(t.aks.name, name), eq(t.aks.status, 'pending')))).rowCount ?? 0) > 0),
    insertActivation: (row) => run('insertActivation', async () => {
      await db.insert(t.activations).values(row)
    }),
    consumeActivation: (id, now) => run('consumeActivation', async () => {
      const won = await db.update(t.activations).set({ usedAt: now })
        .where(and(eq(t.activations.id, id), isNull(t.activations.usedAt), gt(t.activations.expiresAt, now)))
        .returning()
      return won[0] ?? null
    }),
    countActivations: () => run('countActivations', async () =>
      (await db.select({ n: count() }).from(t.activations))[0]?.n ?? 0),
    pruneActivations: (before) => run('pruneActivations', async () =>
      (await db.delete(t.activations).where(lt(t.activations.expiresAt, before))).rowCount ?? 0),
    insertEnrolmentToken: (row) => run('insertEnrolmentToken', async () => {
      await db.insert(t.enrolmentTokens).values(row)
    }),
    consumeEnrolmentToken: (id, workload, now, akName) => run('consumeEnrolmentToken', async () =>
      (await db.update(t.enrolmentTokens).set({ usedAt: now, usedBy: akName })
        .where(and(eq(t.enrolmentTokens.id, id), eq(t.enrolmentTokens.workload, workload), isNull(t.enrolmentTokens.usedAt), gt(t.enrolmentTokens.expiresAt, now)))
        .returning({ id: t.enrolmentTokens.id })).length === 1),
    putEkEntry: (row) => run('putEkEntry', async () => {
      await db.insert(t.ekList).values(row)
    }),
    listEkEntries: (eks) => run('listEkEntries', () =>
      (eks === undefined ? db.select().from(t.ekList) : db.select().from(t.ekList).where(inArray(t.ekList.ek, eks)))
        .orderBy(asc(t.ekList.createdAt), asc(t.ekList.id))),
    removeEkEntries: (by) => run('removeEkEntries', async () =>
      (await db.delete(t.ekList).where('id' in by ? eq(t.ekList.id, by.id) : and(eq(t.ekList.kind, by.kind), eq(t.ekList.ek, by.ek)))).rowCount ?? 0),

    // --- attestations and workloads ---
    insertAttestation: (row) => run('insertAttestation', async () => {
      await hot.insertAttestation.execute({ ...row })
    }),
    getAttestation: (jti) => run('getAttestation', async () => (await hot.getAttestation.execute({ jti }))[0] ?? null),
    // LIKE only narrows the candidates (on the JSON-escaped id); the parsed JSON list decides.
    revokeAttestationsByReference: (referenceId, at) =>
      revokeAttestations('revokeAttestationsByReference', at,
        containsLiteral(t.attestations.referenceIds, JSON.stringify(referenceId).slice(1, -1)),
        (r) => parseIdList(r.referenceIds).includes(referenceId)),
    revokeAttestationsByPolicy: (policy, at) =>
      revokeAttestations('revokeAttestationsByPolicy', at, eq(t.attestations.policy, policy), () => true),
    revokeAttestationsByAk: (akNames, at) =>
      revokeAttestations('revokeAttestationsByAk', at, inArray(t.attestations.akName, akNames), () => true),
    revokeAttestationsByKey: (jkt, workload, at) =>
      revokeAttestations('revokeAttestationsByKey', at, and(eq(t.attestations.jkt, jkt), eq(t.attestations.workload, workload))!, () => true),
    recordWorkloadDecision: (d) => run('recordWorkloadDecision', async () => {
      const row = workloadDecisionRow(d)
      const r = await relaxedPool.query<{ id: string; tee: string; last_attested_at: string; last_decision: 'allow' | 'deny'; actual: string; diverged_at: string | null; baseline: string | null }>({
        name: 'kw_record_workload_decision',
        text: RECORD_WORKLOAD_DECISION_SQL,
        values: decisionParams.map((f) => row[f]),
      })
      const p = r.rows[0]
      return p ? { id: p.id, tee: p.tee, lastAttestedAt: Number(p.last_attested_at), lastDecision: p.last_decision, actual: p.actual, divergedAt: p.diverged_at === null ? null : Number(p.diverged_at), baseline: p.baseline } : null
    }),
    getWorkload: (id) => run('getWorkload', async () => (await hot.getWorkload.execute({ id }))[0] ?? null),
    listWorkloads: () => run('listWorkloads', () => db.select().from(t.workloads).orderBy(asc(t.workloads.id))),

    // --- alerts ---
    insertAlerts: (rows) => run('insertAlerts', async () => {
      if (rows.length > 0) await db.insert(t.alertOutbox).values(rows)
    }),
    dueAlerts: (now, limit) => run('dueAlerts', () =>
      db.select().from(t.alertOutbox).where(and(eq(t.alertOutbox.status, 'pending'), lte(t.alertOutbox.nextAt, now))).orderBy(asc(t.alertOutbox.nextAt), asc(t.alertOutbox.createdAt)).limit(limit)),
    updateAlert: (id, v) => run('updateAlert', async () => {
      await db.update(t.alertOutbox).set(v).where(eq(t.alertOutbox.id, id))
    }),
    listAlerts: () => run('listAlerts', () => db.select().from(t.alertOutbox).orderBy(asc(t.alertOutbox.createdAt), asc(t.alertOutbox.id))),
    quarantineWorkload: (row) => run('quarantineWorkload', async () => ((await db.insert(t.quarantines).values(row).onConflictDoNothing()).rowCount ?? 0) > 0),
    getQuarantine: (workload) => run('getQuarantine', async () => (await hot.getQuarantine.execute({ workload }))[0] ?? null),
    clearQuarantine: (workload) => run('clearQuarantine', async () => ((await db.delete(t.quarantines).where(eq(t.quarantines.workload, workload))).rowCount ?? 0) > 0),
    revokeAttestationsByWorkload: (workload, at) =>
      revokeAttestations('revokeAttestationsByWorkload', at, eq(t.attestations.workload, workload), () => true),

    // --- Vault leases ---
    insertVaultLease: (row) => run('insertVaultLease', async () => {
      await db.insert(t.vaultLeases).values(row)
    }),
    listLiveVaultLeases: (filter) => run('listLiveVaultLeases', async () => {
      const conds = [isNull(t.vaultLeases.revokedAt)]
      if (filter.jkt !== undefined) conds.push(eq(t.vaultLeases.jkt, filter.jkt))
      if (filter.jti !== undefined) conds.push(eq(t.vaultLeases.jti, filter.jti))
      if (filter.policy !== undefined) conds.push(eq(t.vaultLeases.policy, filter.policy))
      const rows = await db.select().from(t.vaultLeases).where(and(...conds))
        .orderBy(asc(t.vaultLeases.createdAt), asc(t.vaultLeases.accessor))
      const ref = filter.referenceId
      return ref === undefined ? rows : rows.filter((r) => parseIdList(r.referenceIds).includes(ref))
    }),
    markVaultLeaseRevoked: (accessor, at) => run('markVaultLeaseRevoked', async () => {
      const [found] = await db.select({ a: t.vaultLeases.accessor }).from(t.vaultLeases)
        .where(eq(t.vaultLeases.accessor, accessor))
      if (found === undefined) throw new KeywardError('ERR_NOT_FOUND', 'vault lease not found')
      await db.update(t.vaultLeases).set({ revokedAt: at })
        .where(and(eq(t.vaultLeases.accessor, accessor), isNull(t.vaultLeases.revokedAt)))
    }),

    // --- OAuth access tokens ---
    insertOAuthToken: (row) => run('insertOAuthToken', async () => {
      await db.insert(t.oauthTokens).values(row)
    }),
    getOAuthToken: (jti) => run('getOAuthToken', async () =>
      (await db.select().from(t.oauthTokens).where(eq(t.oauthTokens.jti, jti)))[0] ?? null),
    revokeOAuthToken: (jti, at) => run('revokeOAuthToken', async () =>
      ((await db.update(t.oauthTokens).set({ revokedAt: at }).where(and(eq(t.oauthTokens.jti, jti), isNull(t.oauthTokens.revokedAt)))).rowCount ?? 0) > 0),
    pruneOAuthTokens: (before) => run('pruneOAuthTokens', async () =>
      (await db.delete(t.oauthTokens).where(lt(t.oauthTokens.expiresAt, before))).rowCount ?? 0),

    // --- audit: group commit; the advisory lock serializes head read + append across replicas ---
    appendAudit: (entry, at) => new Promise<AuditRow>((resolve, reject) => {
      let normalized: AuditInput
      try {
        normalized = normalizeAuditEntry(entry, at) // a bad entry fails alone, never its batch
      } catch (e) {
        reject(e)
        return
      }
      auditQueue.push({ entry: normalized, at, resolve, reject })
      if (auditFlush === null) auditFlush = flushAudit()
    }),
    listAudit: (opts) => run('listAudit', async () =>
      (await db.select().from(t.auditLog).where(gt(t.auditLog.seq, opts.afterSeq ?? 0))
        .orderBy(asc(t.auditLog.seq)).limit(clampLimit(opts.limit))).map(toAuditRow)),
    listAuditSince: (since, limit) => run('listAuditSince', async () =>
      (await db.select().from(t.auditLog).where(gte(t.auditLog.at, since))
        .orderBy(desc(t.auditLog.seq)).limit(clampLimit(limit))).reverse().map(toAuditRow)),

    // --- dashboard sessions ---
    insertUiSession: (row) => run('insertUiSession', async () => {
      await db.insert(t.uiSessions).values(row)
    }),
    getUiSession: (id, now) => run('getUiSession', async () =>
      (await db.select().from(t.uiSessions).where(and(eq(t.uiSessions.id, id), gt(t.uiSessions.expiresAt, now))))[0] ?? null),
    deleteUiSession: (id) => run('deleteUiSession', async () => ((await db.delete(t.uiSessions).where(eq(t.uiSessions.id, id))).rowCount ?? 0) > 0),
    pruneUiSessions: (before) => run('pruneUiSessions', async () => (await db.delete(t.uiSessions).where(lt(t.uiSessions.expiresAt, before))).rowCount ?? 0),

    // --- credentials (put replaces: credential rotation) ---
    putCredential: (row) => run('putCredential', async () => {
      const { id: _id, ...rest } = row
      await db.insert(t.credentials).values(row).onConflictDoUpdate({ target: t.credentials.id, set: rest })
    }),
    getCredential: (id) => run('getCredential', async () =>
      (await db.select().from(t.credentials).where(eq(t.credentials.id, id)))[0] ?? null),
    listCredentials: () => run('listCredentials', () => db.select().from(t.credentials).orderBy(asc(t.credentials.id))),
    revokeCredential: (id, at) => run('revokeCredential', async () =>
      ((await db.update(t.credentials).set({ revokedAt: at })
        .where(and(eq(t.credentials.id, id), isNull(t.credentials.revokedAt)))).rowCount ?? 0) > 0),
    rehashCredential: (id, hash) => run('rehashCredential', async () =>
      ((await db.update(t.credentials).set({ hash })
        .where(and(eq(t.credentials.id, id), isNull(t.credentials.revokedAt)))).rowCount ?? 0) > 0),
  }
}
