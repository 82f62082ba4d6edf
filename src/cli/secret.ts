// `keyward secret put|list|rm`: secrets in the store (sealed under the KEK), as the admin API does.
import { readFileSync } from 'node:fs'
import * as A from '../broker/admin-services.js'
import { UsageError, positionals, str, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'
import { isKbsSecretName } from '../broker/kbs/resource.js'

const PUT = 'usage: keyward secret put NAME (--value-file FILE | --text TEXT | --vault-kv MOUNT/PATH[@VERSION][#FIELD])\n       NAME kbs:///REPOSITORY/TYPE/TAG is the Trustee KBS resource /kbs/v0/resource/REPOSITORY/TYPE/TAG (docs/trustee.md)'

const secret: CommandGroup = {
  usage: `usage: keyward secret put NAME (--value-file FILE | --text TEXT | --vault-kv MOUNT/PATH[@VERSION][#FIELD])\n       keyward secret list | secret rm NAME\n${STORE_USAGE}`,
  commands: {
    put: {
      usage: PUT,
      options: { ...STORE_OPTIONS, 'value-file': { type: 'string' }, text: { type: 'string' }, 'vault-kv': { type: 'string' } },
      run: (args) => {
        const [name] = positionals(args, ['NAME'], PUT)
        // A kbs: name no KBS path maps to would be stored but never served.
        if (name!.startsWith('kbs:') && !isKbsSecretName(name!)) throw new UsageError(`${name} is not kbs:///REPOSITORY/TYPE/TAG (each 1–128 of [A-Za-z0-9._-], not starting with ".")`, PUT)
        const { values } = args
        let req: Parameters<typeof A.putSecret>[2]
        if (typeof values['value-file'] === 'string') req = { value: readFileSync(values['value-file']).toString('base64') }
        else if (typeof values.text === 'string') req = { text: values.text }
        else if (typeof values['vault-kv'] === 'string') req = { vaultKv: parseVaultKv(values['vault-kv']) }
        else throw new UsageError('give --value-file, --text or --vault-kv', PUT)
        return withDeps(values, async (deps) => (out({ name, version: await A.putSecret(deps, name!, req, who()) }), 0))
      },
    },
    list: {
      usage: 'usage: keyward secret list',
      options: STORE_OPTIONS,
      run: (args) => {
        positionals(args, [], 'usage: keyward secret list')
        return withDeps(args.values, async (deps) => (out({ secrets: await deps.store.listSecrets() }), 0))
      },
    },
    rm: {
      usage: 'usage: keyward secret rm NAME',
      options: STORE_OPTIONS,
      run: (args) => {
        const [name] = positionals(args, ['NAME'], 'usage: keyward secret rm NAME')
        return withDeps(args.values, async (deps) => (await A.removeSecret(deps, name!, who()), out(`removed ${name}`), 0))
      },
    },
  },
}
export default secret

function parseVaultKv(s: string | undefined): { mount: string; path: string; version?: number; field?: string } {
  const m = /^([^/]+)\/([^@#]+)(?:@(\d+))?(?:#(.+))?$/.exec(str(s) ?? '')
  if (!m) throw new UsageError('--vault-kv MOUNT/PATH[@VERSION][#FIELD]')
  return { mount: m[1]!, path: m[2]!, ...(m[3] ? { version: Number(m[3]) } : {}), ...(m[4] ? { field: m[4] } : {}) }
}
