// The results file of the e2e benchmark (bench/results/<machine-kind>.json) and the regression
// rule of `npm run bench -- --compare`: a ratio to the floor more than `tolerance` below the
// committed one is a regression. Ratios, not raw rates, so a busier run of the same machine kind
// moves broker and floor together. A cell that falls below is measured again (up to `retries`
// more times, keeping its best ratio) before it counts: on a shared VM one run of a cell moves by
// more than 20 %, a real regression stays low every time. Pure: no I/O besides machineKind's os facts.
import { cpus } from 'node:os'

export interface E2eCell {
  tee: string
  store: string
  workers: number
  clients: number
  flows: number
  flowsPerSec: number
  floorFlowsPerSec: number
  ratio: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  errors: number
  rssMaxMb: number
  /** CPU ms per flow of the broker's processes (every thread), and of PostgreSQL's (0 on SQLite): measured, not compared. Absent in results saved before 2026-12-03. */
  brokerCpuMsPerFlow?: number
  dbCpuMsPerFlow?: number
}

/**
 * A fixed-rate (open-loop) run of Nitro or SEV-SNP flows: `basis` says how its rate was chosen,
 * 'goal' (half the floor, the throughput the goal asks for) or 'half-capacity' (half of what the
 * closed loop reached at 64 clients). Reported, never compared: its latency is the point.
 */
export interface OpenLoopRow {
  tee: string
  store: string
  workers: number
  basis: 'goal' | 'half-capacity'
  connections: number
  offeredFlowsPerSec: number
  flows: number
  flowsPerSec: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  errors: number
  rssMaxMb: number
}

export interface BenchResults {
  machineKind: string
  machine: { cpus: number; model: string; memGb: number; node: string; note: string }
  date: string
  mode: 'quick' | 'full'
  coldStartMs: number
  cells: E2eCell[]
  openLoop?: OpenLoopRow[]
}

export interface Regression {
  key: string
  baseline: number
  current: number
}

export const cellKey = (c: Pick<E2eCell, 'tee' | 'store' | 'workers' | 'clients'>): string => `${c.tee}/${c.store}/w${c.workers}/c${c.clients}`

export const TOLERANCE = 0.2

/** A ratio more than `tolerance` below its baseline; NaN (a broken figure) is one too. */
export const belowBaseline = (ratio: number, baseline: number, tolerance = TOLERANCE): boolean => !(ratio >= baseline * (1 - tolerance))

/** Cells present in both runs whose current ratio is below baseline × (1 − tolerance). */
export function compareResults(baseline: BenchResults, current: BenchResults, tolerance = TOLERANCE): { regressions: Regression[]; compared: number } {
  const base = new Map(baseline.cells.map((c) => [cellKey(c), c.ratio]))
  const regressions: Regression[] = []
  let compared = 0
  for (const c of current.cells) {
    const b = base.get(cellKey(c))
    if (b === undefined) continue
    compared++
    if (belowBaseline(c.ratio, b, tolerance)) regressions.push({ key: cellKey(c), baseline: b, current: c.ratio })
  }
  return { regressions, compared }
}

/**
 * Measures a cell; while its ratio is below `baseline` (when there is one), measures it again, up
 * to `retries` more times, and returns the best of the attempts with how many were made.
 */
export async function measureAgainstBaseline<C extends { ratio: number }>(
  measure: () => Promise<C>,
  baseline: number | undefined,
  retries = 2,
  tolerance = TOLERANCE,
): Promise<{ cell: C; attempts: number }> {
  let best = await measure()
  let attempts = 1
  while (baseline !== undefined && attempts <= retries && belowBaseline(best.ratio, baseline, tolerance)) {
    const again = await measure()
    attempts++
    if (again.ratio > best.ratio || (Number.isNaN(best.ratio) && !Number.isNaN(again.ratio))) best = again
  }
  return { cell: best, attempts }
}

/** "<cores>cpu-<cpu model slug>": results are compared only within a machine kind. */
export function machineKind(): string {
  const model = (cpus()[0]?.model ?? 'unknown').toLowerCase().replace(/\(r\)|\(tm\)|cpu|@.*$/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
  return `${cpus().length}cpu-${model}`
}
