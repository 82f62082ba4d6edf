// `keyward workloads`: what each workload last proved and was granted.
import { workloadsView } from '../broker/admin-services.js'
import { positionals, type Command } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, withDeps } from './store-deps.js'

const USAGE = `usage: keyward workloads\n${STORE_USAGE}`

const workloads: Command = {
  usage: USAGE,
  options: STORE_OPTIONS,
  run: (args) => {
    positionals(args, [], USAGE)
    return withDeps(args.values, async (deps) => (out({ workloads: await workloadsView(deps) }), 0))
  },
}
export default workloads
