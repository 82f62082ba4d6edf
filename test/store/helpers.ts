// Test backends: a temp directory for SQLite, a fresh database per call on the local PostgreSQL
// (postgres://postgres@127.0.0.1:5432, trust auth), dropped afterwards, so test files never collide.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { openPostgresStore } from '../../src/store/postgres.js'
import { openSqliteStore } from '../../src/store/sqlite.js'
import type { Store } from '../../src/store/types.js'

export const PG_ADMIN_URL = process.env.KEYWARD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export type Backend = 'sqlite' | 'postgres'

export interface TestLocation {
  backend: Backend
  /** The data dir (sqlite) or the database URL (postgres). */
  where: string
  open(): Promise<Store>
  /** Runs raw SQL against the backing database (for tampering tests). */
  exec(sql: string, params?: unknown[]): Promise<void>
  cleanup(): Promise<void>
}

function dbUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL)
  u.pathname = `/${name}`
  return u.toString()
}

export async function createLocation(backend: Backend): Promise<TestLocation> {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-store-'))
    const Database = (await import('better-sqlite3')).default
    return {
      backend,
      where: dir,
      open: () => openSqliteStore(dir),
      async exec(sql, params = []) {
        const db = new Database(join(dir, 'keyward.db'))
        try {
          db.prepare(sql).run(...(params as unknown[]))
        } finally {
          db.close()
        }
      },
      async cleanup() {
        rmSync(dir, { recursive: true, force: true })
      },
    }
  }
  const name = `keyward_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = dbUrl(name)
  return {
    backend,
    where: url,
    open: () => openPostgresStore(url),
    async exec(sql, params = []) {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      try {
        // node-postgres numbers placeholders $1..; the tests write them as ? for both backends.
        let i = 0
        await c.query(sql.replace(/\?/g, () => `$${++i}`), params)
      } finally {
        await c.end()
      }
    },
    async cleanup() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}
