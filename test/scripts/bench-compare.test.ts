// The regression rule of `npm run bench -- --compare` (bench/compare.ts), over result objects:
// a ratio to the floor more than 20 % below the committed one fails; cells only one run has are
// not compared; a cell below its own is measured again, up to twice, and its best attempt counts.
// Pure: no timing here.
import { describe, it, expect } from 'vitest'
import { compareResults, cellKey, measureAgainstBaseline, type BenchResults, type E2eCell } from '../../bench/compare.js'

const cell = (o: Partial<E2eCell> & Pick<E2eCell, 'ratio'>): E2eCell => ({
  tee: 'nitro', store: 'sqlite', workers: 1, clients: 64, flows: 100, flowsPerSec: 50, floorFlowsPerSec: 100, p50Ms: 1, p99Ms: 2, p999Ms: 3, errors: 0, rssMaxMb: 100, ...o,
})
const run = (cells: E2eCell[]): BenchResults => ({
  machineKind: '2cpu-test', machine: { cpus: 2, model: 'test', memGb: 1, node: 'v20', note: '' }, date: '2026-01-01T00:00:00Z', mode: 'quick', coldStartMs: 1000, cells,
})

describe('bench --compare', () => {
  it('flags a ratio more than 20 % below the committed one, and only that cell', () => {
    const base = run([cell({ ratio: 0.5 }), cell({ tee: 'sev-snp', ratio: 0.4 })])
    const cur = run([cell({ ratio: 0.39 }), cell({ tee: 'sev-snp', ratio: 0.33 })])
    const { regressions, compared } = compareResults(base, cur)
    expect(compared).toBe(2)
    expect(regressions).toEqual([{ key: 'nitro/sqlite/w1/c64', baseline: 0.5, current: 0.39 }])
  })

  it('accepts exactly 20 % below, and any improvement', () => {
    expect(compareResults(run([cell({ ratio: 0.5 })]), run([cell({ ratio: 0.4 })])).regressions).toEqual([])
    expect(compareResults(run([cell({ ratio: 0.5 })]), run([cell({ ratio: 0.9 })])).regressions).toEqual([])
  })

  it('matches cells by TEE, store, workers and clients; a missing or broken figure is not a pass', () => {
    const base = run([cell({ ratio: 0.5 }), cell({ store: 'postgres', ratio: 0.5 }), cell({ workers: 2, ratio: 0.5 })])
    const cur = run([cell({ store: 'postgres', ratio: 0.1 }), cell({ workers: 2, ratio: Number.NaN }), cell({ clients: 1, ratio: 0.01 })])
    const { regressions, compared } = compareResults(base, cur)
    expect(compared).toBe(2)
    expect(regressions.map((r) => r.key).sort()).toEqual(['nitro/postgres/w1/c64', 'nitro/sqlite/w2/c64'])
    expect(cellKey(cell({ ratio: 0 }))).toBe('nitro/sqlite/w1/c64')
  })

  /** A measurement that answers the given ratios in turn, counting its calls. */
  const answers = (...ratios: number[]) => {
    let calls = 0
    return { measure: async () => ({ ratio: ratios[calls++]! }), calls: () => calls }
  }

  it('measures a cell once when it holds its baseline, or when there is none', async () => {
    const a = answers(0.45, 0.1)
    expect(await measureAgainstBaseline(a.measure, 0.5)).toEqual({ cell: { ratio: 0.45 }, attempts: 1 })
    const b = answers(0.01, 0.9)
    expect(await measureAgainstBaseline(b.measure, undefined)).toEqual({ cell: { ratio: 0.01 }, attempts: 1 })
    expect([a.calls(), b.calls()]).toEqual([1, 1])
  })

  it('measures a cell below its baseline again and keeps the best attempt; a second low one still counts', async () => {
    expect(await measureAgainstBaseline(answers(0.3, 0.35, 0.42, 0.9).measure, 0.5)).toEqual({ cell: { ratio: 0.42 }, attempts: 3 })
    const low = await measureAgainstBaseline(answers(0.3, 0.38, 0.2, 0.9).measure, 0.5)
    expect(low).toEqual({ cell: { ratio: 0.38 }, attempts: 3 })
    // Three low attempts are a regression for compareResults.
    expect(compareResults(run([cell({ ratio: 0.5 })]), run([cell(low.cell)])).regressions).toHaveLength(1)
  })

  it('a broken figure (NaN) is measured again, and is never kept over a real one', async () => {
    expect(await measureAgainstBaseline(answers(Number.NaN, 0.45).measure, 0.5)).toEqual({ cell: { ratio: 0.45 }, attempts: 2 })
    expect(await measureAgainstBaseline(answers(0.2, Number.NaN, Number.NaN).measure, 0.5)).toEqual({ cell: { ratio: 0.2 }, attempts: 3 })
  })
})
