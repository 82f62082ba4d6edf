// `keyward-client run … -- CMD`: attest, fetch every secret, write files and env, and only then
// start CMD with inherited stdio. Node cannot execve, so the client stays as CMD's parent,
// forwards signals, keeps re-attesting, and exits with CMD's status.
import { spawn } from 'node:child_process'
import { constants as osConstants } from 'node:os'
import type { KeywardClient } from '../client.js'
import { ClientConfigError } from '../errors.js'
import type { CliArgs } from './args.js'
import { createSecretDir, writeSecretFile } from './secret-files.js'

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']

export interface RunIo {
  progress(line: string): void
  /** Reports a renewal failure (code, message, broker reasons). */
  failure(prefix: string, e: unknown): void
}

export async function runCommand(client: KeywardClient, a: CliArgs, io: RunIo): Promise<number> {
  const env: Record<string, string> = {}
  const files = await createSecretDir()
  const written: string[] = []
  // Each secret is released once, however many targets it has.
  const values = new Map<string, Uint8Array>()
  try {
    await client.attest()
    for (const s of a.secrets) {
      let value = values.get(s.name)
      if (!value) {
        value = await client.getSecret(s.name)
        values.set(s.name, value)
      }
      if (s.kind === 'env') {
        if (value.includes(0)) throw new ClientConfigError(`secret ${s.name} contains a NUL byte and cannot be an environment variable; use file:`)
        env[s.target] = new TextDecoder().decode(value)
        io.progress(`secret ${s.name} -> env ${s.target}`)
      } else {
        const path = await files.resolve(s.target)
        await writeSecretFile(path, value)
        written.push(path)
        io.progress(`secret ${s.name} -> file ${path} (0600)`)
      }
    }
    if (a.vaultRole) {
      const v = await client.vaultToken({ role: a.vaultRole })
      const token = v.token ?? v.wrapToken
      if (token) env.VAULT_TOKEN = token
      io.progress(`Vault token for role ${a.vaultRole} -> env VAULT_TOKEN (lease ${v.leaseDuration ?? '?'} s)`)
    }
    if (files.dir) env.KEYWARD_SECRETS_DIR = files.dir
    if (!files.onTmpfs) io.progress('warning: secret files are not on tmpfs')
  } catch (e) {
    await files.cleanup(written)
    throw e
  } finally {
    for (const v of values.values()) v.fill(0)
  }

  const [cmd, ...args] = a.exec as [string, ...string[]]
  io.progress(`starting ${cmd}`)
  const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } })
  const handlers = new Map<NodeJS.Signals, () => void>()
  for (const sig of FORWARDED) {
    const h = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig)
    }
    handlers.set(sig, h)
    process.on(sig, h)
  }
  const renewal =
    a.renewIntervalMs === 0
      ? undefined
      : client.startRenewal(
          a.renewIntervalMs ?? 300_000,
          (e) => {
            io.failure('renewal failed', e)
            if (a.exitOnRenewFailure && child.exitCode === null) {
              io.progress(`stopping ${cmd} (--exit-on-renew-failure)`)
              child.kill('SIGTERM')
            }
          },
          (att) => io.progress(`re-attested, token expires ${att.expiresAt.toISOString()}`),
        )

  const code = await new Promise<number>((resolve) => {
    child.once('error', (e) => {
      io.failure(`cannot start ${cmd}`, e)
      resolve(127)
    })
    child.once('exit', (c, sig) => resolve(c ?? 128 + (sig ? (osConstants.signals[sig] ?? 0) : 0)))
  })
  renewal?.stop()
  for (const [sig, h] of handlers) process.off(sig, h)
  await files.cleanup(written)
  return code
}
