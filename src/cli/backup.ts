// `keyward backup` and `keyward restore` (docs/operations.md §Backup and restore).
//
// SQLite: the backup is a consistent snapshot taken with SQLite's online backup API while brokers
// keep running (every transaction committed before it began is in it, none half). PostgreSQL is
// not handled here: use pg_dump, whose snapshot is consistent in the same way. The local keyring
// is copied only on request (--include-keyring) into a separate file: store backup and keyring
// together open every secret, so they must be kept apart. Both files are written 0600, to a temp
// name first, fsynced and renamed, so a crash never leaves a half backup under the final name.
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { KeywardError } from '../errors.js'
import { UsageError, type Command, type ParsedArgs } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, configFrom } from './store-deps.js'
import { KEYRING_FILE, openLocalKeyring } from '../sealing/keyring.js'

const DB_FILE = 'keyward.db'
/** A table every keyward database has; a file without it is not a keyward backup. */
const MARKER_TABLE = 'secret_versions'

function fsyncPath(path: string): void {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    fsyncSync(fd)
  } catch {
    // directories on some filesystems cannot be fsynced; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** Runs `write(tmp)` on a fresh 0600 temp file beside `out`, then fsyncs and renames it into place. */
async function writeAtomically(out: string, write: (tmp: string) => Promise<void> | void): Promise<void> {
  if (existsSync(out)) throw new KeywardError('ERR_CONFLICT', `${out} exists; refusing to overwrite it`)
  const tmp = `${out}.${process.pid}.tmp`
  closeSync(openSync(tmp, 'wx', 0o600))
  try {
    await write(tmp)
    fsyncPath(tmp)
    renameSync(tmp, out)
    fsyncPath(dirname(resolve(out)))
  } catch (e) {
    try {
      unlinkSync(tmp)
    } catch {
      // never written
    }
    throw e
  }
}

function checkDatabase(path: string): void {
  let db: Database.Database | undefined
  try {
    db = new Database(path, { readonly: true, fileMustExist: true })
    const ok = db.pragma('integrity_check', { simple: true })
    const marker = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?`).get(MARKER_TABLE)
    if (ok !== 'ok' || marker === undefined) throw new Error(ok !== 'ok' ? `integrity_check: ${String(ok)}` : 'no keyward tables')
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `${path} is not an intact keyward backup: ${e instanceof Error ? e.message : String(e)}`)
  } finally {
    db?.close()
  }
}

/** keyward backup --out FILE [--include-keyring]: prints what it wrote. */
const BACKUP = `usage: keyward backup --out FILE [--include-keyring]     (SQLite; FILE.keyring is secret: keep it apart)\n${STORE_USAGE}`
const RESTORE = `usage: keyward restore --from FILE [--keyring FILE.keyring] --data-dir NEW_DIR\n${STORE_USAGE}`

export const backup: Command = {
  usage: BACKUP,
  options: { ...STORE_OPTIONS, out: { type: 'string' }, 'include-keyring': { type: 'boolean' } },
  run: (args) => backupCommand(args),
}

export const restore: Command = {
  usage: RESTORE,
  options: { ...STORE_OPTIONS, from: { type: 'string' }, keyring: { type: 'string' } },
  run: (args) => restoreCommand(args),
}
export default backup

async function backupCommand({ values, positionals }: ParsedArgs): Promise<number> {
  const out = values.out
  if (typeof out !== 'string' || positionals.length > 0) throw new UsageError('backup needs --out FILE', BACKUP)
  const cfg = configFrom(values)
  if (cfg.databaseUrl) throw new KeywardError('ERR_BAD_REQUEST', 'keyward backup handles SQLite only; back up PostgreSQL with pg_dump (docs/operations.md)')
  const src = join(cfg.dataDir, DB_FILE)
  if (!existsSync(src)) throw new KeywardError('ERR_NOT_FOUND', `no database at ${src}`)
  const db = new Database(src, { fileMustExist: true })
  db.pragma('busy_timeout = 5000')
  let pages = 0
  try {
    await writeAtomically(out, async (tmp) => {
      const r = await db.backup(tmp)
      pages = r.totalPages
    })
  } finally {
    db.close()
  }
  const written: Record<string, unknown> = { store: out, pages }
  if (values['include-keyring'] === true) {
    // Copied after the store snapshot: KEKs are never removed, so a later keyring opens everything in it.
    if (!existsSync(join(cfg.dataDir, KEYRING_FILE))) throw new KeywardError('ERR_NOT_FOUND', `no keyring in ${cfg.dataDir} (a Vault Transit KEK stays in Vault)`)
    const keyring = await openLocalKeyring(cfg.dataDir) // refuses a group/world-readable or malformed keyring
    await writeAtomically(`${out}.keyring`, (tmp) => copyFileSync(keyring.path, tmp))
    written.keyring = `${out}.keyring`
    written.warning = 'the .keyring file opens every secret in the backup: keep it apart from the store backup'
  }
  process.stdout.write(JSON.stringify(written, null, 2) + '\n')
  return 0
}

/** keyward restore --from FILE [--keyring FILE] --data-dir DIR: into a fresh data directory only. */
async function restoreCommand({ values, positionals }: ParsedArgs): Promise<number> {
  const from = values.from
  if (typeof from !== 'string' || positionals.length > 0) throw new UsageError('restore needs --from FILE', RESTORE)
  const cfg = configFrom(values)
  if (cfg.databaseUrl) throw new KeywardError('ERR_BAD_REQUEST', 'keyward restore handles SQLite only; restore PostgreSQL with pg_restore (docs/operations.md)')
  const dest = join(cfg.dataDir, DB_FILE)
  if (existsSync(dest)) throw new KeywardError('ERR_CONFLICT', `${dest} exists; restore only into a fresh data directory`)
  const keyringDest = join(cfg.dataDir, KEYRING_FILE)
  const keyringFrom = typeof values.keyring === 'string' ? values.keyring : undefined
  if (keyringFrom === undefined && !existsSync(keyringDest)) {
    throw new KeywardError('ERR_BAD_REQUEST', `give --keyring FILE (or place keyring.json in ${cfg.dataDir}): without the KEKs no secret in the backup opens`)
  }
  if (keyringFrom !== undefined && existsSync(keyringDest)) throw new KeywardError('ERR_CONFLICT', `${keyringDest} exists; refusing to replace a keyring`)
  checkDatabase(from)
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 })
  if (keyringFrom !== undefined) await writeAtomically(keyringDest, (tmp) => copyFileSync(keyringFrom, tmp))
  await openLocalKeyring(cfg.dataDir) // validates the keyring (format, mode 0600)
  const src = new Database(from, { readonly: true, fileMustExist: true })
  try {
    await writeAtomically(dest, async (tmp) => void (await src.backup(tmp)))
  } finally {
    src.close()
  }
  process.stdout.write(JSON.stringify({ restored: dest, keyring: keyringDest }, null, 2) + '\n')
  return 0
}
