// `keyward verify --tee T ... [--json]`: offline evidence check. Each TEE's module
// (src/cli/verify-<tee>.ts) declares its flags and returns the verified claims; this file prints
// them and maps failures to exit 1 with the error code on stderr. Verifier modules are loaded
// only for the TEE asked for.
import { KeywardError, isKeywardError } from '../errors.js'
import { TEES, type Tee } from '../protocol/tee.js'
import { claimsToJson } from '../verifiers/claims-json.js'
import { UsageError, isHelp, type Command, type CommandGroup } from './args.js'
import type { TeeVerifyCommand } from './verify-command.js'
import { nitroVerify } from './verify-nitro.js'
import { sevSnpVerify } from './verify-sev-snp.js'
import { tpmVerify } from './verify-tpm.js'

function printing(cmd: TeeVerifyCommand): Command {
  return {
    usage: `${cmd.usage} [--json]`,
    options: { ...cmd.options, json: { type: 'boolean' } },
    async run(args) {
      const json = args.values.json === true
      try {
        const out = claimsToJson(await cmd.claims(args))
        process.stdout.write(json ? JSON.stringify(out, null, 2) + '\n' : formatClaims(out))
        return 0
      } catch (e) {
        if (isKeywardError(e) && e.code === 'ERR_USAGE') throw e // a command line, not a verification, failed
        const err = isKeywardError(e) ? e : new KeywardError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
        if (json) process.stdout.write(JSON.stringify({ valid: false, error: err.toJSON() }) + '\n')
        process.stderr.write(`${err.code}: ${err.message}\n`)
        return 1
      }
    },
  }
}

const COMMANDS: Record<Tee, TeeVerifyCommand> = { tpm: tpmVerify, nitro: nitroVerify, 'sev-snp': sevSnpVerify }

const verify: CommandGroup = {
  usage: [`usage: keyward verify --tee ${TEES.join('|')} FILE… [--json]   (keyward verify --tee T --help for its flags)`, ...TEES.map((t) => `       ${COMMANDS[t].usage.replace('usage: ', '')} [--json]`)].join('\n'),
  commands: Object.fromEntries(TEES.map((t) => [t, printing(COMMANDS[t])])),
  argvOf: (name) => ['--tee', name],
  select(argv) {
    const i = argv.findIndex((a) => a === '--tee' || a.startsWith('--tee='))
    if (i < 0) {
      if (argv.some(isHelp)) return { name: undefined, rest: argv }
      throw new UsageError(`--tee must be one of ${TEES.join(', ')}`, this.usage)
    }
    const a = argv[i]!
    const name = a === '--tee' ? argv[i + 1] : a.slice('--tee='.length)
    return { name: name ?? '', rest: argv.filter((_, j) => j !== i && !(a === '--tee' && j === i + 1)) }
  },
}
export default verify

function formatClaims(o: Record<string, unknown>, indent = ''): string {
  let s = indent === '' ? 'valid\n' : ''
  for (const [k, v] of Object.entries(o)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) s += `${indent}${k}:\n${formatClaims(v as Record<string, unknown>, indent + '  ')}`
    else s += `${indent}${k}: ${Array.isArray(v) ? JSON.stringify(v) : String(v)}\n`
  }
  return s
}
