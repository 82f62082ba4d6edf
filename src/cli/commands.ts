// The `keyward` subcommands besides `verify`, loaded only when used (so `keyward verify` starts
// fast). Administrative subcommands work directly on the store of a data directory (or
// DATABASE_URL) through the same services as the admin API, so they also work while brokers are
// running: every replica reads policies, secrets and references from the store.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { KeywardError } from '../errors.js'
import { loadConfig, type BrokerConfig } from '../broker/config.js'
import { createLogger } from '../broker/logger.js'
import { buildDeps, runServe } from '../broker/server.js'
import type { BrokerDeps } from '../broker/deps.js'
import * as A from '../broker/admin-services.js'
import { workloadsView } from '../broker/admin.js'
import { policyTestCommand } from './policy-test.js'
import { hashCredential } from '../sealing/credentials.js'
import { TEES } from '../verifiers/types.js'
import { importNitroMeasurements, importSnpMeasurement, importTpmEventLog, importTpmPcrs, type ImportOptions } from '../policy/reference-values.js'
import type { ReferenceValueRow } from '../store/types.js'

/** Reference values from the files each platform's tools write (docs/policy.md §Reference values). */
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
      throw new KeywardError('ERR_BAD_REQUEST', '--format nitro-cli | snp-measurement | tpm-pcrs | tpm-eventlog')
  }
}

type Flags = Record<string, string | boolean | undefined>
type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>

function parse(argv: string[], options: OptionSpec): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({
      args: argv,
      options: { 'data-dir': { type: 'string' }, config: { type: 'string' }, ...options },
      allowPositionals: true,
      strict: true,
    })
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals }
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', e instanceof Error ? e.message : String(e))
  }
}

const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' ? v : undefined)

function configFrom(values: Flags, extra: Record<string, unknown> = {}): BrokerConfig {
  return loadConfig({
    ...(typeof values.config === 'string' ? { file: values.config } : {}),
    env: process.env,
    overrides: { dataDir: values['data-dir'], ...extra },
  })
}

async function withDeps<T>(values: Flags, fn: (deps: BrokerDeps) => Promise<T>): Promise<T> {
  const config = configFrom(values)
  const deps = await buildDeps(config, createLogger('warn', undefined))
  try {
    return await fn(deps)
  } finally {
    await deps.store.close()
  }
}

const out = (o: unknown) => process.stdout.write((typeof o === 'string' ? o : JSON.stringify(o, null, 2)) + '\n')
const who = () => `cli:${process.env.USER ?? 'unknown'}`

