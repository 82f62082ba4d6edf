// The publishable enclave-client compiles from its own sources plus src/protocol and src/util only
// (issue 14: the client shares nothing else with the broker).
import { describe, it, expect } from 'vitest'
import { execFileSync } from 'node:child_process'
import { relative } from 'node:path'
import { REPO_ROOT } from '../helpers/vectors.js'

describe('enclave-client build', () => {
  it('compiles only enclave-client/src, src/protocol and src/util', () => {
    const out = execFileSync('npx', ['tsc', '-p', 'enclave-client/tsconfig.json', '--listFilesOnly'], { cwd: REPO_ROOT, encoding: 'utf8' })
    const ours = out.split('\n').filter((f) => f !== '' && !f.includes('/node_modules/')).map((f) => relative(REPO_ROOT, f))
    expect(ours.length).toBeGreaterThan(10)
    const outside = ours.filter((f) => !/^(enclave-client\/src|src\/protocol|src\/util)\//.test(f))
    expect(outside).toEqual([])
  }, 120_000)
})
