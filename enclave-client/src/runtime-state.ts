// Runtime state (the host's exec-allowlist, docs/allowlist-state.md) sent with /v1/attest: the
// agent's boot records and a statement it signs for this challenge and key. The statement's
// digest is the `state` part of the binding digest.
import { createConnection } from 'node:net'
import { ALLOWLIST_RECORD_SIZE, STATEMENT_SIZE, statementDigest } from '../../src/protocol/allowlist-state.js'
import { fromHex } from '../../src/util/bytes.js'
import { ClientConfigError, isKeywardError } from './errors.js'

export interface RuntimeState {
  allowlist: { records: string[]; statement: string }
}

/** What the statement must cover: this attestation's challenge nonce and key thumbprint (raw). */
export interface StatementRequest {
  nonce: Uint8Array
  jkt: Uint8Array
}

/**
 * Where the runtime state comes from, asked afresh before every attestation: the agent's socket
 * path (/run/keyward/agent.sock) or a provider.
 */
export type RuntimeStateSource = string | ((req: StatementRequest) => Promise<RuntimeState | undefined>)

/** The binding's `state` part: SHA-256 of the statement, validated; undefined when there is none. */
export function runtimeStateDigest(s: RuntimeState | undefined): Uint8Array | undefined {
  if (s === undefined) return undefined
  const st = fromHex(s.allowlist.statement)
  if (!st) throw new ClientConfigError('runtime state: statement is not hex')
  try {
    return statementDigest(st)
  } catch (e) {
    throw new ClientConfigError(`runtime state: ${isKeywardError(e) ? e.message : 'bad statement'}`, { cause: e })
  }
}

const MAX_REPLY = 64 * 1024

function checkReply(text: string, path: string): RuntimeState {
  const bad = (why: string): ClientConfigError => new ClientConfigError(`allowlist agent ${path}: ${why}`)
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw bad('reply is not JSON')
  }
  const o = v as { error?: unknown; records?: unknown; statement?: unknown } | null
  if (o && typeof o.error === 'string') throw bad(o.error.slice(0, 200))
  const recHex = new RegExp(`^[0-9a-f]{${2 * ALLOWLIST_RECORD_SIZE}}$`)
  const stHex = new RegExp(`^[0-9a-f]{${2 * STATEMENT_SIZE}}$`)
  if (!o || !Array.isArray(o.records) || !o.records.every((r) => typeof r === 'string' && recHex.test(r)) || typeof o.statement !== 'string' || !stHex.test(o.statement)) {
    throw bad('reply is not {"records": [hex], "statement": hex}')
  }
  return { allowlist: { records: o.records as string[], statement: o.statement } }
}

/** Asks the agent on its unix socket for a statement covering nonce and jkt (64 bytes in, one JSON line out). */
export function requestAgentStatement(path: string, req: StatementRequest): Promise<RuntimeState> {
  if (req.nonce.length !== 32 || req.jkt.length !== 32) throw new ClientConfigError('statement request: nonce and jkt are 32 bytes each')
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const sock = createConnection({ path })
    sock.setTimeout(10_000, () => sock.destroy(new Error('timed out')))
    sock.on('connect', () => sock.end(Buffer.concat([req.nonce, req.jkt])))
    sock.on('data', (d: Buffer) => {
      size += d.length
      if (size > MAX_REPLY) sock.destroy(new Error('reply too large'))
      else chunks.push(d)
    })
    sock.on('error', (e) => reject(new ClientConfigError(`allowlist agent ${path}: ${e.message}`, { cause: e })))
    sock.on('end', () => {
      try {
        resolve(checkReply(Buffer.concat(chunks).toString('utf8'), path))
      } catch (e) {
        reject(e)
      }
    })
  })
}