export async function runAdminCommand(argv: string[], USAGE: string): Promise<number> {
  const [cmd, sub, ...rest] = argv
  switch (cmd) {
    case 'serve': {
      const { values } = parse(argv.slice(1), { port: { type: 'string' }, host: { type: 'string' }, workers: { type: 'string' } })
      const config = configFrom(values, { port: values.port, host: values.host, workers: values.workers })
      await runServe(config, createLogger(config.logLevel))
      return -1 // keep running
    }
    case 'secret': {
      const { values, positionals } = parse(rest, { 'value-file': { type: 'string' }, text: { type: 'string' }, 'vault-kv': { type: 'string' } })
      return withDeps(values, async (deps) => {
        if (sub === 'list') return out({ secrets: await deps.store.listSecrets() }), 0
        const name = positionals[0]
        if (!name) throw new KeywardError('ERR_BAD_REQUEST', `secret ${sub} needs a NAME`)
        if (sub === 'rm') return await A.removeSecret(deps, name, who()), out(`removed ${name}`), 0
        if (sub !== 'put') throw new KeywardError('ERR_BAD_REQUEST', 'secret put|list|rm')
        let req: Parameters<typeof A.putSecret>[2]
        if (typeof values['value-file'] === 'string') req = { value: readFileSync(values['value-file']).toString('base64') }
        else if (typeof values.text === 'string') req = { text: values.text }
        else if (typeof values['vault-kv'] === 'string') req = { vaultKv: parseVaultKv(values['vault-kv']) }
        else throw new KeywardError('ERR_BAD_REQUEST', 'give --value-file, --text or --vault-kv')
        const version = await A.putSecret(deps, name, req, who())
        return out({ name, version }), 0
      })
    }
    case 'policy': {
      if (sub === 'test') return policyTestCommand(rest)
      const { values, positionals } = parse(rest, {})
      return withDeps(values, async (deps) => {
        if (sub === 'list') return out({ policies: (await deps.store.getActivePolicies()).map((p) => ({ name: p.name, version: p.version, sha256: p.sha256 })) }), 0
        if (sub !== 'apply' || !positionals[0]) throw new KeywardError('ERR_BAD_REQUEST', 'policy apply FILE | policy list | policy test …')
        return out(await A.applyPolicy(deps, readFileSync(positionals[0], 'utf8'), who())), 0
      })
    }
    case 'reference': {
      const { values, positionals } = parse(rest, { set: { type: 'string' }, tee: { type: 'string' }, value: { type: 'string' }, source: { type: 'string' }, expires: { type: 'string' }, note: { type: 'string' }, format: { type: 'string' }, indices: { type: 'string' } })
      return withDeps(values, async (deps) => {
        if (sub === 'import') {
          const file = positionals[0]
          if (!file) throw new KeywardError('ERR_BAD_REQUEST', 'reference import --format F FILE')
          const o = { createdBy: who(), now: deps.clock(), source: str(values.source) ?? file, expiresAt: str(values.expires) ? Date.parse(str(values.expires)!) : null, note: str(values.note) ?? null }
          const indices = str(values.indices)?.split(',').map(Number)
          const rows = importReferenceFile(str(values.format), readFileSync(file), o, { set: str(values.set), indices })
          return out({ imported: await A.storeReferenceValues(deps, rows, who()), sets: [...new Set(rows.map((r) => r.set))] }), 0
        }
        if (sub === 'list') return out({ referenceValues: await deps.store.listReferenceValues(str(values.set)) }), 0
        if (sub === 'revoke' && positionals[0]) return out(await A.revokeReferenceValue(deps, positionals[0], who())), 0
        if (sub !== 'add') throw new KeywardError('ERR_BAD_REQUEST', 'reference add|list|revoke')
        const set = str(values.set), tee = str(values.tee), value = str(values.value), source = str(values.source)
        if (!set || !tee || !value || !source || !(TEES as readonly string[]).includes(tee)) {
          throw new KeywardError('ERR_BAD_REQUEST', 'reference add needs --set, --tee (tpm|nitro|sev-snp), --value and --source')
        }
        const id = await A.addReferenceValue(deps, { set, tee: tee as (typeof TEES)[number], value, source, ...(str(values.expires) ? { expiresAt: str(values.expires)! } : {}), ...(str(values.note) ? { note: str(values.note)! } : {}) }, who())
        return out({ id }), 0
      })
    }
    case 'ak': {
      const { values, positionals } = parse(rest, { workload: { type: 'string' } })
      return withDeps(values, async (deps) => {
        if (sub === 'list') return out({ aks: await deps.store.listAks() }), 0
        if (sub === 'revoke' && positionals[0]) {
          if (!(await deps.store.revokeAk(positionals[0], deps.clock().getTime()))) throw new KeywardError('ERR_NOT_FOUND', 'no such AK')
          await deps.audit({ type: 'ak.revoke', subject: positionals[0], decision: 'info', detail: { by: who() } })
          return out(`revoked ${positionals[0]}`), 0
        }
        const workload = str(values.workload)
        if (sub !== 'pin' || !positionals[0] || !workload) throw new KeywardError('ERR_BAD_REQUEST', 'ak pin --workload W FILE | ak list | ak revoke NAME')
        return out(await A.pinAk(deps, workload, new Uint8Array(readFileSync(positionals[0])), who())), 0
      })
    }
    case 'audit': {
      const { values } = parse(rest, { n: { type: 'string', short: 'n' } })
      return withDeps(values, async (deps) => {
        if (sub === 'verify') {
          const r = await A.verifyAudit(deps)
          out(r)
          return r.ok ? 0 : 1
        }
        if (sub !== 'tail') throw new KeywardError('ERR_BAD_REQUEST', 'audit tail|verify')
        const n = Number(values.n ?? 20)
        const all = await A.allAuditRows(deps)
        for (const row of all.slice(-n)) out(JSON.stringify(row))
        return 0
      })
    }
    case 'keys': {
      const { values } = parse(rest, { kek: { type: 'boolean' } })
      if (sub !== 'rotate') throw new KeywardError('ERR_BAD_REQUEST', 'keys rotate [--kek]')
      return withDeps(values, async (deps) => (out(values.kek ? await A.rotateKek(deps) : { kid: await A.rotateSigningKey(deps) }), 0))
    }
    case 'credential': {
      const { values, positionals } = parse(rest, {})
      const kind = positionals[0]
      if (sub !== 'create' || (kind !== 'admin' && kind !== 'relying-party') || !positionals[1]) {
        throw new KeywardError('ERR_BAD_REQUEST', 'credential create admin|relying-party NAME')
      }
      return withDeps(values, async (deps) => (out(await A.createCredential(deps, kind, positionals[1]!, hashCredential)), 0))
    }
    case 'backup': return (await import('./backup.js')).backupCommand(argv.slice(1))
    case 'restore': return (await import('./backup.js')).restoreCommand(argv.slice(1))
    case 'workloads': {
      const { values } = parse(argv.slice(1), {})
      return withDeps(values, async (deps) => (out({ workloads: await workloadsView(deps) }), 0))
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out(USAGE)
      return cmd === undefined ? 2 : 0
    default:
      throw new KeywardError('ERR_BAD_REQUEST', `unknown command ${cmd}\n${USAGE}`)
  }
}

function parseVaultKv(s: string): { mount: string; path: string; version?: number; field?: string } {
  const m = /^([^/]+)\/([^@#]+)(?:@(\d+))?(?:#(.+))?$/.exec(s)
  if (!m) throw new KeywardError('ERR_BAD_REQUEST', '--vault-kv MOUNT/PATH[@VERSION][#FIELD]')
  return { mount: m[1]!, path: m[2]!, ...(m[3] ? { version: Number(m[3]) } : {}), ...(m[4] ? { field: m[4] } : {}) }
}

