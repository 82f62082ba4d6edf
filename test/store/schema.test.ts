// The SQLite and PostgreSQL schemas must describe the same tables: same columns (SQL names),
// same nullability, compatible types, same primary keys and indexes. Any drift fails here.
import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { getTableConfig as sqliteConfig } from 'drizzle-orm/sqlite-core'
import { getTableConfig as pgConfig } from 'drizzle-orm/pg-core'
import { pgSchema, sqliteSchema } from '../../src/store/schema.js'
import { REPO_ROOT } from '../helpers/vectors.js'

// Column classes → one logical type. A class missing here fails the test (add it deliberately).
const LOGICAL: Record<string, string> = {
  SQLiteText: 'text',
  SQLiteInteger: 'int',
  SQLiteBoolean: 'bool',
  SQLiteBlobBuffer: 'bytes',
  PgText: 'text',
  PgInteger: 'int',
  PgBigInt53: 'int',
  PgBoolean: 'bool',
  PgCustomColumn: 'bytes', // the only custom type is bytea
}

interface Shape {
  name: string
  columns: Record<string, { type: string; notNull: boolean; enum: readonly string[] | undefined }>
  primaryKey: string[]
  indexes: Record<string, { columns: string[]; unique: boolean; partial: boolean }>
}

type AnyCol = { name: string; columnType: string; notNull: boolean; primary: boolean; enumValues?: readonly string[] }
type AnyIdx = { config: { name?: string; columns: unknown[]; unique: boolean; where?: unknown } }

function shape(name: string, columns: AnyCol[], pks: { columns: AnyCol[] }[], indexes: AnyIdx[]): Shape {
  const cols: Shape['columns'] = {}
  for (const c of columns) {
    cols[c.name] = { type: LOGICAL[c.columnType] ?? `unmapped:${c.columnType}`, notNull: c.notNull, enum: c.enumValues }
  }
  const pk = columns.filter((c) => c.primary).map((c) => c.name)
  for (const p of pks) pk.push(...p.columns.map((c) => c.name))
  const idx: Shape['indexes'] = {}
  for (const i of indexes) {
    idx[i.config.name ?? '?'] = {
      columns: i.config.columns.map((c) => (c as { name: string }).name),
      unique: i.config.unique,
      partial: i.config.where !== undefined,
    }
  }
  return { name, columns: cols, primaryKey: pk, indexes: idx }
}

const keys = Object.keys(sqliteSchema) as (keyof typeof sqliteSchema)[]

describe('store schema', () => {
  it('has the same logical tables in both dialects', () => {
    expect(Object.keys(pgSchema).sort()).toEqual([...keys].sort())
  })

  it.each(keys)('%s: same table name, columns, nullability, types, keys and indexes', (k) => {
    const s = sqliteConfig(sqliteSchema[k])
    const p = pgConfig(pgSchema[k])
    const ss = shape(s.name, s.columns as unknown as AnyCol[], s.primaryKeys as unknown as { columns: AnyCol[] }[], s.indexes as unknown as AnyIdx[])
    const ps = shape(p.name, p.columns as unknown as AnyCol[], p.primaryKeys as unknown as { columns: AnyCol[] }[], p.indexes as unknown as AnyIdx[])
    for (const c of [...Object.values(ss.columns), ...Object.values(ps.columns)]) expect(c.type).not.toMatch(/^unmapped/)
    expect(ps).toEqual(ss)
    expect(ss.primaryKey.length).toBeGreaterThan(0)
  })

  it('has generated migrations for both dialects that create every table', () => {
    for (const dialect of ['sqlite', 'postgres'] as const) {
      const dir = join(REPO_ROOT, 'drizzle', dialect)
      const journal = JSON.parse(readFileSync(join(dir, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] }
      const sql = journal.entries.map((e) => readFileSync(join(dir, `${e.tag}.sql`), 'utf8')).join('\n')
      for (const k of keys) {
        const table = sqliteConfig(sqliteSchema[k]).name
        expect(sql, `${dialect} creates ${table}`).toMatch(new RegExp(`CREATE TABLE [\`"]${table}[\`"]`))
      }
    }
  })
})
