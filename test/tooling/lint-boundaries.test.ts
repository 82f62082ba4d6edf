// The import boundaries of docs/architecture.md are enforced by ESLint (eslint.config.js): a
// deliberate violation, linted as if it were a file at that place in the tree, is reported with
// the rule's name; the allowed imports are not. Only the fixtures are linted (fast).
import { describe, it, expect, afterAll } from 'vitest'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ESLint } from 'eslint'
import { REPO_ROOT } from '../helpers/vectors.js'

const eslint = new ESLint({ cwd: REPO_ROOT })

async function rulesFor(path: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(REPO_ROOT, path) })
  return r!.messages.map((m) => m.ruleId ?? `fatal: ${m.message}`)
}

describe('lint: import boundaries', { timeout: 60_000 }, () => {
  it.each([
    ['enclave-client/src/fixture.ts', "import { bindingDigest } from '../../src/broker/binding.js'\nexport const f = bindingDigest\n"],
    ['enclave-client/src/fixture.ts', "import { KeywardError } from '../../src/errors.js'\nexport const f = KeywardError\n"],
    ['src/verifiers/nitro/fixture.ts', "import { createApp } from '../../broker/app.js'\nexport const f = createApp\n"],
    ['src/verifiers/fixture.ts', "import type { Store } from '../store/types.js'\nexport type F = Store\n"],
    ['src/verifiers/tpm/fixture.ts', "import { compilePolicy } from '../../policy/engine.js'\nexport const f = compilePolicy\n"],
    ['src/policy/fixture.ts', "import { parseEventLog } from '../verifiers/tpm/eventlog.js'\nexport const f = parseEventLog\n"],
    ['src/protocol/fixture.ts', "import { createApp } from '../broker/app.js'\nexport const f = createApp\n"],
    ['src/broker/fixture.ts', "import type { Context } from 'hono'\nexport type F = Context\n"],
  ])('%s: %j is reported by no-restricted-imports', async (path, code) => {
    expect(await rulesFor(path, code)).toEqual(['no-restricted-imports'])
  })

  it.each([
    ['enclave-client/src/fixture.ts', "import { toHex } from '../../src/util/bytes.js'\nimport { f as g } from '../../src/protocol/binding.js'\nexport const f = [toHex, g]\n"],
    ['src/verifiers/fixture.ts', "import { toHex } from '../util/bytes.js'\nexport const f = toHex\n"],
    ['src/policy/fixture.ts', "import { toHex } from '../util/bytes.js'\nexport const f = toHex\n"],
    ['src/protocol/fixture.ts', "import { toHex } from '../util/bytes.js'\nexport const f = toHex\n"],
    ['src/broker/routes/fixture.ts', "import { Hono } from 'hono'\nexport const f = Hono\n"],
  ])('%s: %j is allowed', async (path, code) => {
    expect(await rulesFor(path, code)).toEqual([])
  })

  // Import cycles are dpdm's (scripts/lint.sh): the repository's dpdm.config.json, run over a tree
  // that holds one cycle, exits non-zero and names it; a type-only cycle counts too.
  const dir = mkdtempSync(join(tmpdir(), 'keyward-cycles-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const dpdm = (): { status: number | null; out: string } => {
    const r = spawnSync(join(REPO_ROOT, 'node_modules/.bin/dpdm'), [], { cwd: dir, encoding: 'utf8' })
    return { status: r.status, out: r.stdout + r.stderr }
  }

  it.each([
    ['a value cycle', "import { b } from './b.js'\nexport const a = (): number => b()\n", "import { a } from './a.js'\nexport const b = (): number => a()\n"],
    ['a type-only cycle', "import type { B } from './b.js'\nexport type A = { b?: B }\n", "import type { A } from './a.js'\nexport type B = { a?: A }\n"],
  ])("%s is reported by dpdm with the repository's config", (_name, a, b) => {
    mkdirSync(join(dir, 'src/x'), { recursive: true })
    // dpdm resolves ESM imports (./b.js -> ./b.ts) as TypeScript does, through tsconfig.json.
    for (const f of ['dpdm.config.json', 'tsconfig.json']) copyFileSync(join(REPO_ROOT, f), join(dir, f))
    writeFileSync(join(dir, 'src/x/a.ts'), a)
    writeFileSync(join(dir, 'src/x/b.ts'), b)
    expect(dpdm()).toMatchObject({ status: 1, out: expect.stringMatching(/src\/x\/(a\.ts -> src\/x\/b|b\.ts -> src\/x\/a)\.ts/) })
    writeFileSync(join(dir, 'src/x/b.ts'), 'export const b = (): number => 1\nexport type B = number\n')
    expect(dpdm().status).toBe(0)
  })
})
