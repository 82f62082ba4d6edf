// `keyward enrol`: TPM enrolments (docs/tpm-enrolment.md). A registered AK waits, pending, until an
// admin approves it; or the workload brings a single-use token issued here for its name.
import { parseArgs } from 'node:util'
import { KeywardError } from '../errors.js'
import type { BrokerDeps } from '../broker/deps.js'
import * as E from '../broker/enrolment.js'

/** What commands.ts lends a command group: the store of --data-dir/--config, the caller, stdout. */
export interface AdminCli {
  withDeps<T>(values: Record<string, string | boolean | undefined>, fn: (deps: BrokerDeps) => Promise<T>): Promise<T>
  who(): string
  out(o: unknown): void
}

export const ENROL_USAGE = `keyward enrol list                                  pending enrolments (AK, requested name, EK)
keyward enrol approve AK_NAME | enrol reject AK_NAME   decide a pending enrolment
keyward enrol token --workload NAME [--ttl SECONDS]    issue a single-use enrolment token (printed once; default ttl ${E.DEFAULT_TOKEN_TTL_S})
options: --data-dir DIR, --config FILE`

/** Parses argv with node:util parseArgs; usage errors are ERR_BAD_REQUEST (exit 2). */
export function parseCommand(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>): { values: Record<string, string | undefined> & { help?: boolean }; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals: true, strict: true })
    return { values: r.values as Record<string, string | undefined> & { help?: boolean }, positionals: r.positionals }
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', e instanceof Error ? e.message : String(e))
  }
}

export async function enrolCommand(argv: string[], cli: AdminCli): Promise<number> {
  const { values, positionals } = parseCommand(argv, { workload: { type: 'string' }, ttl: { type: 'string' } })
  const [sub, arg, ...extra] = positionals
  if (values.help) return cli.out(ENROL_USAGE), 0
  const usage = (m: string) => new KeywardError('ERR_BAD_REQUEST', `${m}\n${ENROL_USAGE}`)
  if (extra.length > 0) throw usage('too many arguments')
  switch (sub) {
    case 'list':
      return cli.withDeps(values, async (deps) => (cli.out({ enrolments: await E.listPendingEnrolments(deps) }), 0))
    case 'approve':
    case 'reject':
      if (!arg) throw usage(`enrol ${sub} needs an AK_NAME`)
      return cli.withDeps(values, async (deps) => (cli.out(await E.decideEnrolment(deps, arg, sub, cli.who())), 0))
    case 'token': {
      const workload = values.workload
      if (!workload || arg) throw usage('enrol token --workload NAME [--ttl SECONDS]')
      const ttl = values.ttl === undefined ? E.DEFAULT_TOKEN_TTL_S : Number(values.ttl)
      E.checkEnrolledName(workload)
      return cli.withDeps(values, async (deps) => (cli.out(await E.issueEnrolmentToken(deps, workload, ttl, cli.who())), 0))
    }
    default:
      throw usage(sub ? `unknown enrol command ${sub}` : 'enrol needs a command')
  }
}
