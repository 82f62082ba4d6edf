// `keyward audit tail|verify`: the hash-chained audit log.
import * as A from '../broker/admin-services.js'
import { UsageError, positionals, str, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, withDeps } from './store-deps.js'

const TAIL = 'usage: keyward audit tail [-n N]'

const audit: CommandGroup = {
  usage: `usage: keyward audit tail [-n N] | audit verify\n${STORE_USAGE}`,
  commands: {
    tail: {
      usage: TAIL,
      options: { ...STORE_OPTIONS, n: { type: 'string', short: 'n' } },
      run: (args) => {
        positionals(args, [], TAIL)
        const n = Number(str(args.values.n) ?? 20)
        if (!Number.isInteger(n) || n < 0) throw new UsageError('-n must be a whole number', TAIL)
        return withDeps(args.values, async (deps) => {
          for (const row of (await A.allAuditRows(deps)).slice(-n)) out(JSON.stringify(row))
          return 0
        })
      },
    },
    verify: {
      usage: 'usage: keyward audit verify',
      options: STORE_OPTIONS,
      run: (args) => {
        positionals(args, [], 'usage: keyward audit verify')
        return withDeps(args.values, async (deps) => {
          const r = await A.verifyAudit(deps)
          out(r)
          return r.ok ? 0 : 1
        })
      },
    },
  },
}
export default audit
