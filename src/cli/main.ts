// The `keyward` command: a registry of command groups, one module each under src/cli/, loaded
// only when used (so `keyward verify` starts fast). Adding a group is one line in GROUPS.
// Administrative groups work directly on the store of a data directory (or DATABASE_URL) through
// the same services as the admin API, so they also work while brokers are running.
import { KeywardError, isKeywardError } from '../errors.js'
import { UsageError, isHelp, runEntry, type CommandEntry } from './args.js'

export const GROUPS: Record<string, () => Promise<{ default: CommandEntry }>> = {
  serve: () => import('./serve.js'),
  secret: () => import('./secret.js'),
  policy: () => import('./policy.js'),
  reference: () => import('./reference.js'),
  ak: () => import('./ak.js'),
  enrol: () => import('./enrol.js'),
  ek: () => import('./ek.js'),
  audit: () => import('./audit.js'),
  keys: () => import('./keys.js'),
  credential: () => import('./credential.js'),
  workloads: () => import('./workloads.js'),
  backup: () => import('./backup.js'),
  restore: async () => ({ default: (await import('./backup.js')).restore }),
  verify: () => import('./verify.js'),
  ear: () => import('./ear.js'),
}

/** The overview: every group's own usage, so it cannot drift from what the groups accept. */
async function overview(): Promise<string> {
  const parts = await Promise.all(Object.values(GROUPS).map(async (load) => (await load()).default.usage.split('\n').filter((l) => !l.startsWith('Common options')).map((l) => l.replace(/^usage: |^ {7}/, '  '))))
  return `keyward — attestation-gated key broker\n\n${parts.flat().join('\n')}\n\nkeyward COMMAND --help shows a command's usage.\nCommon options: --data-dir DIR (default ./.data), --config FILE; DATABASE_URL=postgres://… selects PostgreSQL.\n`
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (isHelp(name)) return process.stdout.write(await overview()), 0
  const load = name === undefined ? undefined : GROUPS[name]
  if (!load) throw new UsageError(name === undefined ? 'missing command' : `unknown command ${name}`, await overview())
  return runEntry((await load()).default, rest)
}

/** Runs one command line; returns its exit code (-1: keep running, as `serve` does). */
export async function run(argv: string[]): Promise<number> {
  try {
    return await main(argv)
  } catch (e) {
    const err = isKeywardError(e) ? e : new KeywardError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
    process.stderr.write(`keyward: ${err.code}: ${err.message}\n`)
    // 2: the command line or its input was not accepted; 1: the operation failed.
    return err.code === 'ERR_USAGE' || err.code === 'ERR_BAD_REQUEST' ? 2 : 1
  }
}

export async function runCli(argv: string[]): Promise<void> {
  const code = await run(argv)
  if (code >= 0) process.exitCode = code
}
