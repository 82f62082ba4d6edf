// The local KEK provider: a keyring file <dataDir>/keyring.json holding versioned 256-bit
// key-encryption keys ("local:1", "local:2", ...). Data keys are wrapped with AES-256-GCM under
// the newest version; older versions stay for unwrapping until every data key is re-wrapped.
//
// The file is created on first start with mode 0600 and keyward refuses to start when it is
// readable by group or others. Writes are atomic (temp file + fsync + rename + directory fsync)
// and serialized across processes by a lock file, so a rotation can never lose a key another
// process just added. Processes sharing the data directory pick up new versions on their own:
// wrap() re-reads the file when it changed, unwrap() when it meets an unknown id.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { closeSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { z } from 'zod'
import { KeywardError } from '../errors.js'
import { concatBytes } from '../util/bytes.js'
import type { KekProvider, WrappedKey } from './kek.js'

export const KEYRING_FILE = 'keyring.json'
const IV_LEN = 12
const TAG_LEN = 16
const KEY_LEN = 32
const LOCK_WAIT_MS = 10_000
const LOCK_STALE_MS = 60_000

const KeyringFile = z.object({
  format: z.literal('keyward-keyring-v1'),
  keys: z.array(z.object({
    id: z.string().regex(/^local:[1-9][0-9]{0,8}$/),
    key: z.string().regex(/^[A-Za-z0-9_-]{43}$/), // base64url of 32 bytes
    createdAt: z.string(),
  })).min(1),
}).strict()
type KeyringFile = z.infer<typeof KeyringFile>

export interface LocalKeyring extends KekProvider {
  readonly name: 'local'
  readonly path: string
  /** The id later wraps use. */
  currentId(): string
  /** Every KEK id in the file, oldest first. */
  ids(): string[]
}

const enc = new TextEncoder()
const unsealError = () => new KeywardError('ERR_UNSEAL', 'unseal failed')

/** The GCM AAD under a KEK: binds the KEK id too, so a wrapped key cannot be relabelled. */
function kekAad(kekId: string, aad: Uint8Array): Uint8Array {
  return concatBytes(enc.encode(`keyward-kek-v1\0${kekId}\0`), aad)
}

function versionOf(id: string): number {
  return Number(id.slice('local:'.length))
}

