// Opening stores: the SQLite file and its settings, openStore's backend choice, failures as
// typed errors, migrations applied once and idempotent on restart.
import { describe, it, expect, vi } from 'vitest'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import { openStore } from '../../src/store/index.js'
import { createLocation } from './helpers.js'
import { errorCodeOf } from '../helpers/errors.js'
import { REPO_ROOT } from '../helpers/vectors.js'


describe('opening stores', () => {
  it('creates <dataDir>/keyward.db in WAL mode with migrations applied once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-open-'))
    try {
      const data = join(dir, 'nested', 'data')
      const s1 = await openStore({ dataDir: data })
      expect(s1.kind).toBe('sqlite')
      expect(existsSync(join(data, 'keyward.db'))).toBe(true)
      // a second process-like opener on the same file while the first is open
      const s2 = await openStore({ dataDir: data, databaseUrl: '' })
      await s1.insertNonce({ id: 'a', createdAt: 0, expiresAt: 10 })
      expect(await s2.consumeNonce('a', 1)).toBe('ok')
      await s1.close()
      await s2.close()
      await s1.close() // idempotent
      const db = new Database(join(data, 'keyward.db'), { readonly: true })
      try {
        expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
        // Each migration of the journal applied exactly once.
        const journal = JSON.parse(readFileSync(join(REPO_ROOT, 'drizzle/sqlite/meta/_journal.json'), 'utf8')) as { entries: unknown[] }
        expect((db.prepare('SELECT count(*) AS n FROM __drizzle_migrations').get() as { n: number }).n).toBe(journal.entries.length)
      } finally {
        db.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('writes that acknowledge nothing skip their own fsync, and the connection is back at synchronous = FULL after each (also after a failure)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-open-'))
    // The store's own connection: the one that prepares its statements.
    const prepare = vi.spyOn(Database.prototype, 'prepare')
    try {
      const s = await openStore({ dataDir: dir })
      const conn = prepare.mock.contexts.find((c) => c instanceof Database) as Database.Database
      prepare.mockRestore()
      const sync = () => conn.pragma('synchronous', { simple: true })
      expect(sync()).toBe(2) // FULL
      await s.insertNonce({ id: 'n', createdAt: 0, expiresAt: 10 })
      expect(sync()).toBe(2)
      expect(await errorCodeOf(s.insertNonce({ id: 'n', createdAt: 0, expiresAt: 10 }))).toMatch(/^ERR_/) // duplicate id: the write fails
      expect(sync()).toBe(2)
      expect(await s.consumeNonce('n', 1)).toBe('ok')
      expect(await s.useDpopProof('p', 10)).toBe(true)
      expect(sync()).toBe(2)
      await s.close()
    } finally {
      prepare.mockRestore()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('PostgreSQL: a database upgraded with challenges stored starts the nonce count at them (migration 0009)', async () => {
    const loc = await createLocation('postgres')
    const older = mkdtempSync(join(tmpdir(), 'keyward-migrations-'))
    try {
      // The migrations as they stood before 0009, applied by the same migrator the store uses.
      const src = join(REPO_ROOT, 'drizzle', 'postgres')
      cpSync(src, older, { recursive: true })
      const journal = JSON.parse(readFileSync(join(src, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] }
      const at = journal.entries.findIndex((e) => e.tag.startsWith('0009_'))
      expect(at).toBeGreaterThan(0)
      writeFileSync(join(older, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, at) }))
      const client = new pg.Client({ connectionString: loc.where })
      await client.connect()
      try {
        await migrate(drizzle({ client }), { migrationsFolder: older })
        await client.query(`INSERT INTO nonces (id, created_at, expires_at, used_at) VALUES ('a', 0, 10, NULL), ('b', 0, 10, 5), ('c', 0, 10, NULL)`)
      } finally {
        await client.end()
      }
      const s = await openStore({ dataDir: '/nonexistent', databaseUrl: loc.where })
      try {
        expect(await s.countNonces()).toBe(3)
        await s.insertNonce({ id: 'd', createdAt: 0, expiresAt: 10 })
        expect(await s.countNonces()).toBe(4)
      } finally {
        await s.close()
      }
    } finally {
      rmSync(older, { recursive: true, force: true })
      await loc.cleanup()
    }
  })

  it('PostgreSQL: a serving process keeps its connections between bursts instead of opening new ones after 10 s idle', async () => {
    const loc = await createLocation('postgres')
    const s = await openStore({ dataDir: '/nonexistent', databaseUrl: loc.where })
    const watch = new pg.Client({ connectionString: loc.where })
    await watch.connect()
    // node-postgres ends an idle connection from a setTimeout: faked, the idle time passes at once.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const backends = async (): Promise<Set<number>> =>
        new Set((await watch.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')).rows.map((r) => r.pid))
      // Both pools: challenges go through the relaxed one, AK lookups through the main one.
      let n = 0
      const burst = () => Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? s.getAk(`ak-${i}`) : s.insertNonce({ id: `n-${n++}`, createdAt: 0, expiresAt: 10 }))))
      await burst()
      const first = await backends()
      expect(first.size).toBeGreaterThan(2)
      vi.advanceTimersByTime(10 * 60_000)
      await burst()
      const second = await backends()
      expect([...second].filter((pid) => !first.has(pid))).toEqual([])
    } finally {
      vi.useRealTimers()
      await watch.end()
      await s.close()
      await loc.cleanup()
    }
  })

  it('selects PostgreSQL for a postgres:// URL and re-opening does not re-run migrations', async () => {
    const loc = await createLocation('postgres')
    try {
      const s = await openStore({ dataDir: '/nonexistent', databaseUrl: loc.where })
      expect(s.kind).toBe('postgres')
      await s.close()
      await s.close()
      const again = await openStore({ dataDir: '/nonexistent', databaseUrl: loc.where })
      await again.close()
    } finally {
      await loc.cleanup()
    }
  })

  it('fails with typed errors', async () => {
    expect(await errorCodeOf(openStore({ dataDir: '/tmp', databaseUrl: 'mysql://x' }))).toBe('ERR_CONFIG')
    expect(await errorCodeOf(openStore({ dataDir: '/tmp', databaseUrl: 'postgres://postgres@127.0.0.1:1/none' }))).toBe('ERR_STORE_UNAVAILABLE') // unreachable: a 503 a caller may retry
    const dir = mkdtempSync(join(tmpdir(), 'keyward-open-'))
    try {
      writeFileSync(join(dir, 'file'), '')
      expect(await errorCodeOf(openStore({ dataDir: join(dir, 'file', 'data') }))).toBe('ERR_STORE')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
