// Every `keyward` command and subcommand (in-process through the dispatcher, and a few through the
// real bin): --help prints its usage on stdout and exits 0; an unknown flag is a usage error (ERR_USAGE on stderr, exit 2). The table comes
// from the dispatcher's registry, so a group added there is covered here without a new row.
import { describe, it, expect } from 'vitest'
import { GROUPS } from '../../src/cli/main.js'
import type { CommandEntry } from '../../src/cli/args.js'
import { runBin } from '../enclave-client/helpers/proc.js'
import { runKeywardInProcess } from '../helpers/cli.js'

async function commandLines(): Promise<string[][]> {
  const lines: string[][] = []
  for (const [name, load] of Object.entries(GROUPS)) {
    const entry: CommandEntry = (await load()).default
    lines.push([name])
    if ('commands' in entry) for (const sub of Object.keys(entry.commands)) lines.push([name, ...(entry.argvOf?.(sub) ?? [sub])])
  }
  return lines
}

const lines = await commandLines()

describe('keyward CLI usage', { timeout: 120_000 }, () => {
  it('the table covers every group and subcommand of today', () => {
    const names = lines.map((l) => l.join(' '))
    for (const n of ['serve', 'secret put', 'secret list', 'secret rm', 'policy apply', 'policy list', 'policy test', 'reference add', 'reference list', 'reference revoke', 'reference import', 'ak pin', 'ak list', 'ak revoke', 'audit tail', 'audit verify', 'keys rotate', 'credential create', 'credential revoke', 'enrol list', 'enrol approve', 'enrol reject', 'enrol token', 'ek allow', 'ek list', 'ek remove', 'ek undeny', 'workloads', 'workload release', 'backup', 'restore', 'verify --tee tpm', 'verify --tee nitro', 'verify --tee sev-snp']) {
      expect(names).toContain(n)
    }
  })

  it('keyward --help prints every group', async () => {
    const r = await runBin('keyward', ['--help'])
    expect(r.code, r.stderr).toBe(0)
    for (const name of Object.keys(GROUPS)) expect(r.stdout).toContain(`keyward ${name}`)
  })

  it('keyward with no command or an unknown one: ERR_USAGE, exit 2', async () => {
    for (const argv of [[], ['no-such-command']]) {
      const r = await runBin('keyward', argv)
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/^keyward: ERR_USAGE: /)
    }
  })

  // The whole table in-process, through the same dispatcher the bin calls (bin/keyward.js →
  // runCli → run): a process per row costs seconds each on a loaded machine.
  it.each(lines)('keyward %s … --help: usage on stdout, exit 0', async (...argv) => {
    const r = await runKeywardInProcess([...argv, '--help'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^usage: keyward ${argv.join(' ')}`))
    expect(r.stderr).toBe('')
  })

  it.each(lines)('keyward %s … --no-such-flag: ERR_USAGE on stderr, exit 2', async (...argv) => {
    const r = await runKeywardInProcess([...argv, '--no-such-flag'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^keyward: ERR_USAGE: /)
    expect(r.stderr).toContain('usage: keyward')
    expect(r.stdout).toBe('')
  })

  it.each([
    [['verify', '--help'], 0, /^usage: keyward verify --tee/],
    [['verify', '--tee', 'tpm', '--help'], 0, /^usage: keyward verify --tee tpm --ak/],
    [['secret', 'put', '--no-such-flag'], 2, /^$/],
  ])('the real bin: keyward %j exits %i', async (argv, code, stdout) => {
    const r = await runBin('keyward', argv)
    expect(r.code, r.stderr).toBe(code)
    expect(r.stdout).toMatch(stdout)
    if (code === 2) expect(r.stderr).toMatch(/^keyward: ERR_USAGE: /)
  })
})
