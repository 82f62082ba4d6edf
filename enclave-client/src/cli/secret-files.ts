// Writing released secrets for a child process: files mode 0600, on tmpfs where there is one,
// so secrets never reach a disk. Relative targets go to a private 0700 directory on tmpfs.
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, open, rename, rm, statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join } from 'node:path'
import { ClientConfigError } from '../errors.js'

/** statfs(2) f_type of tmpfs (linux/magic.h TMPFS_MAGIC). */
const TMPFS_MAGIC = 0x01021994

export async function isTmpfs(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type === TMPFS_MAGIC
  } catch {
    return false
  }
}

/** The first writable tmpfs among /dev/shm, /run/user/UID, /run; else the temp dir (not tmpfs). */
export async function pickSecretsBase(candidates?: string[]): Promise<{ base: string; tmpfs: boolean }> {
  const uid = process.getuid?.()
  const list = candidates ?? ['/dev/shm', ...(uid !== undefined ? [`/run/user/${uid}`] : []), '/run']
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

/** Writes `data` with mode 0600 via a temp file and rename, so no reader sees a partial or wider-mode file. */
export async function writeSecretFile(path: string, data: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(data)
    await fh.chmod(0o600)
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
}

export interface SecretDir {
  /** Resolves a --secret file target: absolute stays, relative lands in the private tmpfs dir. */
  resolve(target: string): Promise<string>
  /** The private directory, when one was made. */
  readonly dir: string | undefined
  readonly onTmpfs: boolean
  cleanup(written: string[]): Promise<void>
}

export async function createSecretDir(): Promise<SecretDir> {
  let dir: string | undefined
  let onTmpfs = true
  const sd: SecretDir = {
    get dir() {
      return dir
    },
    get onTmpfs() {
      return onTmpfs
    },
    async resolve(target) {
      if (isAbsolute(target)) {
        const parent = dirname(target)
        await mkdir(parent, { recursive: true, mode: 0o700 }).catch((e: unknown) => {
          throw new ClientConfigError(`cannot create ${parent} for a secret file`, { cause: e })
        })
        onTmpfs &&= await isTmpfs(parent)
        return target
      }
      if (!dir) {
        const { base, tmpfs } = await pickSecretsBase()
        dir = await mkdtemp(join(base, 'keyward-secrets-'))
        await chmod(dir, 0o700)
        onTmpfs &&= tmpfs
      }
      return join(dir, target)
    },
    async cleanup(written) {
      for (const f of written) await rm(f, { force: true })
      if (dir) await rm(dir, { recursive: true, force: true })
    },
  }
  return sd
}
