// `keyward policy apply|list|test`: policies in the store, and the offline evaluation.
import { readFileSync } from 'node:fs'
import * as A from '../broker/admin-services.js'
import { positionals, type CommandGroup } from './args.js'
import { policyTest } from './policy-test.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'

const policy: CommandGroup = {
  usage: `usage: keyward policy apply FILE | policy list\n       ${policyTest.usage.replace('usage: ', '')}\n${STORE_USAGE}`,
  commands: {
    apply: {
      usage: 'usage: keyward policy apply FILE',
      options: STORE_OPTIONS,
      run: (args) => {
        const [file] = positionals(args, ['FILE'], 'usage: keyward policy apply FILE')
        return withDeps(args.values, async (deps) => (out(await A.applyPolicy(deps, readFileSync(file!, 'utf8'), who())), 0))
      },
    },
    list: {
      usage: 'usage: keyward policy list',
      options: STORE_OPTIONS,
      run: (args) => {
        positionals(args, [], 'usage: keyward policy list')
        return withDeps(args.values, async (deps) => (out({ policies: (await deps.store.getActivePolicies()).map((p) => ({ name: p.name, version: p.version, sha256: p.sha256 })) }), 0))
      },
    },
    test: policyTest,
  },
}
export default policy
