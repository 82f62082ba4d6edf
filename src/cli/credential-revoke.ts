// `keyward credential revoke [admin|relying-party] NAME [--data-dir DIR] [--config FILE]`:
// revokes a credential in the store; every broker refuses it from its next request on (nothing
// caches credentials). The kind defaults to admin. Exit 0 revoked, 1 unknown (ERR_NOT_FOUND), 2 invalid arguments.
import { parseArgs } from 'node:util'
import { KeywardError } from '../errors.js'
import { loadConfig } from '../broker/config.js'
import { createLogger } from '../broker/logger.js'
import { buildDeps } from '../broker/server.js'
import { revokeCredential } from '../broker/admin-services.js'

export async function credentialRevokeCommand(argv: string[]): Promise<number> {
  let values: { 'data-dir'?: string | undefined; config?: string | undefined }
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, config: { type: 'string' } }, allowPositionals: true, strict: true }))
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', e instanceof Error ? e.message : String(e))
  }
  const [first, second] = positionals
  const kind = second === undefined ? 'admin' : first
  const name = second ?? first
  if ((kind !== 'admin' && kind !== 'relying-party') || !name || positionals.length > 2) {
    throw new KeywardError('ERR_BAD_REQUEST', 'credential revoke [admin|relying-party] NAME')
  }
  const config = loadConfig({ ...(values.config ? { file: values.config } : {}), env: process.env, overrides: { dataDir: values['data-dir'] } })
  const deps = await buildDeps(config, createLogger('warn', undefined))
  try {
    await revokeCredential(deps, kind, name, `cli:${process.env.USER ?? 'unknown'}`)
  } finally {
    await deps.store.close()
  }
  process.stdout.write(`revoked ${kind} credential ${name}\n`)
  return 0
}
