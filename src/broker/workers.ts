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

export interface WorkerBudget {
  store: 'sqlite' | 'postgres'
  /** CPUs the kernel schedules this process on. */
  cpus: number
  /** The cgroup's CPU quota in CPUs (quota / period), when one is set. */
  cpuQuota?: number
  /** The cgroup's memory limit in bytes, when one is set. */
  memoryLimit?: number
  /** PostgreSQL: connection slots not yet taken (max_connections − reserved − in use). */
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
  if (b.freeConnections !== undefined) bounds.push(['connections', Math.floor((b.freeConnections - CONNECTION_HEADROOM) / CONNECTIONS_PER_PROCESS)])
  const [limitedBy, n] = bounds.reduce((a, c) => (c[1] < a[1] ? c : a))
  return { workers: Math.min(64, Math.max(1, n)), limitedBy }
}

function readNumber(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** The CPU quota and memory limit of this process's cgroup (v2 unified, else v1), each absent when none is set. */
export function cgroupLimits(root = '/sys/fs/cgroup'): { cpuQuota?: number; memoryLimit?: number } {
  const out: { cpuQuota?: number; memoryLimit?: number } = {}
  const v2cpu = readNumber(join(root, 'cpu.max'))
  if (v2cpu !== undefined) {
    const [quota, period] = v2cpu.split(/\s+/)
    if (quota !== 'max' && Number(quota) > 0 && Number(period) > 0) out.cpuQuota = Number(quota) / Number(period)
  } else {
    const quota = Number(readNumber(join(root, 'cpu', 'cpu.cfs_quota_us')))
    const period = Number(readNumber(join(root, 'cpu', 'cpu.cfs_period_us')))
    if (quota > 0 && period > 0) out.cpuQuota = quota / period
  }
  const mem = readNumber(join(root, 'memory.max')) ?? readNumber(join(root, 'memory', 'memory.limit_in_bytes'))
  // v1 writes "no limit" as a page-rounded 2^63; anything beyond a petabyte is no limit.
  if (mem !== undefined && /^\d+$/.test(mem) && Number(mem) < 2 ** 50) out.memoryLimit = Number(mem)
  return out
}

/** This machine's side of the budget; the store's side (free connections) comes from the store. */
export function hostBudget(root?: string): Pick<WorkerBudget, 'cpus' | 'cpuQuota' | 'memoryLimit'> {
  return { cpus: availableParallelism(), ...cgroupLimits(root) }
}
