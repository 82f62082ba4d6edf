// `keyward enrol`: TPM enrolments (docs/tpm-enrolment.md). A registered AK waits, pending, until an
// admin approves it; or the workload brings a single-use token issued here for its name.
import * as E from '../broker/enrolment.js'
import { UsageError, positionals, str, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'

const LIST = 'usage: keyward enrol list                      pending enrolments (AK, requested name, EK)'
const APPROVE = 'usage: keyward enrol approve AK_NAME'
const REJECT = 'usage: keyward enrol reject AK_NAME'
const TOKEN = `usage: keyward enrol token --workload NAME [--ttl SECONDS]   a single-use enrolment token, printed once (default ttl ${E.DEFAULT_TOKEN_TTL_S})`

const decide = (decision: 'approve' | 'reject', usage: string) => ({
  usage,
  options: STORE_OPTIONS,
  run: (args: Parameters<typeof positionals>[0]) => {
    const [ak] = positionals(args, ['AK_NAME'], usage)
    return withDeps(args.values, async (deps) => (out(await E.decideEnrolment(deps, ak!, decision, who())), 0))
  },
})

const enrol: CommandGroup = {
  usage: [LIST, APPROVE, REJECT, TOKEN].map((u, i) => (i === 0 ? u : u.replace('usage: ', '       '))).join('\n') + `\n${STORE_USAGE}`,
  commands: {
    list: {
      usage: LIST,
      options: STORE_OPTIONS,
      run: (args) => {
        positionals(args, [], LIST)
        return withDeps(args.values, async (deps) => (out({ enrolments: await E.listPendingEnrolments(deps) }), 0))
      },
    },
    approve: decide('approve', APPROVE),
    reject: decide('reject', REJECT),
    token: {
      usage: TOKEN,
      options: { ...STORE_OPTIONS, workload: { type: 'string' }, ttl: { type: 'string' } },
      run: (args) => {
        positionals(args, [], TOKEN)
        const workload = str(args.values.workload)
        if (!workload) throw new UsageError('enrol token needs --workload NAME', TOKEN)
        const ttlText = str(args.values.ttl)
        const ttl = ttlText === undefined ? E.DEFAULT_TOKEN_TTL_S : Number(ttlText)
        if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError('--ttl takes a whole number of seconds', TOKEN)
        E.checkEnrolledName(workload)
        return withDeps(args.values, async (deps) => (out(await E.issueEnrolmentToken(deps, workload, ttl, who())), 0))
      },
    },
  },
}
export default enrol
