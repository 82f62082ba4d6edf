// Process hardening that runs before any secret exists, for every subcommand (called first by
// both launchers). Node 20 has no --disable-sigusr1 and no setrlimit/prctl API, so:
// - SIGUSR1: any listener stops Node from opening its inspector (an unauthenticated debugger
//   on 127.0.0.1:9229 that could read secrets and use the session key); one opened in the
//   moment before the listener existed is closed again.
// - core dumps: util-linux prlimit(1) sets this process's RLIMIT_CORE to 0 (soft and hard, so
//   the child cannot raise it either) from outside, which is the prlimit(2) syscall Node lacks.
//   PR_SET_DUMPABLE stays 1: a same-uid ptrace is limited only by the kernel's Yama setting.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import inspector from 'node:inspector'

export const SIGUSR1_IGNORED = "SIGUSR1 ignored (Node's inspector stays closed)"
/** Absolute paths only: as root, a PATH lookup would run whatever the environment names. */
const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit']

export interface Hardening {
  coreDumpsDisabled: boolean
}

/** Sets RLIMIT_CORE of `pid` to 0:0 with prlimit(1); false when prlimit is missing or refused. */
export function disableCoreDumps(pid = process.pid): boolean {
  const bin = PRLIMIT.find((p) => existsSync(p))
  if (!bin) return false
  const r = spawnSync(bin, ['--pid', String(pid), '--core=0:0'], { stdio: 'ignore' })
  return r.status === 0
}

export function harden(log: (line: string) => void): Hardening {
  if (process.listenerCount('SIGUSR1') === 0) process.on('SIGUSR1', () => log(SIGUSR1_IGNORED))
  if (inspector.url() !== undefined) inspector.close()
  const coreDumpsDisabled = disableCoreDumps()
  if (!coreDumpsDisabled) log('warning: cannot set RLIMIT_CORE to 0 (no prlimit); a crash may write secrets to a core dump')
  return { coreDumpsDisabled }
}
