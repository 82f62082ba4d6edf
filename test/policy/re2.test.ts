// CEL `matches` runs on RE2 (src/policy/regex.ts, docs/policy.md §Regular expressions): a
// catastrophic-backtracking pattern over a claim the attacker chose answers at once, and a pattern
// RE2 cannot run (lookaround, backreferences) is refused when the policy is applied, with its
// position, through the admin API on SQLite and PostgreSQL.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compilePolicy, evaluatePolicy } from '../../src/policy/engine.js'
import { KeywardError } from '../../src/errors.js'
import { runBin } from '../enclave-client/helpers/proc.js'
import { REPO_ROOT } from '../helpers/vectors.js'
import { startHarness, type Harness } from '../broker/harness.js'
import { claims, NOW, policySource } from './helpers.js'

const EVIL = '^(a+)+$'
/** Exponential for a backtracking engine (2^n paths before the final `b` fails the match). */
const ATTACK = `${'a'.repeat(5000)}b`

function rejection(source: string): KeywardError {
  try {
    compilePolicy(source, { file: 'p.yaml' })
  } catch (e) {
    expect(e).toBeInstanceOf(KeywardError)
    return e as KeywardError
  }
  throw new Error('policy was accepted')
}

/** Runs `node args…` in REPO_ROOT, killed (SIGKILL) when it outlives `timeoutMs`. */
function runNode(args: string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'], timeout: timeoutMs, killSignal: 'SIGKILL' })
    let stdout = ''
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    p.once('error', reject)
    p.on('close', (code, signal) => resolve({ code, signal, stdout }))
  })
}

describe('CEL matches on RE2', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-re2-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('keyward policy test answers ^(a+)+$ over an attacker-chosen aaaa…b claim with a denial, in a child process killed if it hangs', async () => {
    const policy = join(dir, 'redos.yaml')
    writeFileSync(policy, policySource({ conditions: [['cmdline-shape', `claims.details.cmdline.matches("${EVIL}")`], ['cmdline-shape-global', `matches(claims.details.cmdline, "${EVIL}")`],
      // a comparison: the denial explainer evaluates each operand again, also on RE2
      ['cmdline-shape-explained', `claims.debug == false && claims.details.cmdline.matches("${EVIL}") == true`]] }))
    const input = join(dir, 'claims.json')
    writeFileSync(input, JSON.stringify({ ...claims('sev-snp', { cmdline: ATTACK }), bindingData: '00', nonce: null, publicKey: null }))
    let killed = false
    // The kill is what turns a backtracking engine into a failure here instead of a hung suite.
    const r = await runBin('keyward', ['policy', 'test', policy, input, '--json'], {
      onSpawn: (p) => {
        const t = setTimeout(() => ((killed = true), p.kill('SIGKILL')), 60_000)
        p.once('close', () => clearTimeout(t))
      },
    })
    expect(killed).toBe(false)
    expect(r.code).toBe(3)
    const d = JSON.parse(r.stdout) as { allow: boolean; failures: Array<{ condition: string; actual: unknown; message: string }> }
    expect(d.allow).toBe(false)
    expect(d.failures.map((f) => [f.condition, f.actual])).toEqual([['cmdline-shape', false], ['cmdline-shape-global', false], ['cmdline-shape-explained', false]])
  }, 90_000)

  it('control: the same match on cel-js’s built-in JavaScript RegExp does not finish (killed after 3 s)', async () => {
    const script = `import { Environment } from '@marcbachmann/cel-js'
const env = new Environment().registerVariable('s', 'string')
console.log(env.evaluate('s.matches("${EVIL.replaceAll('\\', '\\\\')}")', { s: 'a'.repeat(5000) + 'b' }))`
    const r = await runNode(['--input-type=module', '-e', script], 3_000)
    expect(r.stdout).toBe('')
    expect(r.signal).toBe('SIGKILL')
  }, 30_000)

  it('evaluates in process: receiver and global forms, a pattern computed from claims, RE2 partial-match semantics', () => {
    const p = compilePolicy(
      policySource({
        conditions: [
          ['hex-96', 'claims.measurement.matches("^[0-9a-f]{96}$")'],
          ['global', 'matches(claims.details.cmdline, "console=ttyS0")'],
          ['dynamic', 'claims.details.cmdline.matches(claims.details.pattern)'],
          ['evil', `claims.details.cmdline.matches("${EVIL}")`],
        ],
      }),
    )
    const run = (details: Record<string, string>) => evaluatePolicy(p, { claims: claims('sev-snp', details), refs: {}, now: NOW }).failures
    expect(run({ cmdline: 'aaaa', pattern: 'a{2}' }).map((f) => f.condition)).toEqual(['global'])
    expect(run({ cmdline: 'aaa console=ttyS0', pattern: '(?i)CONSOLE' }).map((f) => f.condition)).toEqual(['evil'])
    // (short: a backtracking engine would hang here; the attack input is in the child-process test)
    expect(run({ cmdline: `${'a'.repeat(16)}b`, pattern: 'b$' }).map((f) => [f.condition, f.actual])).toEqual([['global', false], ['evil', false]])
    // A computed pattern RE2 refuses is an evaluation failure of that condition, never a JS RegExp.
    const bad = run({ cmdline: 'aaaa', pattern: '(?=a)a' })
    expect(bad.map((f) => f.condition)).toEqual(['global', 'dynamic'])
    expect(bad[1]!.message).toMatch(/^evaluation error: invalid RE2 pattern "\(\?=a\)a": invalid or unsupported Perl syntax/)
  })

  it.each([
    ['lookahead', '(?=a)b', 'claims.measurement.matches("(?=a)b")', 41],
    ['lookbehind', '(?<!x)y', 'claims.measurement.matches("(?<!x)y")', 41],
    ['backreference (global form)', '(a)\\1', 'matches(claims.measurement, "(a)\\\\1")', 42],
  ])('refuses a %s at compile time with line:column of the pattern', (_name, pattern, expr, column) => {
    const e = rejection(policySource({ conditions: [['ok', 'claims.debug == false'], ['shape', expr]] }))
    expect(e.code).toBe('ERR_POLICY_INVALID')
    expect(e.message).toContain(`p.yaml:11:${column}: condition "shape": RE2 pattern not supported: ${JSON.stringify(pattern)}`)
  })

  it('a type error in a matches call still names matches', () => {
    expect(rejection(policySource({ conditions: [['shape', 'claims.measurement.matches(1)']] })).message).toContain(
      "found no matching overload for 'string.matches(int)'",
    )
  })
})

describe.each(['sqlite', 'postgres'] as const)('applying a policy with a pattern RE2 cannot run, on %s', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend)
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('POST /v1/admin/policies answers 400 ERR_POLICY_INVALID with the position, and stores nothing', async () => {
    const source = policySource({ name: 'lookaround', tees: ['nitro'], conditions: [['module', 'claims.details.moduleId.matches("^i-(?!0)")']] })
    const auth = { authorization: `Bearer ${h.adminToken}` }
    const r = await fetch(`${h.url}/v1/admin/policies`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ source }) })
    expect(r.status).toBe(400)
    const body = (await r.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('ERR_POLICY_INVALID')
    expect(body.error.message).toMatch(/^policy:9:46: condition "module": RE2 pattern not supported: "\^i-\(\?!0\)": invalid or unsupported Perl syntax/)
    const list = (await (await fetch(`${h.url}/v1/admin/policies`, { headers: auth })).json()) as unknown
    expect(JSON.stringify(list)).not.toContain('lookaround')
  })
})
