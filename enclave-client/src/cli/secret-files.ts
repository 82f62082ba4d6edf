// Writing released secrets for a child process: files mode 0600, on tmpfs where there is one,
// so secrets never reach a disk. Relative targets go to a private 0700 directory on tmpfs.
//
// Paths are distrusted (docs/protocol.md, "Secret files"): every directory on the way must be a
// real directory (no symlink) owned by this user or root and not writable by group or others,
// unless it is root-owned and sticky like /tmp and /dev/shm (there no one can rename or remove
// another user's entry, and the next component is checked in turn). Missing directories are made
// 0700 one at a time; a target that exists already is refused. A file is written under a temp
// name opened O_CREAT|O_EXCL|O_NOFOLLOW, then link(2)ed to its name (which fails if anything,
// even a dangling symlink, took the name) and the temp name unlinked, on success or failure.
//
// The private directory is named keyward-secrets-<pid>-<start time>-XXXXXX, so a later client
// can tell a dead owner's leftover (SIGKILL, OOM killer) from a live one's, even after pid reuse.
import { constants, lstatSync, readFileSync, readdirSync, rmSync, unlinkSync, type Stats } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { link, lstat, mkdir, mkdtemp, open, rm, statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { ClientConfigError, UnsafePathError } from '../errors.js'

/** statfs(2) f_type of tmpfs (linux/magic.h TMPFS_MAGIC). */
const TMPFS_MAGIC = 0x01021994
/** The sticky bit (inode(7)); missing from Node's fs.constants. */
const S_ISVTX = 0o1000
const O_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
const DIR_PREFIX = 'keyward-secrets-'
const OWNED_DIR = /^keyward-secrets-(\d+)-(\d+)-[A-Za-z0-9]{6}$/

const uid = (): number => process.getuid?.() ?? 0

export async function isTmpfs(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type === TMPFS_MAGIC
  } catch {
    return false
  }
}

/** Why a file target is not a plain file path (empty, `.`, `..` or empty components, a trailing `/`), else undefined. */
export function targetSyntaxProblem(target: string): string | undefined {
  if (target.includes('\0')) return 'contains a NUL byte'
  const parts = (isAbsolute(target) ? target.slice(1) : target).split('/')
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return 'must name a file, without empty, "." or ".." components'
  return undefined
}

/** Why a directory may be controlled by another user, else undefined. */
function dirProblem(path: string, st: Stats): string | undefined {
  if (st.isSymbolicLink()) return `${path} is a symbolic link`
  if (!st.isDirectory()) return `${path} is not a directory`
  if (st.uid !== uid() && st.uid !== 0) return `${path} belongs to uid ${st.uid}`
  const stickyRoot = (st.mode & S_ISVTX) !== 0 && st.uid === 0
  if ((st.mode & 0o022) !== 0 && !stickyRoot) return `${path} is writable by group or others`
  return undefined
}

/** Checks every directory from / down to `dir`, creating missing ones 0700 (never following a symlink). */
export async function secureDirectory(dir: string): Promise<void> {
  let cur = '/'
  const parts = dir.split('/').filter((p) => p !== '')
  for (let i = 0; ; i++) {
    let st: Stats
    try {
      st = await lstat(cur)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UnsafePathError(`cannot inspect ${cur}`, { cause: e })
      // mkdir never follows a symlink in its last component; EEXIST (a racing creator) is judged below.
      await mkdir(cur, { mode: 0o700 }).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ClientConfigError(`cannot create ${cur} for a secret file`, { cause: err })
      })
      st = await lstat(cur)
    }
    const problem = dirProblem(cur, st)
    if (problem) throw new UnsafePathError(`refusing to write a secret below ${dir}: ${problem}`)
    if (i === parts.length) return
    cur = join(cur, parts[i]!)
  }
}

/** A secret never replaces anything: an existing name (even a dangling symlink) may be someone's trap. */
async function refuseExisting(path: string): Promise<void> {
  const exists = await lstat(path).then(
    () => true,
    (e: NodeJS.ErrnoException) => e.code !== 'ENOENT',
  )
  if (exists) throw new UnsafePathError(`refusing to write a secret to ${path}: it exists already`)
}

/** The start time of a process in clock ticks (/proc/PID/stat field 22), or undefined when it is gone. */
export function processStartTime(pid: number | 'self'): string | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // Field 2 (comm) may hold spaces and parentheses: count fields after its last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

/**
 * Removes private secret directories in `base` left by dead clients (SIGKILL, OOM killer): only
 * real directories owned by this user whose name's pid no longer runs with that start time.
 */
