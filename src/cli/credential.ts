// `keyward credential create admin|relying-party NAME`: prints the bearer token once.
import * as A from '../broker/admin-services.js'
import { hashCredential } from '../sealing/credentials.js'
import { UsageError, positionals, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, withDeps } from './store-deps.js'

const CREATE = 'usage: keyward credential create admin|relying-party NAME     (prints the bearer token once)'

const credential: CommandGroup = {
  usage: `${CREATE}\n${STORE_USAGE}`,
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
  },
}
export default credential
