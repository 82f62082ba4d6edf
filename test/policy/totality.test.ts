// Parsers are total: any input yields a result or a KeywardError, never a RangeError/TypeError.
// Seeded mutations of valid inputs (deterministic, so a failure reproduces).
import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { KeywardError } from '../../src/errors.js'
import { compilePolicy, evaluatePolicy } from '../../src/policy/engine.js'
import { decodeRecord, decodeStatement } from '../../src/protocol/allowlist-state.js'
import { makeAgent } from '../helpers/allowlist-agent.js'
import { importNitroMeasurements, importSnpMeasurement, importTpmPcrs } from '../../src/policy/reference-values.js'
import { REPO_ROOT } from '../helpers/vectors.js'
import { claims, NOW } from './helpers.js'

function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32)
}

function total(f: () => unknown): 'ok' | 'error' {
  try {
    f()
    return 'ok'
  } catch (e) {
    if (!(e instanceof KeywardError)) throw e
    return 'error'
  }
}

const CHARS = ' \n\t:-[]{}"\'|>&*!#%@`,?=<.()0123456789abcxyz\\\u00e9\u0000'

describe('totality', () => {
  const source = readFileSync(resolve(REPO_ROOT, 'policies/sev-snp-guest.yaml'), 'utf8')

  it('compilePolicy on 1000 mutated policies', () => {
    const rnd = prng(8)
    const seen = { ok: 0, error: 0 }
    for (let i = 0; i < 1000; i++) {
      const chars = [...source]
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) {
        const at = Math.floor(rnd() * chars.length)
        const op = rnd()
        if (op < 0.4) chars[at] = CHARS[Math.floor(rnd() * CHARS.length)]!
        else if (op < 0.7) chars.splice(at, 1 + Math.floor(rnd() * 8))
        else chars.splice(at, 0, CHARS[Math.floor(rnd() * CHARS.length)]!)
      }
      seen[total(() => compilePolicy(chars.join('')))]++
    }
    // both outcomes occur, so the mutations reach past the YAML parser
    expect(seen.ok).toBeGreaterThan(0)
    expect(seen.error).toBeGreaterThan(100)
  })

  it('evaluatePolicy on odd claims never throws', () => {
    const p = compilePolicy(source)
    const odd = [{}, { reportedTcb: null }, { reportedTcb: { snp: 'x' } }, { reportedTcb: { snp: 1e308 } }, { vmpl: [0] }, { reportedTcb: [] }, { reportedTcb: { snp: -0 } }]
    for (const details of odd) {
      const d = evaluatePolicy(p, { claims: claims('sev-snp', details as never), refs: {}, now: NOW })
      expect(d.allow).toBe(false)
      expect(d.failures.length).toBeGreaterThan(0)
    }
  })

  it('allowlist record and statement decoders on random and bit-flipped input', () => {
    const rnd = prng(15)
    const agent = makeAgent({ allowlistDigest: new Uint8Array(32).fill(3), mode: 'enforce', progTag: new Uint8Array(8), loadTime: 1n })
    const goods = [agent.load, agent.separator, agent.statement(new Uint8Array(32), new Uint8Array(32))]
    for (let i = 0; i < 2000; i++) {
      const good = goods[i % 3]!
      const len = rnd() < 0.5 ? good.length : Math.floor(rnd() * 300)
      const b = rnd() < 0.5 ? new Uint8Array(len).map(() => Math.floor(rnd() * 256)) : good.slice()
      if (b.length === good.length) b[Math.floor(rnd() * b.length)]! ^= 1 << Math.floor(rnd() * 8)
      total(() => decodeRecord(b))
      total(() => decodeStatement(b))
    }
    // The unmutated inputs decode, so the mutations above started from well-formed bytes.
    expect(decodeRecord(agent.load).kind).toBe('load')
    expect(decodeRecord(agent.separator).kind).toBe('separator')
    expect(decodeStatement(goods[2]!).signature.length).toBeGreaterThan(0)
  })

  it('importers on garbage', () => {
    for (const s of ['', 'null', '[]', '{}', '{"Measurements":null}', '{"Measurements":{"HashAlgorithm":1}}', 'sha256: [1]', 'sha256:\n  x : 0x00', '\u0000', '*a', '&a [*a, *a]']) {
      total(() => importNitroMeasurements(s, { createdBy: 't', now: 0 }))
      total(() => importSnpMeasurement(s, { createdBy: 't', now: 0 }))
      total(() => importTpmPcrs(s, { createdBy: 't', now: 0 }))
    }
  })
})
