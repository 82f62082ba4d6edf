// Store on embedded SQLite (better-sqlite3 + drizzle-orm), the default backend.
// One file <dataDir>/keyward.db in WAL mode. better-sqlite3 is synchronous, so within a process
// every method is atomic by construction; across processes sharing the file (serve --workers),
// read-modify-write methods run in BEGIN IMMEDIATE transactions (the write lock is taken up
// front) and busy_timeout makes the others wait instead of failing.
import { mkdirSync, statfsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { and, asc, count, desc, eq, gt, gte, inArray, isNotNull, isNull, lt, lte, max, or, sql, type SQL } from 'drizzle-orm'
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import { KeywardError } from '../errors.js'
import { buildAuditRow, canonicalJson } from '../audit/chain.js'
import {
  parseIdList, summarizeSecrets, toAuditRow, toBuffer, toReferenceRow, toSecretRow, toStoreError,
  migrationsFolder, clampLimit, containsLiteral, AUDIT_BATCH_MAX, type PendingAudit, attestationParams, workloadParams, workloadDecisionSet, workloadDecisionRow,
} from './common.js'
import { sqliteSchema as t } from './schema.js'
import type { AttestationRow, AuditInput, AuditRow, Store } from './types.js'

const BUSY_TIMEOUT_MS = 10_000
/** Below this much free space in the data directory the store reports itself not ready (Store.ready). */
export const MIN_FREE_BYTES = 1024 * 1024

function openDatabase(file: string): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
  db.pragma('foreign_keys = ON')
  db.pragma('synchronous = FULL') // WAL + FULL: a committed nonce use or audit row survives power loss too
  return db
}

function runMigrations(db: BetterSQLite3Database): void {
  // Two processes starting on a fresh file can race the migrator (it reads the applied list
  // before BEGIN); the loser fails on "already exists" and, re-run, finds everything applied.
  for (let attempt = 0; ; attempt++) {
    try {
      migrate(db, { migrationsFolder: migrationsFolder('sqlite') })
      return
    } catch (e) {
      if (attempt >= 3) throw toStoreError(e, 'migrate')
    }
  }
}

/** Opens (creating and migrating if needed) <dataDir>/keyward.db. */
export async function openSqliteStore(dataDir: string): Promise<Store> {
  let sqlite: Database.Database
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    sqlite = openDatabase(join(dataDir, 'keyward.db'))
  } catch (e) {
    throw toStoreError(e, 'open')
  }
  const db = drizzle({ client: sqlite })
  try {
    runMigrations(db)
  } catch (e) {
    sqlite.close()
    throw e
  }
  return createSqliteStore(sqlite, db, dataDir)
}

