// `workers: auto`: one process on SQLite; on PostgreSQL as many as the CPUs, the cgroup's CPU
// quota and memory limit and the server's free connection slots allow, whichever is least.
import { describe, it, expect } from 'vitest'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { cgroupLimits, chooseWorkers, CONNECTIONS_PER_PROCESS, CONNECTION_HEADROOM, MEMORY_PER_PROCESS } from '../../src/broker/workers.js'
import { freeConnectionSlots } from '../../src/store/index.js'
import { createLocation } from '../store/helpers.js'

describe('chooseWorkers', () => {
  it('gives SQLite one process whatever the host offers', () => {
    expect(chooseWorkers({ store: 'sqlite', cpus: 16 })).toEqual({ workers: 1, limitedBy: 'sqlite' })
  })

  it('gives PostgreSQL the least of CPUs, CPU quota, memory and free connections', () => {
    expect(chooseWorkers({ store: 'postgres', cpus: 8 })).toEqual({ workers: 8, limitedBy: 'cpus' })
    expect(chooseWorkers({ store: 'postgres', cpus: 8, cpuQuota: 2.5 })).toEqual({ workers: 2, limitedBy: 'cpu-quota' })
    expect(chooseWorkers({ store: 'postgres', cpus: 8, memoryLimit: 3 * MEMORY_PER_PROCESS + 1 })).toEqual({ workers: 3, limitedBy: 'memory' })
    // PostgreSQL's default max_connections (100, 3 reserved) with nothing else connected: two
    // processes (42 connections), half the room, so that a replica started next gets as many.
    expect(chooseWorkers({ store: 'postgres', cpus: 8, freeConnections: 97 })).toEqual({ workers: 2, limitedBy: 'connections' })
    expect(chooseWorkers({ store: 'postgres', cpus: 8, freeConnections: 97 - 2 * CONNECTIONS_PER_PROCESS })).toEqual({ workers: 1, limitedBy: 'connections' })
    expect(chooseWorkers({ store: 'postgres', cpus: 8, freeConnections: 8 * CONNECTIONS_PER_PROCESS + CONNECTION_HEADROOM - 1 })).toEqual({ workers: 3, limitedBy: 'connections' })
    expect(chooseWorkers({ store: 'postgres', cpus: 8, freeConnections: 8 * CONNECTIONS_PER_PROCESS + CONNECTION_HEADROOM })).toEqual({ workers: 4, limitedBy: 'connections' })
  })

  it('never gives fewer than one process or more than 64', () => {
    expect(chooseWorkers({ store: 'postgres', cpus: 8, cpuQuota: 0.5 }).workers).toBe(1)
    expect(chooseWorkers({ store: 'postgres', cpus: 8, freeConnections: 3 }).workers).toBe(1)
    expect(chooseWorkers({ store: 'postgres', cpus: 8, memoryLimit: 64 * 1024 * 1024 }).workers).toBe(1)
    expect(chooseWorkers({ store: 'postgres', cpus: 256 }).workers).toBe(64)
  })
})

describe('cgroupLimits', () => {
  const root = (files: Record<string, string>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-cgroup-'))
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(join(dir, f, '..'), { recursive: true })
      writeFileSync(join(dir, f), `${text}\n`)
    }
    return dir
  }
  const read = (files: Record<string, string>, selfCgroup: string): ReturnType<typeof cgroupLimits> => {
    const dir = root(files)
    try {
      return cgroupLimits(dir, selfCgroup)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const v2 = { 'cgroup.controllers': 'cpu memory' }

  it('reads cgroup v2 limits, and "max" as none', () => {
    expect(read({ ...v2, 'cpu.max': '150000 100000', 'memory.max': '1073741824' }, '0::/')).toEqual({ cpuQuota: 1.5, memoryLimit: 1073741824 })
    expect(read({ ...v2, 'cpu.max': 'max 100000', 'memory.max': 'max' }, '0::/')).toEqual({})
  })

  it("reads cgroup v2 limits along the process's cgroup path up to the root: the least wins (a systemd slice's quota, a service's memory limit)", () => {
    const files = {
      ...v2,
      'system.slice/cpu.max': '50000 100000',
      'system.slice/memory.max': '4294967296',
      'system.slice/keyward.service/cpu.max': 'max 100000',
      'system.slice/keyward.service/memory.max': '1073741824',
      'other.slice/cpu.max': '10000 100000',
    }
    expect(read(files, '0::/system.slice/keyward.service')).toEqual({ cpuQuota: 0.5, memoryLimit: 1073741824 })
    expect(read(files, '0::/')).toEqual({})
  })

  it('reads cgroup v1 limits at each hierarchy\'s path, and -1 or a page-rounded 2^63 as none', () => {
    const self = '11:memory:/\n4:cpu,cpuacct:/\n1:name=systemd:/'
    expect(read({ 'cpu/cpu.cfs_quota_us': '200000', 'cpu/cpu.cfs_period_us': '100000', 'memory/memory.limit_in_bytes': '536870912' }, self)).toEqual({ cpuQuota: 2, memoryLimit: 536870912 })
    expect(read({ 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000', 'memory/memory.limit_in_bytes': '9223372036854771712' }, self)).toEqual({})
    const pod = '11:memory:/kubepods/pod1\n4:cpu,cpuacct:/kubepods/pod1'
    const nested = {
      'cpu/kubepods/cpu.cfs_quota_us': '150000',
      'cpu/kubepods/cpu.cfs_period_us': '100000',
      'cpu/kubepods/pod1/cpu.cfs_quota_us': '-1',
      'cpu/kubepods/pod1/cpu.cfs_period_us': '100000',
      'memory/kubepods/pod1/memory.limit_in_bytes': '536870912',
    }
    expect(read(nested, pod)).toEqual({ cpuQuota: 1.5, memoryLimit: 536870912 })
  })

  it('reads no limits where there is no cgroup file system', () => {
    expect(read({}, '')).toEqual({})
  })
})

describe('freeConnectionSlots', () => {
  it("reads the PostgreSQL server's max_connections less reserved slots and connected clients", async () => {
    const loc = await createLocation('postgres')
    const held = new pg.Client({ connectionString: loc.where })
    await held.connect()
    try {
      const settings = await held.query<{ max: number; reserved: number }>("SELECT current_setting('max_connections')::int AS max, current_setting('superuser_reserved_connections')::int AS reserved")
      const { max, reserved } = settings.rows[0]!
      const free = await freeConnectionSlots(loc.where)
      // Other test files' connections come and go; this test's own two (held, and the reader's) always count.
      expect(free).toBeLessThanOrEqual(max - reserved - 2)
      expect(free).toBeGreaterThan(0)
    } finally {
      await held.end()
      await loc.cleanup()
    }
  })
})
