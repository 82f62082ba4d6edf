// keyward-client answers --help for every command with its usage and exit 0, before anything
// else runs (no TEE, no broker needed); `--help` after `--` belongs to the child of `run`.
import { describe, it, expect } from 'vitest'
import { main } from '../../enclave-client/src/cli/main.js'
import { COMMANDS } from '../../enclave-client/src/cli/args.js'

async function runMain(argv: string[]): Promise<{ code: number; err: string }> {
  const lines: string[] = []
  const code = await main(argv, { stdout: () => undefined, stderr: (l) => lines.push(l) })
  return { code, err: lines.join('\n') }
}

describe('keyward-client --help', () => {
  it.each(COMMANDS.map((c) => [c]))('%s --help prints the usage and exits 0', async (command) => {
    for (const flag of ['--help', '-h']) {
      const r = await runMain([command, flag])
      expect(r.code).toBe(0)
      expect(r.err).toMatch(/^usage: keyward-client/)
      expect(r.err).not.toMatch(/ERR_/)
    }
  })

  it('--help after -- is the child command\'s argument, not a request for help', async () => {
    // No broker: parsing succeeds, so the failure is the missing broker, not the usage.
    const r = await runMain(['run', '--secret', 'x=env:X', '--', 'cmd', '--help'])
    expect(r.code).not.toBe(0)
    expect(r.err).not.toMatch(/^usage: keyward-client/)
  })

  it('an unknown option is a usage error: exit 2 with the usage', async () => {
    const r = await runMain(['get', 'x', '--no-such-flag'])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/usage: keyward-client/)
  })
})
