// `keyward workload release NAME`: clears the quarantine containment put on a drifted workload.
import { releaseQuarantine } from '../broker/containment.js'
import { positionals, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'

const RELEASE = 'usage: keyward workload release NAME   (clears a quarantine: the workload may attest and receive releases again)'

const workload: CommandGroup = {
  usage: `${RELEASE}\n${STORE_USAGE}`,
  commands: {
    release: {
      usage: RELEASE,
      options: STORE_OPTIONS,
      run: (args) => {
        const [name] = positionals(args, ['NAME'], RELEASE)
        return withDeps(args.values, async (deps) => (await releaseQuarantine(deps, name!, who()), out(`released workload ${name} from quarantine`), 0))
      },
    },
  },
}
export default workload
