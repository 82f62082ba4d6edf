// The allowlist state formats and their judgement (docs/allowlist-state.md): records and the
// statement built by hand, field by field, from the document; the C agent's output (when built)
// judged by the same code; and every shape the broker must refuse.
import { describe, it, expect } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { REPO_ROOT } from '../helpers/vectors.js'
import { judgeAllowlistState } from '../../src/policy/allowlist-state.js'
import { ALLOWLIST_RECORD_SIZE, STATEMENT_SIZE, allowlistDigest, decodeRecord, decodeStatement, encodeRecord, statementDigest } from '../../src/protocol/allowlist-state.js'
import { KeywardError } from '../../src/errors.js'
import { errorCode } from '../helpers/errors.js'
import { makeAgent } from '../helpers/allowlist-agent.js'

const h = (...parts: Uint8Array[]): Buffer => {
  const x = createHash('sha256')
  for (const p of parts) x.update(p)
  return x.digest()
}
const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(v)
  return b
}

const E1 = Buffer.from('e2d3f3a6b1c0f4b5a8e9d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6', 'hex')
const E2 = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex')
const TAG = Buffer.from('0123456789abcdef', 'hex')
const DIGEST = h(E2, E1)
const PROGRAM = { allowlistDigest: new Uint8Array(DIGEST), mode: 'enforce' as const, progTag: new Uint8Array(TAG), loadTime: 123_456_789_012n }
const NONCE = new Uint8Array(randomBytes(32))
const JKT = new Uint8Array(randomBytes(32))

/** PCR after extending each record's SHA-256 from 32 zero bytes. */
const pcrOf = (records: Uint8Array[]): Uint8Array => new Uint8Array(records.reduce<Buffer>((p, r) => h(p, h(r)), Buffer.alloc(32)))