function fsyncDir(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Some filesystems do not support fsync on directories; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

function writeFileDurable(path: string, data: string): void {
  const fd = openSync(path, 'wx', 0o600)
  try {
    writeSync(fd, data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function tmpName(path: string): string {
  return `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Lock-file content: who holds it, so a waiter can tell a crashed holder from a slow one. */
function lockOwner(): string {
  return `${process.pid} ${hostname()}\n`
}

/** True when the lock was taken by a process of this host that no longer exists (killed mid-rotation). */
function holderIsGone(lock: string): boolean {
  let content: string
  try {
    content = readFileSync(lock, 'utf8')
  } catch {
    return false
  }
  const m = /^(\d+) (\S+)\n$/.exec(content)
  if (!m || m[2] !== hostname()) return false
  try {
    process.kill(Number(m[1]), 0)
    return false
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/** Under the lock: removes temp files (key material, 0600) left by writers killed before their rename. */
function removeDeadTemps(path: string): void {
  const dir = dirname(path)
  const prefix = `${basename(path)}.`
  for (const name of readdirSync(dir)) {
    const m = /^(?:lock\.)?(\d+)\.[0-9a-f]{12}\.tmp$/.exec(name.startsWith(prefix) ? name.slice(prefix.length) : '')
    if (!m || Number(m[1]) === process.pid) continue
    try {
      process.kill(Number(m[1]), 0)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') unlinkSync(join(dir, name))
    }
  }
}

/**
 * Exclusive lock file beside the keyring. A lock whose holder on this host has died (SIGKILL during
 * `keys rotate --kek`) is broken at once, so a re-run proceeds; a lock from another host is broken
 * only when untouched for a minute.
 */
function withLock<T>(path: string, fn: () => T): T {
  const lock = `${path}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    // The lock appears with its owner already written (link of a finished temp file), never empty.
    const tmp = tmpName(lock)
    writeFileDurable(tmp, lockOwner())
    try {
      linkSync(tmp, lock)
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      try {
        if (holderIsGone(lock) || Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) unlinkSync(lock)
      } catch {
        // the holder released it meanwhile
      }
      if (Date.now() > deadline) throw new KeywardError('ERR_SEAL', 'keyring is locked by another process')
      sleepSync(20)
    } finally {
      unlinkSync(tmp)
    }
  }
  removeDeadTemps(path)
  try {
    return fn()
  } finally {
    try {
      unlinkSync(lock)
    } catch {
      // already gone
    }
  }
}

function newKey(id: string): KeyringFile['keys'][number] {
  return { id, key: randomBytes(KEY_LEN).toString('base64url'), createdAt: new Date().toISOString() }
}

/** Refuses a keyring that is not a regular file or that group/others can access (mode & 077). */
function checkFile(path: string): void {
  const st = lstatSync(path)
  if (!st.isFile()) throw new KeywardError('ERR_CONFIG', `keyring ${path} is not a regular file`)
  if ((st.mode & 0o077) !== 0) {
    throw new KeywardError('ERR_CONFIG', `keyring ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600`)
  }
}

function readKeyring(path: string): KeyringFile {
  checkFile(path)
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (e) {
    throw new KeywardError('ERR_CONFIG', `keyring ${path} is not valid JSON`, { cause: e })
  }
  const r = KeyringFile.safeParse(parsed)
  if (!r.success) throw new KeywardError('ERR_CONFIG', `keyring ${path} is malformed`)
  const ids = r.data.keys.map((k) => k.id)
  if (new Set(ids).size !== ids.length) throw new KeywardError('ERR_CONFIG', `keyring ${path} repeats a key id`)
  return r.data
}

function writeKeyring(path: string, file: KeyringFile): void {
  const tmp = tmpName(path)
  try {
    writeFileDurable(tmp, JSON.stringify(file, null, 2) + '\n')
    renameSync(tmp, path)
  } catch (e) {
    try {
      unlinkSync(tmp)
    } catch {
      // never created
    }
    throw e
  }
}

/** Creates the keyring with local:1 unless it exists; link() makes creation atomic across processes. */
function createIfMissing(dataDir: string, path: string): void {
  try {
    lstatSync(path)
    return
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const tmp = tmpName(path)
  writeFileDurable(tmp, JSON.stringify({ format: 'keyward-keyring-v1', keys: [newKey('local:1')] }, null, 2) + '\n')
  try {
    linkSync(tmp, path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
  } finally {
    unlinkSync(tmp)
  }
  fsyncDir(dataDir)
}

/**
 * Opens <dataDir>/keyring.json, creating it (0600, one KEK) on first start. Throws ERR_CONFIG when
 * the file is group/world accessible, not a regular file, or malformed.
 */
export async function openLocalKeyring(dataDir: string): Promise<LocalKeyring> {
  const path = join(dataDir, KEYRING_FILE)
  try {
    createIfMissing(dataDir, path)
  } catch (e) {
    if (e instanceof KeywardError) throw e
    throw new KeywardError('ERR_CONFIG', `cannot create keyring ${path}`, { cause: e })
  }

  let keys = new Map<string, Buffer>()
  let current = ''
  let stamp = ''
  const fileStamp = () => {
    const st = statSync(path)
    return `${st.ino}:${st.size}:${st.mtimeMs}`
  }
  const load = () => {
    const file = readKeyring(path)
    stamp = fileStamp()
    keys = new Map(file.keys.map((k) => [k.id, Buffer.from(k.key, 'base64url')]))
    current = file.keys.map((k) => k.id).reduce((a, b) => (versionOf(b) > versionOf(a) ? b : a))
  }
  const reloadIfChanged = () => {
    if (fileStamp() !== stamp) load()
  }
  load()

  const wrapWith = (id: string, dataKey: Uint8Array, aad: Uint8Array): WrappedKey => {
    const kek = keys.get(id)
    if (kek === undefined) throw new KeywardError('ERR_SEAL', 'seal failed')
    const iv = randomBytes(IV_LEN)
    const c = createCipheriv('aes-256-gcm', kek, iv)
    c.setAAD(kekAad(id, aad))
    const ct = Buffer.concat([c.update(dataKey), c.final()])
    return { kekId: id, wrapped: concatBytes(iv, ct, c.getAuthTag()) }
  }

  const unwrapNow = (w: WrappedKey, aad: Uint8Array): Uint8Array => {
    if (!keys.has(w.kekId)) {
      try {
        load()
      } catch {
        throw unsealError()
      }
    }
    const kek = keys.get(w.kekId)
    const b = w.wrapped
    if (kek === undefined || !(b instanceof Uint8Array) || b.length < IV_LEN + TAG_LEN + 1) throw unsealError()
    try {
      const d = createDecipheriv('aes-256-gcm', kek, b.subarray(0, IV_LEN))
      d.setAAD(kekAad(w.kekId, aad))
      d.setAuthTag(b.subarray(b.length - TAG_LEN))
      return new Uint8Array(Buffer.concat([d.update(b.subarray(IV_LEN, b.length - TAG_LEN)), d.final()]))
    } catch {
      throw unsealError()
    }
  }

  return {
    name: 'local',
    path,
    currentId: () => current,
    ids: () => [...keys.keys()].sort((a, b) => versionOf(a) - versionOf(b)),
    async wrap(dataKey, aad) {
      try {
        reloadIfChanged()
        return wrapWith(current, dataKey, aad)
      } catch (e) {
        if (e instanceof KeywardError && e.code === 'ERR_CONFIG') throw e
        throw new KeywardError('ERR_SEAL', 'seal failed', { cause: e })
      }
    },
    async unwrap(w, aad) {
      return unwrapNow(w, aad)
    },
    async rewrap(w, aad) {
      const dataKey = unwrapNow(w, aad)
      try {
        reloadIfChanged()
        return wrapWith(current, dataKey, aad)
      } finally {
        dataKey.fill(0)
      }
    },
    async rotate() {
      return withLock(path, () => {
        const file = readKeyring(path) // under the lock: never lose a version another process added
        const next = `local:${Math.max(...file.keys.map((k) => versionOf(k.id))) + 1}`
        writeKeyring(path, { ...file, keys: [...file.keys, newKey(next)] })
        fsyncDir(dataDir)
        load()
        return next
      })
    },
  }
}
