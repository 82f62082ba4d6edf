// `keyward keys rotate [--kek]`: a new token signing key, or a new key-encryption key.
import * as A from '../broker/admin-services.js'
import { positionals, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, withDeps } from './store-deps.js'

const ROTATE = 'usage: keyward keys rotate [--kek]'

const keys: CommandGroup = {
  usage: `${ROTATE}\n${STORE_USAGE}`,
  commands: {
    rotate: {
      usage: ROTATE,
      options: { ...STORE_OPTIONS, kek: { type: 'boolean' } },
      run: (args) => {
        positionals(args, [], ROTATE)
        return withDeps(args.values, async (deps) => (out(args.values.kek === true ? await A.rotateKek(deps) : { kid: await A.rotateSigningKey(deps) }), 0))
      },
    },
  },
}
export default keys
