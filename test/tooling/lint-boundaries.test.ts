// The import boundaries of docs/architecture.md are enforced by ESLint (eslint.config.js): a
// deliberate violation, linted as if it were a file at that place in the tree, is reported with
// the rule's name; the allowed imports are not. Only the fixtures are linted (fast).
import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
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

  const dir = mkdtempSync(join(REPO_ROOT, 'src', '.lint-fixture-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('an import cycle is reported by import-x/no-cycle', async () => {
    writeFileSync(join(dir, 'a.ts'), "import { b } from './b.js'\nexport const a = (): number => b()\n")
    writeFileSync(join(dir, 'b.ts'), "import { a } from './a.js'\nexport const b = (): number => a()\n")
    const [r] = await eslint.lintFiles([relative(REPO_ROOT, join(dir, 'a.ts'))])
    expect(r!.messages.map((m) => m.ruleId)).toEqual(['import-x/no-cycle'])
  })
})
