// The audit hash chain in isolation: the exact hash formula, canonical JSON, tamper detection
// in memory, slice verification, the secret-key guard, and paging over a stored chain.
import { describe, it, expect } from 'vitest'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  GENESIS_HASH, assertAuditDetailSafe, auditHash, buildAuditRow, canonicalJson, verifyAuditChain,
} from '../../src/audit/chain.js'
import { verifyStoredAuditChain } from '../../src/audit/verify-store.js'
import { openSqliteStore } from '../../src/store/sqlite.js'
import type { AuditRow } from '../../src/store/types.js'

const T0 = 1_790_000_000_000

function chain(n: number): AuditRow[] {
  const rows: AuditRow[] = []
  for (let i = 0; i < n; i++) {
    const prev = rows[rows.length - 1]
    rows.push(buildAuditRow(prev ?? null, {
      type: i % 2 ? 'release' : 'attest', subject: `jkt-${i}`, decision: i % 3 ? 'allow' : 'deny', detail: { i, reasons: [`r${i}`] },
    }, T0 + i))
  }
  return rows
}

describe('audit chain', () => {
  it('hashes SHA-256(prevHash || "\\n" || sorted-key JSON) from a zero genesis', () => {
    const [r] = chain(1)
    const body = `{"at":${T0},"decision":"deny","detail":{"i":0,"reasons":["r0"]},"seq":1,"subject":"jkt-0","type":"attest"}`
    const expected = createHash('sha256').update(`${'0'.repeat(64)}\n${body}`).digest('hex')
    expect(r).toMatchObject({ seq: 1, prevHash: GENESIS_HASH, hash: expected })
    expect(GENESIS_HASH).toBe('0'.repeat(64))
  })

  it('canonicalizes nested keys, drops undefined and hashes key order independently', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: undefined } })).toBe('{"a":{"d":[3,{"x":2,"y":1}]},"b":1}')
    const f = { seq: 1, at: 5, type: 't', subject: 's', decision: 'info' as const }
    expect(auditHash(GENESIS_HASH, { ...f, detail: { a: 1, b: 2 } })).toBe(auditHash(GENESIS_HASH, { ...f, detail: { b: 2, a: 1 } }))
    expect(auditHash(GENESIS_HASH, { ...f, detail: { a: 1 } })).not.toBe(auditHash(GENESIS_HASH, { ...f, detail: { a: 2 } }))
  })

  it('accepts an intact chain and a slice verified from a known head', () => {
    const rows = chain(6)
    expect(verifyAuditChain(rows)).toEqual({ ok: true, count: 6, head: { seq: 6, hash: rows[5]!.hash } })
    expect(verifyAuditChain([])).toEqual({ ok: true, count: 0, head: null })
    expect(verifyAuditChain(rows.slice(3), { after: { seq: 3, hash: rows[2]!.hash } })).toMatchObject({ ok: true, count: 3 })
    expect(verifyAuditChain(rows.slice(3))).toMatchObject({ ok: false, seq: 4 })
  })

  it.each([
    ['detail', (r: AuditRow) => ({ ...r, detail: { ...r.detail, i: 99 } })],
    ['decision', (r: AuditRow) => ({ ...r, decision: r.decision === 'allow' ? 'deny' as const : 'allow' as const })],
    ['at', (r: AuditRow) => ({ ...r, at: r.at + 1 })],
    ['subject', (r: AuditRow) => ({ ...r, subject: 'x' })],
    ['type', (r: AuditRow) => ({ ...r, type: 'x' })],
    ['hash', (r: AuditRow) => ({ ...r, hash: 'f'.repeat(64) })],
  ])('detects an edited %s', (_field, edit) => {
    const rows = chain(5)
    rows[2] = edit(rows[2]!)
    expect(verifyAuditChain(rows)).toMatchObject({ ok: false, seq: 3 })
  })

  it('detects an edited row whose hash was recomputed (the next row no longer links)', () => {
    const rows = chain(5)
    const forged = { ...rows[2]!, detail: { i: 99 } }
    forged.hash = auditHash(forged.prevHash, forged)
    rows[2] = forged
    expect(verifyAuditChain(rows)).toMatchObject({ ok: false, seq: 4, reason: expect.stringMatching(/prevHash/) })
  })

  it('detects removed and reordered rows', () => {
    const rows = chain(5)
    expect(verifyAuditChain([rows[0]!, rows[1]!, rows[3]!, rows[4]!])).toMatchObject({ ok: false, seq: 4 })
    expect(verifyAuditChain(rows.slice(1))).toMatchObject({ ok: false, seq: 2 })
    expect(verifyAuditChain([rows[0]!, rows[2]!, rows[1]!, rows[3]!])).toMatchObject({ ok: false, seq: 3 })
    // swapped contents with the seq numbers left in place
    const swapped = rows.map((r) => ({ ...r }))
    swapped[1] = { ...rows[2]!, seq: 2 }
    swapped[2] = { ...rows[1]!, seq: 3 }
    expect(verifyAuditChain(swapped)).toMatchObject({ ok: false, seq: 2 })
  })

  it('refuses detail keys that name secret material, anywhere in the detail', () => {
    for (const key of ['value', 'secret', 'token', 'privateKey', 'private_key', 'PRIVATE-KEY', 'accessToken', 'password', 'plaintext']) {
      expect(() => assertAuditDetailSafe({ [key]: 'x' }), key).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST' }))
      expect(() => assertAuditDetailSafe({ a: [{ b: { [key]: 1 } }] }), key).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST' }))
    }
    for (const ok of [{ secretName: 'db', version: 3 }, { tokenJti: 'j', kid: 'k', reasons: ['pcr'] }, { referenceValueId: 'r' }]) {
      expect(() => assertAuditDetailSafe(ok)).not.toThrow()
    }
  })

  it('refuses details JSON cannot hold', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    expect(() => buildAuditRow(null, { type: 't', subject: 's', decision: 'info', detail: cyclic }, T0)).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST' }))
    expect(() => buildAuditRow(null, { type: 't', subject: 's', decision: 'info', detail: { n: 1n } }, T0)).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST' }))
  })

  it('verifies a stored chain across pages and reports the first bad row', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-audit-'))
    const store = await openSqliteStore(dir)
    try {
      for (let i = 0; i < 23; i++) await store.appendAudit({ type: 't', subject: `s${i}`, decision: 'info', detail: { i } }, T0 + i)
      const r = await verifyStoredAuditChain(store, { pageSize: 5 })
      expect(r).toMatchObject({ ok: true, count: 23, head: { seq: 23 } })
      const Database = (await import('better-sqlite3')).default
      const db = new Database(join(dir, 'keyward.db'))
      db.prepare('UPDATE audit_log SET subject = ? WHERE seq = ?').run('evil', 17)
      db.close()
      expect(await verifyStoredAuditChain(store, { pageSize: 5 })).toMatchObject({ ok: false, seq: 17 })
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
