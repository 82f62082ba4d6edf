import { describe, it, expect } from 'vitest'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { REPO_ROOT } from '../helpers/vectors.js'
import {
  ALLOWLIST_RECORD_SIZE,
  allowlistDigest,
  allowlistFacts,
  decodeAllowlistState,
  encodeAllowlistState,
  parseAllowlistLog,
  replayAllowlistLog,
  stateDigest,
} from '../../src/policy/allowlist-state.js'
import { KeywardError } from '../../src/errors.js'
import { errorCode } from '../helpers/errors.js'

const h = (...parts: Buffer[]): Buffer => {
  const x = createHash('sha256')
  for (const p of parts) x.update(p)
  return x.digest()
}

const E1 = Buffer.from('e2d3f3a6b1c0f4b5a8e9d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6', 'hex')
const E2 = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex')
const TAG = Buffer.from('0123456789abcdef', 'hex')

/** The record built by hand, field by field, from docs/allowlist-state.md. */
function handRecord(digest: Buffer, mode: number, tag: Buffer, denials: bigint, loadTime: bigint): Buffer {
  const den = Buffer.alloc(8)
  den.writeBigUInt64BE(denials)
  const lt = Buffer.alloc(8)
  lt.writeBigUInt64BE(loadTime)
  return Buffer.concat([Buffer.from('keyward-allowlist-state-v1', 'ascii'), Buffer.from([0]), digest, Buffer.from([mode]), tag, den, lt, Buffer.alloc(7)])
}


