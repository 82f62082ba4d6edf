// Opens the configured Store: PostgreSQL when a database URL is given, else embedded SQLite in
// the data directory. Migrations are applied before the store is returned.
import { KeywardError } from '../errors.js'
import { openSqliteStore } from './sqlite.js'
import type { Store } from './types.js'

export interface OpenStoreOptions {
  dataDir: string
  /** postgres:// or postgresql:// URL (DATABASE_URL); absent or empty selects SQLite. */
  databaseUrl?: string | undefined
}

export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const url = opts.databaseUrl
  if (url !== undefined && url !== '') {
    if (!/^postgres(ql)?:\/\//.test(url)) throw new KeywardError('ERR_CONFIG', 'database URL must be postgres:// or postgresql://')
    // Loaded on demand: pg and its driver cost a tenth of a cold start that SQLite never needs.
    const { openPostgresStore } = await import('./postgres.js')
    return openPostgresStore(url)
  }
  return openSqliteStore(opts.dataDir)
}

/** PostgreSQL: the server's connection slots not yet taken (src/store/postgres.ts). */
export async function freeConnectionSlots(url: string): Promise<number> {
  const pg = await import('./postgres.js')
  return pg.freeConnectionSlots(url)
}

export { openSqliteStore } from './sqlite.js'
export type * from './types.js'
