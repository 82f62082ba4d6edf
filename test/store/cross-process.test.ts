// Two separate Node processes on one store (PostgreSQL as shared by broker replicas, and one
// SQLite file as shared by `serve --workers`): each nonce is consumed by exactly one of them, and
// concurrent audit appends from both form one valid chain.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createLocation, type Backend, type TestLocation } from './helpers.js'
import pg from 'pg'
import { verifyAuditChain } from '../../src/audit/chain.js'

const WORKER = fileURLToPath(new URL('./fixtures/store-worker.ts', import.meta.url))
const T0 = 1_790_000_000_000

interface Worker {
  child: ChildProcess
  next(): Promise<Record<string, unknown>>
}

function spawnWorker(backend: Backend, where: string): Worker {
  const child = fork(WORKER, [backend, where], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const queue: Record<string, unknown>[] = []
  const waiters: ((m: Record<string, unknown>) => void)[] = []
  child.on('message', (m) => {
    const w = waiters.shift()
    if (w) w(m as Record<string, unknown>)
    else queue.push(m as Record<string, unknown>)
  })
  return {
    child,
    next: () => {
      const m = queue.shift()
      return m ? Promise.resolve(m) : new Promise((r) => waiters.push(r))
    },
  }
}

async function twoReady(loc: TestLocation): Promise<[Worker, Worker]> {
  const ws: [Worker, Worker] = [spawnWorker(loc.backend, loc.where), spawnWorker(loc.backend, loc.where)]
  for (const w of ws) expect(await w.next()).toEqual({ ready: true })
  return ws
}

describe.each<Backend>(['postgres', 'sqlite'])('three processes starting on a fresh store (%s)', (backend) => {
  it('both apply or find the migrations and open', async () => {
    const loc = await createLocation(backend)
    try {
      const ws = [0, 1, 2].map(() => fork(WORKER, [backend, loc.where, 'open-only'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
      const replies = await Promise.all(ws.map((c) => new Promise((r) => c.once('message', r))))
      expect(replies).toEqual([{ ready: true }, { ready: true }, { ready: true }])
      const s = await loc.open()
      expect(await s.listAudit({})).toEqual([])
      await s.close()
    } finally {
      await loc.cleanup()
    }
  })
})

describe.each<Backend>(['postgres', 'sqlite'])('two processes on one store (%s)', (backend) => {
  let loc: TestLocation
  beforeAll(async () => {
    loc = await createLocation(backend)
    const s = await loc.open() // migrate once up front; the workers then race only on the data
    await s.close()
  })
  afterAll(async () => {
    await loc?.cleanup()
  })

  it('consumes each nonce exactly once across both processes', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `xp-${i}`)
    const s = await loc.open()
    for (const id of ids) await s.insertNonce({ id, createdAt: T0, expiresAt: T0 + 60_000 })
    await s.close()

    const ws = await twoReady(loc)
    for (const w of ws) w.child.send({ kind: 'consume', ids, perId: 5, now: T0 + 1 })
    const replies = await Promise.all(ws.map((w) => w.next()))
    const results = replies.flatMap((r) => (r.results ?? []) as [string, string][])
    expect(results).toHaveLength(ids.length * 5 * 2)
    for (const id of ids) {
      const forId = results.filter(([x]) => x === id).map(([, r]) => r)
      expect(forId.filter((r) => r === 'ok'), id).toHaveLength(1)
      expect(forId.filter((r) => r === 'used'), id).toHaveLength(9)
    }
    // Every nonce was won by exactly one process (which one depends on scheduling).
    const wins = replies.map((r) => ((r.results ?? []) as [string, string][]).filter(([, x]) => x === 'ok').length)
    expect(wins.reduce((a, b) => a + b, 0)).toBe(ids.length)
  })

  it('keeps one valid audit chain with both processes appending', async () => {
    const ws = await twoReady(loc)
    ws[0].child.send({ kind: 'audit', count: 25, tag: 'a', at: T0 })
    ws[1].child.send({ kind: 'audit', count: 25, tag: 'b', at: T0 })
    for (const r of await Promise.all(ws.map((w) => w.next()))) expect(r).toEqual({ done: true })
    const s = await loc.open()
    const rows = await s.listAudit({})
    await s.close()
    expect(rows).toHaveLength(50)
    expect(verifyAuditChain(rows)).toMatchObject({ ok: true, count: 50 })
    expect(new Set(rows.map((r) => r.subject)).size).toBe(50)
  })
})

/** Transactions rolled back in the database at `url`, once every other session on it has exited (a backend flushes its statistics as it ends). */
async function rolledBack(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    while (Number((await c.query('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')).rows[0].n) > 0) {
      await new Promise((r) => setTimeout(r, 20))
    }
    await c.query('SELECT pg_stat_clear_snapshot()')
    return Number((await c.query('SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()')).rows[0].xact_rollback)
  } finally {
    await c.end()
  }
}

describe('two processes appending to one PostgreSQL audit chain batch after batch', () => {
  // Each batch is chained in the process from the head it last saw; a batch that finds the head
  // moved by the other process fails (a unique violation, an ERROR in the server's log). Retried
  // after a random sleep, such batches kept failing while the other process went on: it starved.
  // Once they collide, batches now take the chain's lock before reading the head.
  it('keeps one chain; after they first collide, the two take turns under the chain lock instead of failing and backing off', async () => {
    const loc = await createLocation('postgres')
    try {
      const s = await loc.open()
      await s.close()
      const before = await rolledBack(loc.where)
      const ws = await twoReady(loc)
      for (const [i, w] of ws.entries()) w.child.send({ kind: 'audit', count: 2, tag: `p${i}`, at: T0, waves: 200 })
      for (const r of await Promise.all(ws.map((w) => w.next()))) expect(r).toEqual({ done: true })
      const failed = (await rolledBack(loc.where)) - before
      const check = await loc.open()
      const rows = await check.listAudit({})
      await check.close()
      expect(rows).toHaveLength(2 * 200 * 2)
      expect(verifyAuditChain(rows)).toMatchObject({ ok: true, count: 800 })
      // Turns: neighbours in the chain from different processes (the old retry gave 1: one starved).
      const turns = rows.filter((r, i) => i > 0 && r.subject.slice(0, 2) !== rows[i - 1]!.subject.slice(0, 2)).length
      expect(turns).toBeGreaterThanOrEqual(20)
      expect(failed).toBeLessThanOrEqual(4)
    } finally {
      await loc.cleanup()
    }
  })
})
