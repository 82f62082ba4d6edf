// scripts/test-summary.mjs, the closing line of scripts/test.sh: counts skips, and fails the run
// for a skip that no [needs:<tool>] + KEYWARD_TEST_ABSENT excuses, and for any skip under CI=true.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../helpers/vectors.js'

/** A vitest JSON report (the shape `--reporter=json` writes) with the given test statuses. */
function report(tests: Array<[string, string]>) {
  const count = (s: string) => tests.filter(([, st]) => st === s).length
  return {
    numPassedTests: count('passed'),
    numFailedTests: count('failed'),
    numFailedTestSuites: 0,
    numPendingTests: count('skipped'),
    testResults: [{ name: '/repo/test/x.test.ts', assertionResults: tests.map(([fullName, status]) => ({ fullName, status })) }],
  }
}

describe('scripts/test-summary.mjs', () => {
  let dir: string
  const run = (files: string[], env: Record<string, string> = {}) => {
    const { CI: _ci, KEYWARD_TEST_ABSENT: _a, ...rest } = process.env
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/test-summary.mjs'), ...files], { env: { ...rest, ...env }, encoding: 'utf8' })
    return { code: r.status, out: r.stdout.trim().split('\n') }
  }
  const write = (name: string, tests: Array<[string, string]>) => {
    const f = join(dir, name)
    writeFileSync(f, JSON.stringify(report(tests)))
    return f
  }
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kw-summary-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('reports passed, failed and skipped, and passes a run whose every skip is excused', () => {
    const f = write('ok.json', [['a', 'passed'], ['b', 'passed'], ['agent [needs:ebpf] cross-check', 'skipped']])
    expect(run([f], { KEYWARD_TEST_ABSENT: 'nsm, ebpf' })).toEqual({ code: 0, out: ['2 passed, 0 failed, 1 skipped'] })
  })

  it('fails a run with a skip nothing excuses, naming it', () => {
    const f = write('bare.json', [['a', 'passed'], ['quiet skip', 'skipped'], ['agent [needs:ebpf] x', 'skipped'], ['later', 'todo']])
    const r = run([f], { KEYWARD_TEST_ABSENT: 'nsm' })
    expect(r.code).toBe(1)
    expect(r.out.at(-1)).toBe('1 passed, 0 failed, 3 skipped')
    expect(r.out.filter((l) => l.startsWith('skipped without leave'))).toHaveLength(3)
  })

  it('under CI=true no test may skip, whatever KEYWARD_TEST_ABSENT says', () => {
    const f = write('ci.json', [['a', 'passed'], ['agent [needs:ebpf] x', 'skipped']])
    const r = run([f], { CI: 'true', KEYWARD_TEST_ABSENT: 'ebpf' })
    expect(r.code).toBe(1)
    expect(r.out[0]).toMatch(/^skipped without leave \(CI=true\): .*agent \[needs:ebpf\] x$/)
  })

  it('counts failures, and a missing report as one', () => {
    const f = write('fail.json', [['a', 'failed'], ['b', 'passed']])
    expect(run([f, join(dir, 'absent.json')])).toEqual({ code: 1, out: ['1 passed, 2 failed, 0 skipped'] })
  })
})
