// `keyward reference add|list|revoke|import`: reference values (docs/policy.md §Reference values).
import { readFileSync } from 'node:fs'
import * as A from '../broker/admin-services.js'
import { KeywardError } from '../errors.js'
import { TEES, type Tee } from '../protocol/tee.js'
import { importNitroMeasurements, importSnpMeasurement, importTpmPcrs, type ImportOptions } from '../policy/reference-values.js'
import { importTpmEventLog } from './reference-import.js'
import type { ReferenceValueRow } from '../store/types.js'
import { UsageError, positionals, str, type CommandGroup } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'

const ADD = 'usage: keyward reference add --set S --tee tpm|nitro|sev-snp --value V --source TEXT [--expires ISO] [--note TEXT]'
const IMPORT = 'usage: keyward reference import --format nitro-cli|snp-measurement|tpm-pcrs|tpm-eventlog FILE [--set S] [--source TEXT] [--expires ISO] [--note TEXT] [--indices 0,7]'
const LIST = 'usage: keyward reference list [--set S]'
const REVOKE = 'usage: keyward reference revoke ID'

/** Reference values from the files each platform's tools write. */
function importReferenceFile(format: string | undefined, bytes: Buffer, o: ImportOptions, x: { set?: string | undefined; indices?: number[] | undefined }): ReferenceValueRow[] {
  const text = bytes.toString('utf8')
  switch (format) {
    case 'nitro-cli':
      return importNitroMeasurements(text, o)
    case 'snp-measurement':
      return importSnpMeasurement(text, { ...o, ...(x.set ? { set: x.set } : {}) })
    case 'tpm-pcrs':
      return importTpmPcrs(text, { ...o, ...(x.indices ? { indices: x.indices } : {}) })
    case 'tpm-eventlog':
      return importTpmEventLog(new Uint8Array(bytes), { ...o, ...(x.indices ? { indices: x.indices } : {}) })
    default:
      throw new UsageError('--format nitro-cli | snp-measurement | tpm-pcrs | tpm-eventlog', IMPORT)
  }
}

const reference: CommandGroup = {
  usage: [ADD, LIST, REVOKE, IMPORT].map((u, i) => (i === 0 ? u : u.replace('usage:', '      '))).join('\n') + `\n${STORE_USAGE}`,
  commands: {
    add: {
      usage: ADD,
      options: { ...STORE_OPTIONS, set: { type: 'string' }, tee: { type: 'string' }, value: { type: 'string' }, source: { type: 'string' }, expires: { type: 'string' }, note: { type: 'string' } },
      run: (args) => {
        positionals(args, [], ADD)
        const { values } = args
        const set = str(values.set), tee = str(values.tee), value = str(values.value), source = str(values.source)
        if (!set || !tee || !value || !source) throw new UsageError('reference add needs --set, --tee, --value and --source', ADD)
        if (!(TEES as readonly string[]).includes(tee)) throw new UsageError(`--tee must be one of ${TEES.join(', ')}`, ADD)
        const row = { set, tee: tee as Tee, value, source, ...(str(values.expires) ? { expiresAt: str(values.expires)! } : {}), ...(str(values.note) ? { note: str(values.note)! } : {}) }
        return withDeps(values, async (deps) => (out({ id: await A.addReferenceValue(deps, row, who()) }), 0))
      },
    },
    list: {
      usage: LIST,
      options: { ...STORE_OPTIONS, set: { type: 'string' } },
      run: (args) => {
        positionals(args, [], LIST)
        return withDeps(args.values, async (deps) => (out({ referenceValues: await deps.store.listReferenceValues(str(args.values.set)) }), 0))
      },
    },
    revoke: {
      usage: REVOKE,
      options: STORE_OPTIONS,
      run: (args) => {
        const [id] = positionals(args, ['ID'], REVOKE)
        return withDeps(args.values, async (deps) => (out(await A.revokeReferenceValue(deps, id!, who())), 0))
      },
    },
    import: {
      usage: IMPORT,
      options: { ...STORE_OPTIONS, format: { type: 'string' }, set: { type: 'string' }, source: { type: 'string' }, expires: { type: 'string' }, note: { type: 'string' }, indices: { type: 'string' } },
      run: (args) => {
        const [file] = positionals(args, ['FILE'], IMPORT)
        const { values } = args
        return withDeps(values, async (deps) => {
          const expires = str(values.expires)
          const o = { createdBy: who(), now: deps.clock(), source: str(values.source) ?? file!, expiresAt: expires ? Date.parse(expires) : null, note: str(values.note) ?? null }
          const indices = str(values.indices)?.split(',').map(Number)
          let bytes: Buffer
          try {
            bytes = readFileSync(file!)
          } catch (e) {
            throw new KeywardError('ERR_BAD_REQUEST', `cannot read ${file}`, { cause: e })
          }
          const rows = importReferenceFile(str(values.format), bytes, o, { set: str(values.set), indices })
          return out({ imported: await A.storeReferenceValues(deps, rows, who()), sets: [...new Set(rows.map((r) => r.set))] }), 0
        })
      },
    },
  },
}
export default reference