describe('allowlist digest', () => {
  it('hashes the distinct entries sorted bytewise', () => {
    expect(Buffer.from(allowlistDigest([E1, E2, E1]))).toEqual(DIGEST)
    expect(Buffer.from(allowlistDigest([E2.toString('hex').toUpperCase(), E1.toString('hex')]))).toEqual(DIGEST)
    expect(Buffer.from(allowlistDigest([]))).toEqual(h())
    expect(errorCode(() => allowlistDigest([E1.subarray(1)]))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

describe('records and statement, byte for byte', () => {
  const agent = makeAgent(PROGRAM)

  it('LOAD and SEPARATOR are the documented 136 bytes', () => {
    const load = Buffer.concat([Buffer.from('keyward-allowlist-v2'), Buffer.from([0, 1]), DIGEST, Buffer.from([1]), TAG, u64(PROGRAM.loadTime), agent.publicPoint])
    const sep = Buffer.concat([Buffer.from('keyward-allowlist-v2'), Buffer.from([0, 2]), Buffer.alloc(114)])
    expect(load.length).toBe(ALLOWLIST_RECORD_SIZE)
    expect(Buffer.from(agent.load)).toEqual(load)
    expect(Buffer.from(agent.separator)).toEqual(sep)
    expect(decodeRecord(new Uint8Array(load))).toEqual({ kind: 'load', ...PROGRAM, agentKey: agent.publicPoint })
    expect(decodeRecord(new Uint8Array(sep))).toEqual({ kind: 'separator' })
  })

  it('the statement is the documented 240 bytes; its digest is SHA-256 of all of them', () => {
    const st = agent.statement(NONCE, JKT, { denials: 5n, cgroupId: 77n, cgroupDenials: 2n, linkId: 3, progId: 4 })
    const body = Buffer.concat([
      Buffer.from('keyward-allowlist-statement-v2'), Buffer.from([0]), NONCE, JKT, DIGEST, Buffer.from([1]), TAG,
      u64(PROGRAM.loadTime), u64(5n), u64(77n), u64(2n), Buffer.from([0, 0, 0, 3, 0, 0, 0, 4]),
    ])
    expect(st.length).toBe(STATEMENT_SIZE)
    expect(Buffer.from(st.subarray(0, 176))).toEqual(body)
    expect(decodeStatement(st).body).toMatchObject({ denials: 5n, cgroupId: 77n, cgroupDenials: 2n, linkId: 3, progId: 4, mode: 'enforce' })
    expect(Buffer.from(statementDigest(st))).toEqual(h(st))
  })

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, 135)],
    ['trailing byte', (b: Buffer) => Buffer.concat([b, Buffer.from([0])])],
    ['label', (b: Buffer) => ((b[0] = 0x4b), b)],
    ['zero byte', (b: Buffer) => ((b[20] = 1), b)],
    ['kind 3', (b: Buffer) => ((b[21] = 3), b)],
    ['mode 3', (b: Buffer) => ((b[54] = 3), b)],
    ['compressed point', (b: Buffer) => ((b[71] = 2), b)],
  ])('rejects a bad load record: %s', (_n, mutate) => {
    expect(errorCode(() => decodeRecord(new Uint8Array(mutate(Buffer.from(agent.load)))))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('rejects a separator with anything after its kind, and a malformed statement', () => {
    const sep = Buffer.from(agent.separator)
    sep[135] = 1
    expect(errorCode(() => decodeRecord(new Uint8Array(sep)))).toBe('ERR_EVIDENCE_MALFORMED')
    const st = Buffer.from(agent.statement(NONCE, JKT))
    expect(errorCode(() => decodeStatement(new Uint8Array(st.subarray(1))))).toBe('ERR_EVIDENCE_MALFORMED')
    st[127] = 0
    expect(errorCode(() => decodeStatement(new Uint8Array(st)))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

describe('judging the state', () => {
  const agent = makeAgent(PROGRAM)
  const judge = (records: Uint8Array[], statement: Uint8Array | undefined, extended: Uint8Array[] = records) =>
    judgeAllowlistState({ records, statement }, pcrOf(extended), { nonce: NONCE, jkt: JKT })
  const reason = (f: () => unknown): string | undefined => {
    try {
      f()
    } catch (e) {
      if (e instanceof KeywardError) return e.code === 'ERR_ALLOWLIST_UNTRUSTED' ? String((e.detail as { reason: string }).reason) : e.code
    }
    return undefined
  }

  it('LOAD, SEPARATOR and a statement by the load key for this challenge: the statement facts', () => {
    const st = agent.statement(NONCE, JKT, { denials: 2n })
    expect(judge(agent.records, st)).toEqual({
      present: true, mode: 'enforce', allowlistDigest: DIGEST.toString('hex'), denials: 2n, progTag: TAG.toString('hex'),
      loadTime: PROGRAM.loadTime, replayed: true, stateDigest: h(st).toString('hex'), cgroupDenials: -1n,
    })
  })

  it('no records and a zero PCR: no agent, absent facts; a statement then is refused', () => {
    expect(judge([], undefined)).toMatchObject({ present: false, mode: 'none', denials: -1n })
    expect(reason(() => judge([], agent.statement(NONCE, JKT)))).toBe('no-agent')
  })

  it('every other shape is untrusted, whatever the records say', () => {
    const forger = makeAgent(PROGRAM)
    const st = agent.statement(NONCE, JKT)
    expect(reason(() => judge([...agent.records, forger.load], st))).toBe('after-separator')
    expect(reason(() => judge([...agent.records, agent.separator], st))).toBe('after-separator')
    // garbage after the separator is still "after the separator", not a parse error
    expect(reason(() => judge([...agent.records, new Uint8Array(5)], st))).toBe('after-separator')
    expect(reason(() => judge([agent.load, forger.load, agent.separator], st))).toBe('second-load')
    expect(reason(() => judge([agent.load], st))).toBe('no-separator')
    expect(reason(() => judge([agent.separator, agent.load], st))).toBe('no-load-record')
    expect(reason(() => judge(agent.records, undefined))).toBe('no-statement')
  })

  it('a statement by another key, for another nonce or key, or about another program is untrusted', () => {
    const other = makeAgent(PROGRAM)
    expect(reason(() => judge(agent.records, other.statement(NONCE, JKT)))).toBe('statement-signature')
    const flipped = agent.statement(NONCE, JKT)
    flipped[239] = flipped[239]! ^ 1
    expect(reason(() => judge(agent.records, flipped))).toBe('statement-signature')
    expect(reason(() => judge(agent.records, agent.statement(new Uint8Array(32), JKT)))).toBe('statement-binding')
    expect(reason(() => judge(agent.records, agent.statement(NONCE, new Uint8Array(32))))).toBe('statement-binding')
    expect(reason(() => judge(agent.records, agent.statement(NONCE, JKT, { mode: 'audit' })))).toBe('statement-program')
    expect(reason(() => judge(agent.records, agent.statement(NONCE, JKT, { loadTime: 1n })))).toBe('statement-program')
    expect(reason(() => judge(agent.records, agent.statement(NONCE, JKT, { progTag: new Uint8Array(8) })))).toBe('statement-program')
  })

  it('records that do not replay to the quoted PCR are ERR_ALLOWLIST_REPLAY', () => {
    const st = agent.statement(NONCE, JKT)
    const forger = makeAgent(PROGRAM)
    // extended after the separator but left out of the log
    expect(reason(() => judge(agent.records, st, [...agent.records, forger.load]))).toBe('ERR_ALLOWLIST_REPLAY')
    expect(reason(() => judge([agent.separator, agent.load], st, agent.records))).toBe('ERR_ALLOWLIST_REPLAY')
    expect(errorCode(() => judgeAllowlistState({ records: agent.records, statement: st }, new Uint8Array([0xab]), { nonce: NONCE, jkt: JKT }))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('an audit-mode load is reported as such (policies decide)', () => {
    const audit = makeAgent({ ...PROGRAM, mode: 'audit' })
    expect(judge(audit.records, audit.statement(NONCE, JKT)).mode).toBe('audit')
    expect(encodeRecord({ kind: 'separator' })).toEqual(audit.separator)
  })
})

// The C agent (enclave-client/ebpf, built by its Makefile) implements the same document: what its
// `encode` prints (records with a fresh key, and a statement signed with it) must judge as ours.
const AGENT = process.env.KEYWARD_ALLOWLIST_AGENT ?? resolve(REPO_ROOT, 'enclave-client/ebpf/build/keyward-allowlist')
describe.skipIf(!existsSync(AGENT))('cross-check with the C agent', () => {
  it('agent encode: documented records and a statement that verifies under the load record key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-allowlist-'))
    try {
      const file = join(dir, 'allowlist.txt')
      writeFileSync(file, `# approved\n${E1.toString('hex')}  /usr/bin/python3\n${E2.toString('hex').toUpperCase()} /usr/local/bin/agent\n`)
      const args = ['encode', '--allowlist', file, '--mode', 'audit', '--tag', TAG.toString('hex'), '--load-time', '42', '--denials', '9007199254740993', '--nonce', Buffer.from(NONCE).toString('hex'), '--jkt', Buffer.from(JKT).toString('hex')]
      const out = JSON.parse(execFileSync(AGENT, args, { encoding: 'utf8', timeout: 5000 })) as { records: string[]; statement: string }
      const records = out.records.map((r) => new Uint8Array(Buffer.from(r, 'hex')))
      const load = decodeRecord(records[0]!)
      expect(load).toMatchObject({ kind: 'load', mode: 'audit', loadTime: 42n })
      expect(Buffer.from(records[0]!.subarray(0, 71))).toEqual(Buffer.from(encodeRecord({ kind: 'load', allowlistDigest: DIGEST, mode: 'audit', progTag: TAG, loadTime: 42n, agentKey: (load as { agentKey: Uint8Array }).agentKey }).subarray(0, 71)))
      const facts = judgeAllowlistState({ records, statement: new Uint8Array(Buffer.from(out.statement, 'hex')) }, pcrOf(records), { nonce: NONCE, jkt: JKT })
      expect(facts).toMatchObject({ present: true, mode: 'audit', allowlistDigest: DIGEST.toString('hex'), denials: 9007199254740993n, loadTime: 42n, cgroupDenials: -1n })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
