// The closing line of scripts/test.sh over vitest JSON reports: "N passed, N failed, N skipped".
// Exits 1 when anything failed or a test skipped without leave. A test may skip only when its
// title (or a describe title above it) declares `[needs:<tool>]` and KEYWARD_TEST_ABSENT (comma
// separated) names that tool; under CI=true nothing may skip. A report that is missing or
// unreadable counts as one failure.
import { readFileSync } from 'node:fs'

const absent = new Set((process.env.KEYWARD_TEST_ABSENT ?? '').split(',').map((s) => s.trim()).filter(Boolean))
const ci = process.env.CI === 'true'
let passed = 0
let failed = 0
let skipped = 0
const unexcused = []
for (const file of process.argv.slice(2)) {
  let r
  try {
    r = JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    failed += 1
    continue
  }
  passed += r.numPassedTests
  failed += Math.max(r.numFailedTests, r.numFailedTestSuites)
  for (const suite of r.testResults ?? []) {
    for (const t of suite.assertionResults ?? []) {
      if (t.status !== 'skipped' && t.status !== 'pending' && t.status !== 'todo') continue
      skipped += 1
      const needs = [...`${t.fullName}`.matchAll(/\[needs:([a-z0-9-]+)\]/g)].map((m) => m[1])
      if (ci || !needs.some((n) => absent.has(n))) unexcused.push(`${suite.name}: ${t.fullName}`)
    }
  }
}
for (const u of unexcused) console.log(`skipped without leave${ci ? ' (CI=true)' : ''}: ${u}`)
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(failed > 0 || unexcused.length > 0 ? 1 : 0)
