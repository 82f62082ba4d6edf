// `keyward ak pin|list|revoke`: TPM attestation keys registered to workloads.
import { readFileSync } from 'node:fs'
import * as A from '../broker/admin-services.js'
import { revokeAk } from '../broker/enrolment.js'
import { UsageError, positionals, str, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'

const PIN = 'usage: keyward ak pin --workload W AK_TPM2B_PUBLIC_FILE'
const REVOKE = 'usage: keyward ak revoke NAME [--deny-ek]   revokes the AK, its live attestations and Vault tokens; --deny-ek also denies its EK (every AK of that TPM) until `keyward ek undeny`'

const ak: CommandGroup = {
  usage: `${PIN}\n       keyward ak list | ak revoke NAME [--deny-ek]\n${STORE_USAGE}`,
  commands: {
    pin: {
      usage: PIN,
      options: { ...STORE_OPTIONS, workload: { type: 'string' } },
      run: (args) => {
        const [file] = positionals(args, ['AK_TPM2B_PUBLIC_FILE'], PIN)
        const workload = str(args.values.workload)
        if (!workload) throw new UsageError('ak pin needs --workload', PIN)
        return withDeps(args.values, async (deps) => (out(await A.pinAk(deps, workload, new Uint8Array(readFileSync(file!)), who())), 0))
      },
    },
    list: {
      usage: 'usage: keyward ak list',
      options: STORE_OPTIONS,
      run: (args) => {
        positionals(args, [], 'usage: keyward ak list')
        return withDeps(args.values, async (deps) => (out({ aks: await deps.store.listAks() }), 0))
      },
    },
    revoke: {
      usage: REVOKE,
      options: { ...STORE_OPTIONS, 'deny-ek': { type: 'boolean' } },
      run: (args) => {
        const [name] = positionals(args, ['NAME'], REVOKE)
        return withDeps(args.values, async (deps) => (out(await revokeAk(deps, name!, { denyEk: args.values['deny-ek'] === true }, who())), 0))
      },
    },
  },
}
export default ak
