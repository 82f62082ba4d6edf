// The change feed that makes replicas one broker (src/store/changes.ts), on a real PostgreSQL:
// a committed change reaches every listening process with the table's name (a rolled-back one
// never does), a lost listening connection makes the feed say '*' (drop every cache) and it
// comes back by itself, and each periodic job has one owner per deployment until that owner goes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import pg from 'pg'
import { createLocation, type TestLocation } from './helpers.js'
import { APPLICATION_NAME, localChangeFeed, postgresChangeFeed, type ChangeFeed } from '../../src/store/changes.js'
import type { Store } from '../../src/store/types.js'

let loc: TestLocation
let store: Store
const feeds: ChangeFeed[] = []

/** Resolves with the first topic for which `want` holds (the test timeout bounds the wait). */
function next(feed: ChangeFeed, want: (topic: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const off = feed.onChange((t) => {
      if (want(t)) {
        off()
        resolve(t)
      }
    })
  })
}

async function feed(): Promise<ChangeFeed> {
  const f = await postgresChangeFeed(loc.where)
  feeds.push(f)
  return f
}

const policy = (name: string) => ({ name, source: `name: ${name}`, sha256: name.padEnd(64, '0'), createdBy: 'test', createdAt: 1 })

beforeAll(async () => {
  loc = await createLocation('postgres')
  store = await loc.open() // applies the migrations, triggers included
})

afterAll(async () => {
  for (const f of feeds) await f.close()
  await store?.close()
  await loc?.cleanup()
})

describe('postgres change feed', () => {
  it('tells every listener which table a committed change touched, and nothing for a rollback', async () => {
    const [a, b] = [await feed(), await feed()]
    const seen: string[] = []
    a.onChange((t) => seen.push(t))
    const gotA = next(a, (t) => t === 'policies')
    const gotB = next(b, (t) => t === 'policies')
    await store.putPolicy(policy('p1'))
    expect(await Promise.all([gotA, gotB])).toEqual(['policies', 'policies'])

    // A rolled-back update of signing_keys, then a committed reference-value change: only the latter arrives.
    const c = new pg.Client({ connectionString: loc.where })
    await c.connect()
    await c.query('BEGIN')
    await c.query('UPDATE signing_keys SET retired_at = 1')
    await c.query('ROLLBACK')
    await c.end()
    const refs = next(a, (t) => t === 'reference_values')
    await store.putReferenceValue({ id: 'r1', set: 's', tee: 'tpm', value: 'ab'.repeat(32), source: 'test', createdBy: 'test', createdAt: 1, expiresAt: null, revokedAt: null, revokedBy: null, note: null })
    await refs
    expect(seen).not.toContain('signing_keys')
  })

  it('says * when its connection is cut, reconnects, and delivers again', async () => {
    const f = await feed()
    // One '*' when the connection is lost, one more once it listens again.
    let stars = 0
    const dropped = next(f, (t) => t === '*' && ++stars === 2)
    const admin = new pg.Client({ connectionString: loc.where })
    await admin.connect()
    const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, [APPLICATION_NAME])
    await admin.end()
    expect(killed.rowCount).toBeGreaterThan(0)
    await dropped
    // Listening again: a change made now reaches it.
    const again = next(f, (t) => t === 'credentials')
    await store.putCredential({ id: 'admin:c1', kind: 'admin', hash: 'scrypt$x', createdAt: 1, revokedAt: null })
    expect(await again).toBe('credentials')
  })

  it('gives each periodic job one owner in the deployment, and hands it over when the owner closes', async () => {
    const [a, b] = [await feed(), await feed()]
    const runs: string[] = []
    const job = (who: string) => async () => void runs.push(who)
    expect(await a.runJob('sweep', job('a'))).toBe(true)
    expect(await b.runJob('sweep', job('b'))).toBe(false)
    expect(await a.runJob('sweep', job('a'))).toBe(true)
    // Another job may have another owner.
    expect(await b.runJob('other', job('b-other'))).toBe(true)
    expect(await a.runJob('other', job('a-other'))).toBe(false)
    await a.close()
    expect(await b.runJob('sweep', job('b'))).toBe(true)
    expect(runs).toEqual(['a', 'a', 'b-other', 'b'])
  })
})

describe('local (SQLite) change feed', () => {
  it('runs every job in every process and delivers nothing from elsewhere', async () => {
    const f = localChangeFeed()
    let ran = 0
    expect(await f.runJob('sweep', async () => void ran++)).toBe(true)
    expect(ran).toBe(1)
    await f.close()
  })
})
