// `keyward-client run … -- CMD`: attest, fetch every secret, write files and env, and only then
// start CMD with inherited stdio. Node cannot execve, so the client stays as CMD's parent,
// forwards signals, keeps re-attesting, and exits with CMD's status.
//
// What survives what (README "Secret files"): SIGINT/SIGTERM/SIGHUP at any moment remove every
// file written so far; a SIGKILL of the client (or the OOM killer) cannot run code, so the child
// gets SIGTERM from the kernel (PR_SET_PDEATHSIG, set by setpriv(1)) and the files stay until the
// next `keyward-client run` of the same user removes the dead client's directory at its start.
// Absolute file: targets outside that directory stay after a SIGKILL.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import type { KeywardClient } from '../client.js'
import { ClientConfigError } from '../errors.js'
import type { CliArgs } from './args.js'
import { resolve } from 'node:path'
import { createSecretWriter, pickSecretsBase, removeStaleSecretDirs } from './secret-files.js'
import { startSvidFiles, type SvidFiles } from './svid-files.js'

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']
/** Signals a terminal sends to its whole foreground process group (which includes the child). */
const FROM_TERMINAL: NodeJS.Signals[] = ['SIGINT', 'SIGQUIT']
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv']
export const DEFAULT_KILL_GRACE_MS = 10_000

export interface RunIo {
  progress(line: string): void
  /** Reports a renewal failure (code, message, broker reasons). */
  failure(prefix: string, e: unknown): void
}

/**
 * Whether this process is in the foreground process group of its controlling terminal
 * (/proc/self/stat: pgrp is field 5, tpgid field 8). Then a Ctrl-C already reached the child.
 */
export function inTerminalForeground(): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(f[5]) > 0 && f[2] === f[5]
  } catch {
    return false
  }
}

export async function runCommand(client: KeywardClient, a: CliArgs, io: RunIo): Promise<number> {
  const base = await pickSecretsBase()
  const files = createSecretWriter(async () => base)
  // Installed before anything is fetched or written, removed only once the forwarders are in place.
  const unguard = files.cleanupOnSignals()
  for (const d of removeStaleSecretDirs(base.base)) io.progress(`removed ${d}, left by a client that is gone`)
  const env: Record<string, string> = {}
  // Each secret is released once, however many targets it has.
  const values = new Map<string, Uint8Array>()
  let svid: SvidFiles | undefined
  try {
    // Every file target is checked (and its directories made) before the broker is asked for anything.
    const paths = new Map<string, string>()
    for (const s of a.secrets) if (s.kind === 'file') paths.set(s.target, await files.resolve(s.target))
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
        const path = paths.get(s.target)!
        await files.write(path, value)
        io.progress(`secret ${s.name} -> file ${path} (0600)`)
      }
    }
    if (a.vaultRole) {
      const v = await client.vaultToken({ role: a.vaultRole })
      const token = v.token ?? v.wrapToken
      if (token) env.VAULT_TOKEN = token
      io.progress(`Vault token for role ${a.vaultRole} -> env VAULT_TOKEN (lease ${v.leaseDuration ?? '?'} s)`)
    }
    if (a.svidDir !== undefined) {
      svid = await startSvidFiles(client, resolve(a.svidDir), {
        onRenew: (s) => io.progress(`renewed the X509-SVID for ${s.spiffeId}, expires ${s.expiresAt.toISOString()}`),
        onError: (e) => io.failure('X509-SVID renewal failed', e),
      })
      env.KEYWARD_SVID_DIR = svid.dir
      io.progress(`X509-SVID ${svid.current.spiffeId} -> ${svid.dir}/svid.pem, svid.key, bundle.pem`)
    }
    if (files.dir) env.KEYWARD_SECRETS_DIR = files.dir
    if (!files.onTmpfs) io.progress('warning: secret files are not on tmpfs')
  } catch (e) {
    files.cleanup()
    await svid?.stop()
    unguard()
    throw e
  } finally {
    for (const v of values.values()) v.fill(0)
  }

  const [cmd, ...args] = a.exec as [string, ...string[]]
  io.progress(`starting ${cmd}`)
  // setpriv --pdeathsig: the kernel sends the child SIGTERM if this client dies, even by SIGKILL.
  const setpriv = SETPRIV.find((p) => existsSync(p))
  if (!setpriv) io.progress('warning: no setpriv(1); the command outlives a SIGKILL of the client')
  const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'SIGTERM', '--', cmd, ...args]] : [cmd, args]
  const child = spawn(file, argv, { stdio: 'inherit', env: { ...process.env, ...env } })
  const alive = (): boolean => child.exitCode === null && child.signalCode === null
  const foreground = inTerminalForeground()
  const handlers = new Map<NodeJS.Signals, () => void>()
  for (const sig of FORWARDED) {
    // The terminal's Ctrl-C and Ctrl-\ reach the child directly (same process group): forwarding would deliver them twice.
    const h =
      foreground && FROM_TERMINAL.includes(sig)
        ? (): void => undefined
        : (): void => {
            if (!alive()) return
            child.kill(sig)
            if (sig !== 'SIGWINCH') io.progress(`forwarded ${sig} to ${cmd}`)
          }
    handlers.set(sig, h)
    process.on(sig, h)
  }
  unguard()
  let killTimer: NodeJS.Timeout | undefined
  const renewal =
    a.renewIntervalMs === 0
      ? undefined
      : client.startRenewal(
          a.renewIntervalMs ?? 300_000,
          (e) => {
            io.failure('renewal failed', e)
            if (a.exitOnRenewFailure && alive() && !killTimer) {
              const grace = a.killGraceMs ?? DEFAULT_KILL_GRACE_MS
              io.progress(`stopping ${cmd} (--exit-on-renew-failure): SIGTERM, SIGKILL after ${grace} ms`)
              child.kill('SIGTERM')
              killTimer = setTimeout(() => {
                if (!alive()) return
                io.progress(`${cmd} outlived SIGTERM by ${grace} ms: SIGKILL`)
                child.kill('SIGKILL')
              }, grace)
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
  if (killTimer) clearTimeout(killTimer)
  renewal?.stop()
  await svid?.stop()
  files.cleanup() // before the forwarders go: a signal with no listener would end the process first
  for (const [sig, h] of handlers) process.off(sig, h)
  return code
}