function createSqliteStore(sqlite: Database.Database, db: BetterSQLite3Database, dataDir: string): Store {
  /** Runs fn, mapping driver errors; sync work wrapped as a promise for the async contract. */
  const run = async <T>(op: string, fn: () => T): Promise<T> => {
    try {
      return fn()
    } catch (e) {
      throw toStoreError(e, op)
    }
  }
  // Writes that acknowledge nothing by themselves (a challenge nonce and its use, a DPoP proof id,
  // the attestation and workload rows of a decision) commit without their own fsync: every answer
  // that depends on them is given only after the decision's audit row commits with
  // synchronous = FULL, and that fsync of the WAL persists every frame written before it, these
  // included (docs/operations.md). A process crash loses nothing (the frames are in the OS); a
  // power loss can lose only such writes of requests not yet answered.
  const syncNormal = sqlite.prepare('PRAGMA synchronous = NORMAL')
  const syncFull = sqlite.prepare('PRAGMA synchronous = FULL')
  const relaxed = <T>(op: string, fn: () => T): Promise<T> =>
    run(op, () => {
      syncNormal.run()
      try {
        return fn()
      } finally {
        syncFull.run()
      }
    })
  const immediate = <T>(op: string, fn: (tx: BetterSQLite3Database) => T): Promise<T> =>
    run(op, () => db.transaction<T>((tx) => fn(tx as unknown as BetterSQLite3Database), { behavior: 'immediate' }))

  // Statements on the per-request paths, prepared once (drizzle re-renders SQL on every call
  // otherwise, which costs more than SQLite's own work for these point queries).
  const ph = sql.placeholder
  const liveSecret = and(eq(t.secretVersions.name, ph('name')), isNull(t.secretVersions.deletedAt))
  const hot = {
    insertNonce: db.insert(t.nonces)
      .values({ id: ph('id'), createdAt: ph('createdAt'), expiresAt: ph('expiresAt'), usedAt: null }).prepare(),
    consumeNonce: db.update(t.nonces).set({ usedAt: sql`${ph('now')}` })
      .where(and(eq(t.nonces.id, ph('id')), isNull(t.nonces.usedAt), gt(t.nonces.expiresAt, ph('now'))))
      .returning({ id: t.nonces.id }).prepare(),
    getNonce: db.select().from(t.nonces).where(eq(t.nonces.id, ph('id'))).prepare(),
    countNonces: db.select({ n: count() }).from(t.nonces).prepare(), // every challenge checks the cap
    latestSecret: db.select().from(t.secretVersions).where(liveSecret)
      .orderBy(desc(t.secretVersions.version)).limit(1).prepare(),
    secretVersion: db.select().from(t.secretVersions)
      .where(and(liveSecret, eq(t.secretVersions.version, ph('version')))).prepare(),
    getAttestation: db.select().from(t.attestations).where(eq(t.attestations.jti, ph('jti'))).prepare(),
    useDpopProof: db.insert(t.dpopProofs).values({ id: ph('id'), expiresAt: ph('expiresAt') }).onConflictDoNothing().prepare(),
    // Read on every attestation (appraisal, drift) and release (grants re-check).
    activePolicies: db.select().from(t.policies).where(eq(t.policies.active, true)).orderBy(asc(t.policies.name)).prepare(),
    allReferenceValues: db.select().from(t.referenceValues).orderBy(asc(t.referenceValues.createdAt), asc(t.referenceValues.id)).prepare(),
    getWorkload: db.select().from(t.workloads).where(eq(t.workloads.id, ph('id'))).prepare(),
    // Written or read on every attestation (the decision's rows, the AK, containment) and release.
    insertAttestation: db.insert(t.attestations).values(attestationParams).prepare(),
    recordWorkloadDecision: db.insert(t.workloads).values(workloadParams)
      .onConflictDoUpdate({ target: t.workloads.id, set: workloadDecisionSet }).prepare(),
    getAk: db.select().from(t.aks).where(eq(t.aks.name, ph('name'))).prepare(),
    getQuarantine: db.select().from(t.quarantines).where(eq(t.quarantines.workload, ph('workload'))).prepare(),
    decisionStateVersion: db.select({ token: t.decisionStateVersion.token }).from(t.decisionStateVersion).where(eq(t.decisionStateVersion.id, 1)).prepare(),
  }

  const auditHead = db.select({ seq: t.auditLog.seq, hash: t.auditLog.hash }).from(t.auditLog).orderBy(desc(t.auditLog.seq)).limit(1).prepare()
  const auditInsert = db.insert(t.auditLog).values({
    seq: ph('seq'), at: ph('at'), type: ph('type'), subject: ph('subject'), decision: ph('decision'),
    detail: ph('detail'), prevHash: ph('prevHash'), hash: ph('hash'),
  }).prepare()
  /** Appends rows to the chain; called inside a BEGIN IMMEDIATE transaction (it holds the write lock, so the head cannot move). */
  const appendAuditIn = (entry: AuditInput, at: number): AuditRow => {
    const row = buildAuditRow(auditHead.get() ?? null, entry, at)
    auditInsert.run({ ...row, detail: canonicalJson(row.detail) })
    return row
  }

  // Group commit: appends queued while the event loop was busy are written on its next turn by
  // one BEGIN IMMEDIATE transaction (one head read, one fsync at COMMIT under synchronous =
  // FULL), and each caller is answered only after that commit. An entry that cannot be chained
  // (normalizeAuditEntry refuses it) fails alone; a failed commit fails the whole batch.
  const auditQueue: PendingAudit[] = []
  let auditScheduled = false
  const flushAudit = (): void => {
    auditScheduled = false
    while (auditQueue.length > 0) {
      const batch = auditQueue.splice(0, AUDIT_BATCH_MAX)
      const outcomes: ({ ok: true; row: AuditRow } | { ok: false; e: unknown })[] = []
      try {
        db.transaction(() => {
          outcomes.length = 0
          let prev: { seq: number; hash: string } | null = auditHead.get() ?? null
          for (const p of batch) {
            let row: AuditRow
            try {
              row = buildAuditRow(prev, p.entry, p.at)
            } catch (e) {
              outcomes.push({ ok: false, e })
              continue
            }
            auditInsert.run({ ...row, detail: canonicalJson(row.detail) }) // a driver error fails the batch
            outcomes.push({ ok: true, row })
            prev = row
          }
        }, { behavior: 'immediate' })
      } catch (e) {
        const err = toStoreError(e, 'appendAudit')
        for (const p of batch) p.reject(err)
        continue
      }
      batch.forEach((p, i) => {
        const o = outcomes[i]!
        if (o.ok) p.resolve(o.row)
        else p.reject(toStoreError(o.e, 'appendAudit'))
      })
    }
  }

  const revokeAttestations = (op: string, at: number, where: SQL, keep: (r: AttestationRow) => boolean) =>
    immediate(op, (tx) => {
      const candidates = tx.select().from(t.attestations).where(and(isNull(t.attestations.revokedAt), where)).all()
      const hit = candidates.filter(keep)
      if (hit.length === 0) return []
      tx.update(t.attestations)
        .set({ revokedAt: at })
        .where(inArray(t.attestations.jti, hit.map((r) => r.jti)))
        .run()
      return hit.map((r) => ({ ...r, revokedAt: at }))
    })

  return {
    kind: 'sqlite',
    async close() {
      // Appends already accepted are written before the connection closes.
      if (sqlite.open) flushAudit()
      if (sqlite.open) sqlite.close()
    },
    ready: () => run('ready', () => {
      sqlite.prepare('SELECT count(*) FROM signing_keys').get()
      const fs = statfsSync(dataDir)
      if (fs.bavail * fs.bsize < MIN_FREE_BYTES) throw new KeywardError('ERR_STORE_UNAVAILABLE', 'storage is out of space', { detail: { op: 'ready', code: 'ENOSPC' } })
    }),

    // --- nonces ---
    insertNonce: (row) => relaxed('insertNonce', () => {
      hot.insertNonce.run({ id: row.id, createdAt: row.createdAt, expiresAt: row.expiresAt })
    }),
    consumeNonce: (id, now) => relaxed('consumeNonce', () => {
      // One conditional UPDATE decides; the follow-up read only explains a refusal.
      const won = hot.consumeNonce.all({ id, now })
      if (won.length === 1) return 'ok' as const
      const row = hot.getNonce.get({ id })
      if (row === undefined) return 'unknown' as const
      return row.usedAt !== null ? ('used' as const) : ('expired' as const)
    }),
    pruneNonces: (before) => run('pruneNonces', () =>
      db.delete(t.nonces).where(sql`${t.nonces.expiresAt} < ${before}`).run().changes),
    pruneSpentNonces: (now) => run('pruneSpentNonces', () =>
      db.delete(t.nonces).where(or(lt(t.nonces.expiresAt, now), isNotNull(t.nonces.usedAt))).run().changes),
    countNonces: () => run('countNonces', () =>
      hot.countNonces.get()?.n ?? 0),

    // --- DPoP proof ids ---
    nonceLive: (id, now) => run('nonceLive', () => {
      const row = hot.getNonce.get({ id })
      return row !== undefined && row.usedAt === null && row.expiresAt > now
    }),
    useDpopProof: (id, expiresAt) => relaxed('useDpopProof', () => hot.useDpopProof.run({ id, expiresAt }).changes === 1),
    insertKbsSession: (row) => run('insertKbsSession', () => {
      db.insert(t.kbsSessions).values(row).run()
    }),
    getKbsSession: (id) => run('getKbsSession', () => db.select().from(t.kbsSessions).where(eq(t.kbsSessions.id, id)).get() ?? null),
    getKbsSessionByJti: (jti) => run('getKbsSessionByJti', () => db.select().from(t.kbsSessions).where(eq(t.kbsSessions.jti, jti)).get() ?? null),
    attestKbsSession: (id, v) => run('attestKbsSession', () =>
      db.update(t.kbsSessions).set(v).where(and(eq(t.kbsSessions.id, id), isNull(t.kbsSessions.jti))).run().changes === 1),
    pruneKbsSessions: (before) => run('pruneKbsSessions', () =>
      db.delete(t.kbsSessions).where(sql`${t.kbsSessions.expiresAt} < ${before}`).run().changes),
    pruneDpopProofs: (before) => run('pruneDpopProofs', () =>
      db.delete(t.dpopProofs).where(sql`${t.dpopProofs.expiresAt} < ${before}`).run().changes),

    // --- secrets ---
    // The caller sealed for row.version (the AAD binds it): insert exactly that version, or
    // report that a concurrent writer took it (primary key), never overwrite.
    // With `audit`, the version and its audit row commit in one transaction.
    putSecretVersion: (row, audit) => immediate('putSecretVersion', (tx) => {
      const inserted = tx.insert(t.secretVersions).values({
        ...row,
        ciphertext: toBuffer(row.ciphertext),
        iv: toBuffer(row.iv),
        wrappedKey: toBuffer(row.wrappedKey),
      }).onConflictDoNothing().run().changes === 1
      if (inserted && audit) appendAuditIn(audit.entry(row.version), audit.at)
      return inserted
    }),
    getSecretVersion: (name, version) => run('getSecretVersion', () => {
      const r = version === undefined ? hot.latestSecret.get({ name }) : hot.secretVersion.get({ name, version })
      return r === undefined ? null : toSecretRow(r)
    }),
    listSecrets: () => run('listSecrets', () =>
      summarizeSecrets(db.select({
        name: t.secretVersions.name,
        version: t.secretVersions.version,
        createdAt: t.secretVersions.createdAt,
        deletedAt: t.secretVersions.deletedAt,
      }).from(t.secretVersions).all())),
    deleteSecret: (name, by) => immediate('deleteSecret', (tx) => {
      const now = Date.now()
      return tx.update(t.secretVersions).set({ deletedAt: now, deletedBy: by })
        .where(and(eq(t.secretVersions.name, name), isNull(t.secretVersions.deletedAt))).run().changes > 0
    }),
    allSecretVersions: () => run('allSecretVersions', () =>
      db.select().from(t.secretVersions).where(isNull(t.secretVersions.deletedAt))
        .orderBy(asc(t.secretVersions.name), asc(t.secretVersions.version)).all().map(toSecretRow)),
    updateWrappedKey: (name, version, wrappedKey, kekId) => run('updateWrappedKey', () => {
      const n = db.update(t.secretVersions).set({ wrappedKey: toBuffer(wrappedKey), kekId })
        .where(and(eq(t.secretVersions.name, name), eq(t.secretVersions.version, version))).run().changes
      if (n === 0) throw new KeywardError('ERR_NOT_FOUND', 'secret version not found')
    }),

    // --- policies ---
    putPolicy: (row, audit) => immediate('putPolicy', (tx) => {
      const cur = tx.select({ v: max(t.policies.version) }).from(t.policies).where(eq(t.policies.name, row.name)).get()
      const version = (cur?.v ?? 0) + 1
      tx.update(t.policies).set({ active: false }).where(eq(t.policies.name, row.name)).run()
      tx.insert(t.policies).values({ ...row, version, active: true }).run()
      if (audit) appendAuditIn(audit.entry(version), audit.at)
      return version
    }),
    getActivePolicies: () => run('getActivePolicies', () => hot.activePolicies.all()),
    decisionStateVersion: () => run('decisionStateVersion', () => hot.decisionStateVersion.get()?.token ?? null),
    getPolicy: (name, version) => run('getPolicy', () => {
      const r = version === undefined
        ? db.select().from(t.policies).where(eq(t.policies.name, name)).orderBy(desc(t.policies.version)).limit(1).get()
        : db.select().from(t.policies).where(and(eq(t.policies.name, name), eq(t.policies.version, version))).get()
      return r ?? null
    }),
    deactivatePolicy: (name) => run('deactivatePolicy', () =>
      db.update(t.policies).set({ active: false })
        .where(and(eq(t.policies.name, name), eq(t.policies.active, true))).run().changes > 0),

    // --- reference values ---
    putReferenceValue: (row) => run('putReferenceValue', () => {
      db.insert(t.referenceValues).values(row).run()
    }),
    listReferenceValues: (set) => run('listReferenceValues', () =>
      (set === undefined
        ? hot.allReferenceValues.all()
        : db.select().from(t.referenceValues).where(eq(t.referenceValues.set, set))
          .orderBy(asc(t.referenceValues.createdAt), asc(t.referenceValues.id)).all()).map(toReferenceRow)),
    revokeReferenceValue: (id, by, at) => run('revokeReferenceValue', () =>
      db.update(t.referenceValues).set({ revokedAt: at, revokedBy: by })
        .where(and(eq(t.referenceValues.id, id), isNull(t.referenceValues.revokedAt))).run().changes > 0),

    // --- signing keys ---
    putSigningKey: (row) => run('putSigningKey', () => {
      db.insert(t.signingKeys).values(row).run()
    }),
    listSigningKeys: () => run('listSigningKeys', () =>
      db.select().from(t.signingKeys).orderBy(asc(t.signingKeys.createdAt), asc(t.signingKeys.kid)).all()),
    retireSigningKey: (kid, at) => run('retireSigningKey', () => {
      const found = db.select({ kid: t.signingKeys.kid }).from(t.signingKeys).where(eq(t.signingKeys.kid, kid)).get()
      if (found === undefined) throw new KeywardError('ERR_NOT_FOUND', 'signing key not found')
      db.update(t.signingKeys).set({ retiredAt: at })
        .where(and(eq(t.signingKeys.kid, kid), isNull(t.signingKeys.retiredAt))).run()
    }),

    updateSigningKeySealed: (kid, sealedPrivate) => run('updateSigningKeySealed', () =>
      db.update(t.signingKeys).set({ sealedPrivate }).where(eq(t.signingKeys.kid, kid)).run().changes > 0),

    // --- AKs and activation ---
    putAk: (row) => run('putAk', () => {
      db.insert(t.aks).values(row).run()
    }),
    getAk: (name) => run('getAk', () => hot.getAk.get({ name }) ?? null),
    listAks: () => run('listAks', () => db.select().from(t.aks).orderBy(asc(t.aks.createdAt), asc(t.aks.name)).all()),
    revokeAk: (name, at) => run('revokeAk', () =>
      db.update(t.aks).set({ revokedAt: at }).where(and(eq(t.aks.name, name), isNull(t.aks.revokedAt))).run().changes > 0),
    setAkStatus: (name, status, by) => run('setAkStatus', () =>
      db.update(t.aks).set({ status, enrolledBy: status === 'enrolled' ? by : null })
        .where(and(eq(t.aks.name, name), eq(t.aks.status, 'pending'))).run().changes > 0),
    insertActivation: (row) => run('insertActivation', () => {
      db.insert(t.activations).values(row).run()
    }),
    consumeActivation: (id, now) => run('consumeActivation', () => {
      const won = db.update(t.activations).set({ usedAt: now })
        .where(and(eq(t.activations.id, id), isNull(t.activations.usedAt), gt(t.activations.expiresAt, now)))
        .returning().all()
      return won[0] ?? null
    }),
    countActivations: () => run('countActivations', () =>
      db.select({ n: count() }).from(t.activations).get()?.n ?? 0),
    pruneActivations: (before) => run('pruneActivations', () =>
      db.delete(t.activations).where(lt(t.activations.expiresAt, before)).run().changes),
    insertEnrolmentToken: (row) => run('insertEnrolmentToken', () => {
      db.insert(t.enrolmentTokens).values(row).run()
    }),
    consumeEnrolmentToken: (id, workload, now, akName) => run('consumeEnrolmentToken', () =>
      db.update(t.enrolmentTokens).set({ usedAt: now, usedBy: akName })
        .where(and(eq(t.enrolmentTokens.id, id), eq(t.enrolmentTokens.workload, workload), isNull(t.enrolmentTokens.usedAt), gt(t.enrolmentTokens.expiresAt, now)))
        .run().changes === 1),
    putEkEntry: (row) => run('putEkEntry', () => {
      db.insert(t.ekList).values(row).run()
    }),
    listEkEntries: (eks) => run('listEkEntries', () =>
      (eks === undefined ? db.select().from(t.ekList) : db.select().from(t.ekList).where(inArray(t.ekList.ek, eks)))
        .orderBy(asc(t.ekList.createdAt), asc(t.ekList.id)).all()),
    removeEkEntries: (by) => run('removeEkEntries', () =>
      db.delete(t.ekList).where('id' in by ? eq(t.ekList.id, by.id) : and(eq(t.ekList.kind, by.kind), eq(t.ekList.ek, by.ek))).run().changes),

    // --- attestations and workloads ---
    insertAttestation: (row) => relaxed('insertAttestation', () => {
      hot.insertAttestation.run({ ...row })
    }),
    getAttestation: (jti) => run('getAttestation', () => hot.getAttestation.get({ jti }) ?? null),
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
    // One transaction: the row returned is exactly the one the write replaced.
    recordWorkloadDecision: (d) => relaxed('recordWorkloadDecision', () => db.transaction(() => {
      const prev = hot.getWorkload.get({ id: d.id }) ?? null
      hot.recordWorkloadDecision.run({ ...workloadDecisionRow(d) })
      return prev
    }, { behavior: 'immediate' })),
    getWorkload: (id) => run('getWorkload', () => hot.getWorkload.get({ id }) ?? null),
    listWorkloads: () => run('listWorkloads', () => db.select().from(t.workloads).orderBy(asc(t.workloads.id)).all()),

    // --- alerts ---
    insertAlerts: (rows) => run('insertAlerts', () => {
      if (rows.length > 0) db.insert(t.alertOutbox).values(rows).run()
    }),
    dueAlerts: (now, limit) => run('dueAlerts', () =>
      db.select().from(t.alertOutbox).where(and(eq(t.alertOutbox.status, 'pending'), lte(t.alertOutbox.nextAt, now))).orderBy(asc(t.alertOutbox.nextAt), asc(t.alertOutbox.createdAt)).limit(limit).all()),
    updateAlert: (id, v) => run('updateAlert', () => {
      db.update(t.alertOutbox).set(v).where(eq(t.alertOutbox.id, id)).run()
    }),
    listAlerts: () => run('listAlerts', () => db.select().from(t.alertOutbox).orderBy(asc(t.alertOutbox.createdAt), asc(t.alertOutbox.id)).all()),
    quarantineWorkload: (row) => run('quarantineWorkload', () => db.insert(t.quarantines).values(row).onConflictDoNothing().run().changes > 0),
    getQuarantine: (workload) => run('getQuarantine', () => hot.getQuarantine.get({ workload }) ?? null),
    clearQuarantine: (workload) => run('clearQuarantine', () => db.delete(t.quarantines).where(eq(t.quarantines.workload, workload)).run().changes > 0),
    revokeAttestationsByWorkload: (workload, at) =>
      revokeAttestations('revokeAttestationsByWorkload', at, eq(t.attestations.workload, workload), () => true),

    // --- Vault leases ---
    insertVaultLease: (row) => run('insertVaultLease', () => {
      db.insert(t.vaultLeases).values(row).run()
    }),
    listLiveVaultLeases: (filter) => run('listLiveVaultLeases', () => {
      const conds = [isNull(t.vaultLeases.revokedAt)]
      if (filter.jkt !== undefined) conds.push(eq(t.vaultLeases.jkt, filter.jkt))
      if (filter.jti !== undefined) conds.push(eq(t.vaultLeases.jti, filter.jti))
      if (filter.policy !== undefined) conds.push(eq(t.vaultLeases.policy, filter.policy))
      const rows = db.select().from(t.vaultLeases).where(and(...conds))
        .orderBy(asc(t.vaultLeases.createdAt), asc(t.vaultLeases.accessor)).all()
      const ref = filter.referenceId
      return ref === undefined ? rows : rows.filter((r) => parseIdList(r.referenceIds).includes(ref))
    }),
    markVaultLeaseRevoked: (accessor, at) => run('markVaultLeaseRevoked', () => {
      const found = db.select({ a: t.vaultLeases.accessor }).from(t.vaultLeases).where(eq(t.vaultLeases.accessor, accessor)).get()
      if (found === undefined) throw new KeywardError('ERR_NOT_FOUND', 'vault lease not found')
      db.update(t.vaultLeases).set({ revokedAt: at })
        .where(and(eq(t.vaultLeases.accessor, accessor), isNull(t.vaultLeases.revokedAt))).run()
    }),

    // --- OAuth access tokens ---
    insertOAuthToken: (row) => run('insertOAuthToken', () => {
      db.insert(t.oauthTokens).values(row).run()
    }),
    getOAuthToken: (jti) => run('getOAuthToken', () => db.select().from(t.oauthTokens).where(eq(t.oauthTokens.jti, jti)).get() ?? null),
    revokeOAuthToken: (jti, at) => run('revokeOAuthToken', () =>
      db.update(t.oauthTokens).set({ revokedAt: at }).where(and(eq(t.oauthTokens.jti, jti), isNull(t.oauthTokens.revokedAt))).run().changes > 0),
    pruneOAuthTokens: (before) => run('pruneOAuthTokens', () =>
      db.delete(t.oauthTokens).where(lt(t.oauthTokens.expiresAt, before)).run().changes),

    // --- audit: BEGIN IMMEDIATE serializes the read of the head and the append ---
    appendAudit: (entry, at) => {
      if (!sqlite.open) return Promise.reject(toStoreError(new TypeError('The database connection is not open'), 'appendAudit'))
      return new Promise<AuditRow>((resolve, reject) => {
        auditQueue.push({ entry, at, resolve, reject })
        if (!auditScheduled) {
          auditScheduled = true
          setImmediate(flushAudit)
        }
      })
    },
    listAudit: (opts) => run('listAudit', () =>
      db.select().from(t.auditLog).where(gt(t.auditLog.seq, opts.afterSeq ?? 0))
        .orderBy(asc(t.auditLog.seq)).limit(clampLimit(opts.limit)).all().map(toAuditRow)),
    listAuditSince: (since, limit) => run('listAuditSince', () =>
      db.select().from(t.auditLog).where(gte(t.auditLog.at, since))
        .orderBy(desc(t.auditLog.seq)).limit(clampLimit(limit)).all().reverse().map(toAuditRow)),

    // --- dashboard sessions ---
    insertUiSession: (row) => run('insertUiSession', () => {
      db.insert(t.uiSessions).values(row).run()
    }),
    getUiSession: (id, now) => run('getUiSession', () =>
      db.select().from(t.uiSessions).where(and(eq(t.uiSessions.id, id), gt(t.uiSessions.expiresAt, now))).get() ?? null),
    deleteUiSession: (id) => run('deleteUiSession', () => db.delete(t.uiSessions).where(eq(t.uiSessions.id, id)).run().changes > 0),
    pruneUiSessions: (before) => run('pruneUiSessions', () => db.delete(t.uiSessions).where(lt(t.uiSessions.expiresAt, before)).run().changes),

    // --- credentials (put replaces: credential rotation) ---
    putCredential: (row) => run('putCredential', () => {
      const { id: _id, ...rest } = row
      db.insert(t.credentials).values(row).onConflictDoUpdate({ target: t.credentials.id, set: rest }).run()
    }),
    getCredential: (id) => run('getCredential', () =>
      db.select().from(t.credentials).where(eq(t.credentials.id, id)).get() ?? null),
    listCredentials: () => run('listCredentials', () =>
      db.select().from(t.credentials).orderBy(asc(t.credentials.id)).all()),
    revokeCredential: (id, at) => run('revokeCredential', () =>
      db.update(t.credentials).set({ revokedAt: at }).where(and(eq(t.credentials.id, id), isNull(t.credentials.revokedAt))).run().changes > 0),
    rehashCredential: (id, hash) => run('rehashCredential', () =>
      db.update(t.credentials).set({ hash }).where(and(eq(t.credentials.id, id), isNull(t.credentials.revokedAt))).run().changes > 0),
  }
}
