// `keyward credential create admin|relying-party NAME`: prints the bearer token once.
import * as A from '../broker/admin-services.js'
import { hashCredential } from '../sealing/credentials.js'
import { UsageError, positionals, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'

const REVOKE = 'usage: keyward credential revoke [admin|relying-party] NAME   (refused by every broker from its next request; kind defaults to admin)'
const CREATE = 'usage: keyward credential create admin|relying-party NAME     (prints the bearer token once)'

const credential: CommandGroup = {
  usage: `${CREATE}\n${REVOKE.replace('usage: ', '       ')}\n${STORE_USAGE}`,
  commands: {
    create: {
      usage: CREATE,
      options: STORE_OPTIONS,
      run: (args) => {
        const [kind, name] = positionals(args, ['KIND', 'NAME'], CREATE)
        if (kind !== 'admin' && kind !== 'relying-party') throw new UsageError(`unknown credential kind ${kind}`, CREATE)
        return withDeps(args.values, async (deps) => (out(await A.createCredential(deps, kind, name!, hashCredential)), 0))
      },
    },
    revoke: {
      usage: REVOKE,
      options: STORE_OPTIONS,
      run: (args) => {
        if (args.positionals.length < 1 || args.positionals.length > 2) throw new UsageError('credential revoke needs NAME', REVOKE)
        const [first, second] = args.positionals
        const kind = second === undefined ? 'admin' : first
        const name = second ?? first!
        if (kind !== 'admin' && kind !== 'relying-party') throw new UsageError(`unknown credential kind ${kind}`, REVOKE)
        return withDeps(args.values, async (deps) => (await A.revokeCredential(deps, kind, name, who()), out(`revoked ${kind} credential ${name}`), 0))
      },
    },
  },
}
export default credential
