// `keyward-client run --svid DIR`: the child's X509-SVID as files, the way SPIRE's spiffe-helper
// writes them: svid.pem (the SVID and its intermediate), svid.key (the attested session key,
// PKCS#8, 0600) and bundle.pem (the trust domain's roots). They are renewed at half their
// remaining lifetime while the client runs, each file replaced atomically (written under a new
// temp name, then renamed over), so a reader sees the old set or the new one, never a torn file.
// Each renewal attests afresh first, so a new SVID always rests on current evidence and the policy
// as it stands. The timer is injected: tests fire it themselves, nothing waits on the wall clock.
import { constants } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { KeywardClient, X509Svid } from '../client.js'
import { secureDirectory } from './secret-files.js'

export const SVID_FILES = { cert: 'svid.pem', key: 'svid.key', bundle: 'bundle.pem' } as const
const O_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

/** Schedules `fn` after `ms`; returns a cancel function. `fn` settles once the renewal (and the next plan) is done. */
export type Schedule = (fn: () => Promise<void>, ms: number) => () => void

export const timerSchedule: Schedule = (fn, ms) => {
  const t = setTimeout(() => void fn(), ms)
  t.unref()
  return () => clearTimeout(t)
}

export interface SvidFiles {
  readonly dir: string
  /** The SVID now on disk. */
  readonly current: X509Svid
  /** Stops renewing and removes the three files. */
  stop(): Promise<void>
}

/** When to renew: at half the remaining lifetime; after a failure, sooner (a tenth of what is left, 1–30 s). */
export function renewDelay(expiresAt: Date, now: number, failed: boolean): number {
  const left = Math.max(0, expiresAt.getTime() - now)
  return failed ? Math.min(30_000, Math.max(1000, left / 10)) : Math.floor(left / 2)
}

async function writeReplacing(dir: string, name: string, text: string): Promise<void> {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, O_NEW, 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, join(dir, name))
  } catch (e) {
    await rm(tmp, { force: true })
    throw e
  }
}

async function writeSvid(dir: string, svid: X509Svid): Promise<void> {
  // The key first: a reader that sees a new certificate finds its key already there (the key does not change between renewals).
  await writeReplacing(dir, SVID_FILES.key, svid.privateKeyPem)
  await writeReplacing(dir, SVID_FILES.cert, svid.certificates)
  await writeReplacing(dir, SVID_FILES.bundle, svid.bundle)
}

/**
 * Fetches the first X509-SVID and writes it to `dir` (every directory on the way checked as for
 * secret files), then renews it on `schedule` until stop(). Renewal failures go to `onError`
 * and are retried; the files on disk stay valid until they expire.
 */
export async function startSvidFiles(
  client: Pick<KeywardClient, 'x509Svid' | 'attest'>,
  dir: string,
  o: { schedule?: Schedule; now?: () => number; onRenew?: (s: X509Svid) => void; onError?: (e: unknown) => void } = {},
): Promise<SvidFiles> {
  const schedule = o.schedule ?? timerSchedule
  const now = o.now ?? Date.now
  await secureDirectory(dir)
  let current = await client.x509Svid()
  await writeSvid(dir, current)
  let cancel: (() => void) | undefined
  let stopped = false
  const plan = (failed: boolean): void => {
    if (stopped) return
    cancel = schedule(renew, renewDelay(current.expiresAt, now(), failed))
  }
  const renew = async (): Promise<void> => {
    try {
      await client.attest()
      const next = await client.x509Svid()
      if (stopped) return
      await writeSvid(dir, next)
      current = next
      o.onRenew?.(next)
      plan(false)
    } catch (e) {
      o.onError?.(e)
      plan(true)
    }
  }
  plan(false)
  return {
    dir,
    get current() {
      return current
    },
    async stop() {
      stopped = true
      cancel?.()
      for (const f of Object.values(SVID_FILES)) await rm(join(dir, f), { force: true })
    },
  }
}