export function removeStaleSecretDirs(base: string): string[] {
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(base)
  } catch {
    return removed
  }
  for (const name of names) {
    const m = OWNED_DIR.exec(name)
    if (!m) continue
    const path = join(base, name)
    let st: Stats
    try {
      st = lstatSync(path)
    } catch {
      continue
    }
    if (!st.isDirectory() || st.uid !== uid()) continue
    if (processStartTime(Number(m[1])) === m[2]) continue
    rmSync(path, { recursive: true, force: true })
    removed.push(path)
  }
  return removed
}

/** The first writable tmpfs among /dev/shm, /run/user/UID, /run; else the temp dir (not tmpfs). */
export async function pickSecretsBase(candidates?: string[]): Promise<{ base: string; tmpfs: boolean }> {
  const list = candidates ?? ['/dev/shm', `/run/user/${uid()}`, '/run']
  for (const c of list) {
    if (!(await isTmpfs(c))) continue
    try {
      const probe = await mkdtemp(join(c, 'keyward-probe-'))
      await rm(probe, { recursive: true, force: true })
      return { base: c, tmpfs: true }
    } catch {
      // not writable for us
    }
  }
  return { base: tmpdir(), tmpfs: false }
}

interface Written {
  path: string
  dev: number
  ino: number
}

export interface SecretWriter {
  /** Resolves a --secret file target: absolute stays, relative lands in the private tmpfs dir. */
  resolve(target: string): Promise<string>
  /** Writes `data` to a new file `path`, mode 0600, after checking every directory on the way. */
  write(path: string, data: Uint8Array): Promise<void>
  /** The private directory, when one was made. */
  readonly dir: string | undefined
  readonly onTmpfs: boolean
  /** Removes what this writer created (files it wrote, temp files, the private directory). Synchronous, for signal handlers. */
  cleanup(): void
  /** Until the returned function is called, SIGINT/SIGTERM/SIGHUP clean up and then end the process by that signal. */
  cleanupOnSignals(): () => void
}

const FATAL: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

export function createSecretWriter(base?: () => Promise<{ base: string; tmpfs: boolean }>): SecretWriter {
  let dir: string | undefined
  let onTmpfs = true
  const written: Written[] = []
  const temps = new Set<string>()

  function cleanup(): void {
    for (const t of temps) rmSync(t, { force: true })
    temps.clear()
    // Only the very file we made: a name someone (root) replaced since is left alone.
    for (const w of written.splice(0)) {
      try {
        const st = lstatSync(w.path)
        if (st.isFile() && st.dev === w.dev && st.ino === w.ino) unlinkSync(w.path)
      } catch {
        // already gone
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true })
    dir = undefined
  }

  return {
    get dir() {
      return dir
    },
    get onTmpfs() {
      return onTmpfs
    },
    async resolve(target) {
      const problem = targetSyntaxProblem(target)
      if (problem) throw new ClientConfigError(`secret file ${target}: ${problem}`)
      if (isAbsolute(target)) {
        await secureDirectory(dirname(target))
        await refuseExisting(target)
        onTmpfs &&= await isTmpfs(dirname(target))
        return target
      }
      if (!dir) {
        const b = await (base ?? pickSecretsBase)()
        await secureDirectory(b.base)
        dir = await mkdtemp(join(b.base, `${DIR_PREFIX}${process.pid}-${processStartTime('self') ?? 0}-`))
        onTmpfs &&= b.tmpfs
      }
      const path = join(dir, target)
      await secureDirectory(dirname(path))
      await refuseExisting(path)
      return path
    },
    async write(path, data) {
      const problem = targetSyntaxProblem(path)
      if (problem || !isAbsolute(path)) throw new ClientConfigError(`secret file ${path}: ${problem ?? 'must be absolute here'}`)
      await secureDirectory(dirname(path))
      const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
      let fh
      try {
        fh = await open(tmp, O_NEW, 0o600)
        temps.add(tmp)
        await fh.writeFile(data)
        await fh.chmod(0o600)
        const st = await fh.stat()
        await fh.close()
        fh = undefined
        await link(tmp, path).catch((e: unknown) => {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UnsafePathError(`refusing to write a secret to ${path}: it exists already`)
          throw e
        })
        written.push({ path, dev: st.dev, ino: st.ino })
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST' || (e as NodeJS.ErrnoException).code === 'ELOOP') {
          throw new UnsafePathError(`refusing to write a secret to ${path}: its temp name exists`, { cause: e })
        }
        throw e
      } finally {
        await fh?.close()
        if (temps.delete(tmp)) rmSync(tmp, { force: true })
      }
    },
    cleanup,
    cleanupOnSignals() {
      const handlers = FATAL.map((sig) => {
        const h = (): void => {
          cleanup()
          for (const [s, f] of handlers) process.off(s, f)
          // No listener left: the default action ends the process, with the signal as its status.
          process.kill(process.pid, sig)
        }
        process.on(sig, h)
        return [sig, h] as const
      })
      return () => {
        for (const [s, f] of handlers) process.off(s, f)
      }
    },
  }
}
