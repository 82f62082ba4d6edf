// `keyward audit verify`: walks the whole stored chain page by page (bounded memory).
import { verifyAuditChain, type AuditChainResult } from './chain.js'
import type { Store } from '../store/types.js'

/** Verifies every stored audit row from genesis; see verifyAuditChain for what is not detected. */
export async function verifyStoredAuditChain(store: Store, opts: { pageSize?: number } = {}): Promise<AuditChainResult> {
  const pageSize = Math.max(1, Math.min(opts.pageSize ?? 5000, 100_000))
  let after: { seq: number; hash: string } | undefined
  let count = 0
  for (;;) {
    const rows = await store.listAudit({ afterSeq: after?.seq ?? 0, limit: pageSize })
    if (rows.length === 0) break
    const r = verifyAuditChain(rows, after === undefined ? {} : { after })
    if (!r.ok) return r
    count += r.count
    after = r.head ?? after
    if (rows.length < pageSize) break
  }
  return { ok: true, count, head: after ?? null }
}