describe('allowlist digest', () => {
  it('hashes the distinct entries sorted bytewise', () => {
    // E2 (0x0f...) sorts before E1 (0xe2...)
    const expected = h(E2, E1)
    expect(Buffer.from(allowlistDigest([E1, E2, E1]))).toEqual(expected)
    expect(Buffer.from(allowlistDigest([E2.toString('hex').toUpperCase(), E1.toString('hex')]))).toEqual(expected)
    expect(Buffer.from(allowlistDigest([]))).toEqual(h())
  })

  it('rejects entries that are not 32 bytes', () => {
    expect(errorCode(() => allowlistDigest([E1.subarray(1)]))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => allowlistDigest(['zz']))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

describe('state record', () => {
  const digest = h(E2, E1)
  const state = { allowlistDigest: new Uint8Array(digest), mode: 'enforce' as const, progTag: new Uint8Array(TAG), denials: 2n, loadTime: 123_456_789_012n }
  const hand = handRecord(digest, 1, TAG, 2n, 123_456_789_012n)

  it('encodes exactly the documented 91 bytes', () => {
    expect(hand.length).toBe(ALLOWLIST_RECORD_SIZE)
    expect(Buffer.from(encodeAllowlistState(state))).toEqual(hand)
    expect(Buffer.from(encodeAllowlistState({ ...state, mode: 'audit' }))).toEqual(handRecord(digest, 2, TAG, 2n, 123_456_789_012n))
  })

  it('decodes and round-trips, including u64 counters above 2^53', () => {
    expect(decodeAllowlistState(new Uint8Array(hand))).toEqual(state)
    const big = { ...state, denials: (1n << 64n) - 1n, loadTime: 1n << 60n }
    expect(decodeAllowlistState(encodeAllowlistState(big))).toEqual(big)
  })

  it("mode 0 is the agent's unloaded record: decoded, and its facts are not enforcing", () => {
    const unloaded = handRecord(digest, 0, TAG, 2n, 123_456_789_012n)
    expect(decodeAllowlistState(new Uint8Array(unloaded))).toEqual({ ...state, mode: 'unloaded' })
    expect(Buffer.from(encodeAllowlistState({ ...state, mode: 'unloaded' }))).toEqual(unloaded)
    expect(allowlistFacts(new Uint8Array(unloaded)).mode).toBe('unloaded')
  })

  it('state digest is SHA-256 of the record', () => {
    expect(Buffer.from(stateDigest(new Uint8Array(hand)))).toEqual(h(hand))
    expect(allowlistFacts(new Uint8Array(hand))).toEqual({
      present: true, mode: 'enforce', allowlistDigest: digest.toString('hex'), denials: 2n, progTag: TAG.toString('hex'),
      loadTime: 123_456_789_012n, replayed: false, stateDigest: h(hand).toString('hex'),
    })
  })

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, 90)],
    ['trailing byte', (b: Buffer) => Buffer.concat([b, Buffer.from([0])])],
    ['label', (b: Buffer) => (b[0] = 0x4b, b)],
    ['separator', (b: Buffer) => (b[26] = 1, b)],
    ['mode 3', (b: Buffer) => (b[59] = 3, b)],
    ['reserved', (b: Buffer) => (b[90] = 1, b)],
  ])('rejects a bad record: %s', (_n, mutate) => {
    const b = mutate(Buffer.from(hand))
    expect(errorCode(() => decodeAllowlistState(new Uint8Array(b)))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => stateDigest(new Uint8Array(b)))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('refuses to encode out-of-range values', () => {
    expect(errorCode(() => encodeAllowlistState({ ...state, denials: -1n }))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => encodeAllowlistState({ ...state, progTag: new Uint8Array(7) }))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

describe('PCR replay', () => {
  const r1 = handRecord(h(E1), 2, TAG, 0n, 1000n)
  const r2 = handRecord(h(E2, E1), 1, TAG, 0n, 2000n)
  const r3 = handRecord(h(E2, E1), 1, TAG, 1n, 2000n)
  // pcr = SHA-256(pcr || SHA-256(record)), from 32 zero bytes
  const pcr = [r1, r2, r3].reduce((p, r) => h(p, h(r)), Buffer.alloc(32))

  it('replays to the quoted PCR and reports the last record', () => {
    const f = replayAllowlistLog([r1, r2, r3].map((r) => new Uint8Array(r)), pcr.toString('hex'))
    expect(f).toMatchObject({ present: true, replayed: true, mode: 'enforce', denials: 1n, stateDigest: h(r3).toString('hex') })
    expect(replayAllowlistLog([r1.toString('hex'), r2.toString('hex'), r3.toString('hex')], pcr.toString('hex').toUpperCase()).denials).toBe(1n)
  })

  it('an unlogged extend, a dropped or reordered record fails the replay', () => {
    for (const recs of [[r1, r2], [r2, r3], [r2, r1, r3], [r1, r2, r3, r3]]) {
      let err: unknown
      try {
        replayAllowlistLog(recs.map((r) => new Uint8Array(r)), pcr.toString('hex'))
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(KeywardError)
      expect((err as KeywardError).code).toBe('ERR_ALLOWLIST_REPLAY')
      expect((err as KeywardError).detail).toMatchObject({ records: recs.length, quoted: pcr.toString('hex') })
    }
  })

  it('no records replays only to the zero PCR, as an absent allowlist', () => {
    expect(replayAllowlistLog([], '00'.repeat(32))).toMatchObject({ present: false, replayed: true, mode: 'none', denials: -1n })
    expect(errorCode(() => replayAllowlistLog([], pcr.toString('hex')))).toBe('ERR_ALLOWLIST_REPLAY')
  })

  it('rejects a malformed PCR value or record', () => {
    expect(errorCode(() => replayAllowlistLog([r1], 'ab'))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => replayAllowlistLog(['xyz'], pcr.toString('hex')))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => replayAllowlistLog([r1.subarray(1)], pcr.toString('hex')))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('parses the agent log (JSON lines, consecutive seq)', () => {
    const log = [r1, r2, r3].map((r, i) => JSON.stringify({ seq: i + 4, record: r.toString('hex') })).join('\n') + '\n'
    expect(parseAllowlistLog(log).map((b) => Buffer.from(b))).toEqual([r1, r2, r3])
    const gap = [r1, r3].map((r, i) => JSON.stringify({ seq: i * 2, record: r.toString('hex') })).join('\n')
    expect(errorCode(() => parseAllowlistLog(gap))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => parseAllowlistLog('{"seq":0}'))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => parseAllowlistLog('nope'))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => parseAllowlistLog(JSON.stringify({ seq: 0, record: 'abcd' })))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

// The C agent (enclave-client/ebpf, built by its Makefile) implements the same document: when it
// is built, its `encode` output must equal ours byte for byte.
const AGENT = resolve(REPO_ROOT, 'enclave-client/ebpf/build/keyward-allowlist')
describe.skipIf(!existsSync(AGENT))('cross-check with the C agent [needs:ebpf]', () => {
  it('agent encode == encodeAllowlistState', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-allowlist-'))
    try {
      const file = join(dir, 'allowlist.txt')
      writeFileSync(file, `# approved\n${E1.toString('hex')}  /usr/bin/python3\n${E2.toString('hex').toUpperCase()} /usr/local/bin/agent\n`)
      const out = JSON.parse(
        execFileSync(AGENT, ['encode', '--allowlist', file, '--mode', 'audit', '--tag', TAG.toString('hex'), '--denials', '9007199254740993', '--load-time', '42'], { encoding: 'utf8', timeout: 5000 }),
      ) as { record: string; stateDigest: string; allowlistDigest: string }
      const ours = encodeAllowlistState({ allowlistDigest: allowlistDigest([E1, E2]), mode: 'audit', progTag: new Uint8Array(TAG), denials: 9007199254740993n, loadTime: 42n })
      expect(out.record).toBe(Buffer.from(ours).toString('hex'))
      expect(out.allowlistDigest).toBe(h(E2, E1).toString('hex'))
      expect(out.stateDigest).toBe(Buffer.from(stateDigest(ours)).toString('hex'))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
