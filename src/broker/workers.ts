// `workers: auto`: how many serving processes `keyward serve` forks. One per CPU this process may
// use, where the store allows several: on SQLite one, since processes sharing the file get no
// change notification from each other (docs/operations.md); on PostgreSQL as many as the CPUs,
// the memory limit and the server's free connection slots allow.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'

/** Connections one serving process may open: two pools of 10 and the change listener (docs/operations.md). */
export const CONNECTIONS_PER_PROCESS = 21
/** Memory set aside per serving process under a memory limit: the image's 512 MiB heap is the ceiling, ~180 MB what the benchmark's processes reached. */
export const MEMORY_PER_PROCESS = 256 * 1024 * 1024
/** Connection slots left for `keyward` commands and an operator's psql. */
export const CONNECTION_HEADROOM = 5
/**
 * The share of the free slots one `keyward serve` takes: half, so that replicas started next with
 * the same defaults still find room (max_connections 100, nothing else connected: 2, 1, 1).
 */
export const CONNECTION_SHARE = 0.5

export interface WorkerBudget {
  store: 'sqlite' | 'postgres'
  /** CPUs the kernel schedules this process on. */
  cpus: number
  /** The cgroup's CPU quota in CPUs (quota / period), when one is set. */
  cpuQuota?: number
  /** The cgroup's memory limit in bytes, when one is set. */
  memoryLimit?: number
  /** PostgreSQL: connection slots not yet taken (max_connections − reserved − in use); `auto` takes half of them (CONNECTION_SHARE). */
  freeConnections?: number
}

export interface WorkerChoice {
  workers: number
  /** What bounded the choice, for the log line that reports it. */
  limitedBy: 'sqlite' | 'cpus' | 'cpu-quota' | 'memory' | 'connections'
}

export function chooseWorkers(b: WorkerBudget): WorkerChoice {
  if (b.store === 'sqlite') return { workers: 1, limitedBy: 'sqlite' }
  const bounds: [WorkerChoice['limitedBy'], number][] = [['cpus', b.cpus]]
  if (b.cpuQuota !== undefined) bounds.push(['cpu-quota', Math.floor(b.cpuQuota)])
  if (b.memoryLimit !== undefined) bounds.push(['memory', Math.floor(b.memoryLimit / MEMORY_PER_PROCESS)])
  if (b.freeConnections !== undefined) bounds.push(['connections', Math.floor(((b.freeConnections - CONNECTION_HEADROOM) * CONNECTION_SHARE) / CONNECTIONS_PER_PROCESS)])
  const [limitedBy, n] = bounds.reduce((a, c) => (c[1] < a[1] ? c : a))
  return { workers: Math.min(64, Math.max(1, n)), limitedBy }
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** The smaller of two optional limits. */
const least = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.min(a, b))

/**
 * The CPU quota and memory limit that apply to this process, each absent when none is set. A
 * limit may sit on any ancestor of the process's cgroup (a systemd slice, a pod), so cgroup v2 is
 * read along the path /proc/self/cgroup names, from the process's own cgroup up to the root, and
 * the least limit wins. cgroup v1 (no cgroup.controllers at the root) is read at the cpu and
 * memory hierarchies' own paths, up to their roots.
 */
export function cgroupLimits(root = '/sys/fs/cgroup', selfCgroup = readTrimmed('/proc/self/cgroup') ?? ''): { cpuQuota?: number; memoryLimit?: number } {
  const lines = selfCgroup.split('\n').map((l) => l.split(':'))
  const pathOf = (controller: string): string => lines.find((f) => f.length >= 3 && f[1]!.split(',').includes(controller))?.[2] ?? '/'
  const upFrom = (base: string, path: string): string[] => {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.' && p !== '..')
    return parts.map((_, i) => join(base, ...parts.slice(0, parts.length - i))).concat(base)
  }
  const memory = (text: string | undefined): number | undefined =>
    // "max" (v2) or a page-rounded 2^63 (v1) is no limit; anything beyond a petabyte is taken as none.
    text !== undefined && /^\d+$/.test(text) && Number(text) < 2 ** 50 ? Number(text) : undefined
  let cpuQuota: number | undefined
  let memoryLimit: number | undefined
  if (readTrimmed(join(root, 'cgroup.controllers')) !== undefined) {
    for (const dir of upFrom(root, pathOf(''))) {
      const [quota, period] = (readTrimmed(join(dir, 'cpu.max')) ?? 'max').split(/\s+/)
      if (quota !== 'max' && Number(quota) > 0 && Number(period) > 0) cpuQuota = least(cpuQuota, Number(quota) / Number(period))
      memoryLimit = least(memoryLimit, memory(readTrimmed(join(dir, 'memory.max'))))
    }
  } else {
    for (const dir of upFrom(join(root, 'cpu'), pathOf('cpu'))) {
      const quota = Number(readTrimmed(join(dir, 'cpu.cfs_quota_us')))
      const period = Number(readTrimmed(join(dir, 'cpu.cfs_period_us')))
      if (quota > 0 && period > 0) cpuQuota = least(cpuQuota, quota / period)
    }
    for (const dir of upFrom(join(root, 'memory'), pathOf('memory'))) memoryLimit = least(memoryLimit, memory(readTrimmed(join(dir, 'memory.limit_in_bytes'))))
  }
  return { ...(cpuQuota !== undefined ? { cpuQuota } : {}), ...(memoryLimit !== undefined ? { memoryLimit } : {}) }
}

/** This machine's side of the budget; the store's side (free connections) comes from the store. */
export function hostBudget(): Pick<WorkerBudget, 'cpus' | 'cpuQuota' | 'memoryLimit'> {
  return { cpus: availableParallelism(), ...cgroupLimits() }
}
