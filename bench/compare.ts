// The results file of the e2e benchmark (bench/results/<machine-kind>.json) and the regression
// rule of `npm run bench -- --compare`: a ratio to the floor more than `tolerance` below the
// committed one is a regression. Ratios, not raw rates, so a busier run of the same machine kind
// moves broker and floor together. Pure: no I/O besides machineKind's os facts.
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
}

export interface BenchResults {
  machineKind: string
  machine: { cpus: number; model: string; memGb: number; node: string; note: string }
  date: string
  mode: 'quick' | 'full'
  coldStartMs: number
  cells: E2eCell[]
}

export interface Regression {
  key: string
  baseline: number
  current: number
}

export const cellKey = (c: Pick<E2eCell, 'tee' | 'store' | 'workers' | 'clients'>): string => `${c.tee}/${c.store}/w${c.workers}/c${c.clients}`

/** Cells present in both runs whose current ratio is below baseline × (1 − tolerance). */
export function compareResults(baseline: BenchResults, current: BenchResults, tolerance = 0.2): { regressions: Regression[]; compared: number } {
  const base = new Map(baseline.cells.map((c) => [cellKey(c), c.ratio]))
  const regressions: Regression[] = []
  let compared = 0
  for (const c of current.cells) {
    const b = base.get(cellKey(c))
    if (b === undefined) continue
    compared++
    if (!(c.ratio >= b * (1 - tolerance))) regressions.push({ key: cellKey(c), baseline: b, current: c.ratio })
  }
  return { regressions, compared }
}

/** "<cores>cpu-<cpu model slug>": results are compared only within a machine kind. */
export function machineKind(): string {
  const model = (cpus()[0]?.model ?? 'unknown').toLowerCase().replace(/\(r\)|\(tm\)|cpu|@.*$/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
  return `${cpus().length}cpu-${model}`
}
