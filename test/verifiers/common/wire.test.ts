// The verifier registry and the one wire decoder (src/verifiers/common/wire.ts), through each
// TEE's decode(): every base64 field is refused by name when it is not base64, empty or too long,
// unknown members are refused, and line-wrapped base64 decodes to the same evidence.
import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { defaultVerifiers } from '../../../src/verifiers/index.js'
import { TEES, type Tee } from '../../../src/protocol/tee.js'
import { KeywardError } from '../../../src/errors.js'
import { readManifest, readVector, vectorPath } from '../../helpers/vectors.js'
import { errorCode } from '../../helpers/errors.js'
import { evidenceOf, vector } from '../sev-snp/helpers.js'

const registry = defaultVerifiers()
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
const nitroDoc = readManifest<{ vectors: { file: string; genuine: boolean }[] }>('nitro').vectors.find((v) => v.genuine)!.file
const swtpm = (f: string): string => b64(new Uint8Array(readFileSync(vectorPath('tpm', 'swtpm/rsa', f))))

/** A good wire evidence per TEE, and its base64 fields (path as decode names them). */
const GOOD: Record<Tee, { wire: () => Record<string, unknown>; fields: string[] }> = {
  tpm: {
    wire: () => ({ ak: swtpm('ak.pub'), quote: swtpm('0001/quote.msg'), signature: swtpm('0001/quote.sig'), pcrs: swtpm('0001/quote.pcrs') }),
    fields: ['ak', 'quote', 'signature', 'pcrs'],
  },
  nitro: { wire: () => ({ document: b64(readVector('nitro', nitroDoc)) }), fields: ['document'] },
  'sev-snp': { wire: () => evidenceOf(vector('milan-v3-oak')), fields: ['report', 'vcek', 'chain[1]'] },
}

const SHAPES: Record<Tee, string> = { tpm: '{ak, quote, signature, pcrs, eventLog?} strings', nitro: '{"document": base64}', 'sev-snp': '{report, vcek?, certTable?, chain?}' }

/** Sets the field at a decode-style path (`chain[1]`) of a wire object. */
function withField(wire: Record<string, unknown>, path: string, value: string): Record<string, unknown> {
  const m = /^(\w+)\[(\d+)\]$/.exec(path)
  if (!m) return { ...wire, [path]: value }
  const list = [...(wire[m[1]!] as string[])]
  list[Number(m[2])] = value
  return { ...wire, [m[1]!]: list }
}

function decodeError(tee: Tee, wire: unknown): KeywardError {
  try {
    registry[tee].decode(wire)
  } catch (e) {
    expect(e).toBeInstanceOf(KeywardError)
    return e as KeywardError
  }
  throw new Error('decode accepted the evidence')
}

describe('the verifier registry', () => {
  it.each(TEES)('%s: its entry is that TEE’s verifier and decodes its evidence', (tee) => {
    expect(registry[tee].tee).toBe(tee)
    expect(errorCode(() => registry[tee].decode(GOOD[tee].wire()))).toBe('OK')
  })
  it('a verifier refuses another TEE’s evidence', () => {
    expect(decodeError('tpm', GOOD.nitro.wire()).code).toBe('ERR_EVIDENCE_MALFORMED')
    expect(decodeError('nitro', GOOD['sev-snp'].wire()).code).toBe('ERR_EVIDENCE_MALFORMED')
    expect(decodeError('sev-snp', GOOD.tpm.wire()).code).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

describe('wire decoding of base64 evidence fields', () => {
  const cases = TEES.flatMap((tee) => GOOD[tee].fields.map((field) => ({ tee, field })))
  it.each(cases)('$tee $field: not base64, or empty, is ERR_EVIDENCE_MALFORMED naming the field', ({ tee, field }) => {
    for (const bad of ['not*base64', 'AAAAA', '']) {
      const e = decodeError(tee, withField(GOOD[tee].wire(), field, bad))
      expect(e.code).toBe('ERR_EVIDENCE_MALFORMED')
      expect(e.message).toBe(`${tee} evidence: ${field} is not base64`)
    }
  })
  it.each(TEES)('%s: a field longer than its bound is refused before it is decoded', (tee) => {
    const field = GOOD[tee].fields[0]!
    expect(decodeError(tee, withField(GOOD[tee].wire(), field, 'A'.repeat(5 * 1024 * 1024))).message).toBe(`${tee} evidence: expected ${SHAPES[tee]}`)
  })
  it.each(TEES)('%s: unknown members and non-string fields are refused', (tee) => {
    expect(decodeError(tee, { ...GOOD[tee].wire(), extra: 'AA==' }).message).toMatch(new RegExp(`^${tee} evidence: expected `))
    expect(decodeError(tee, withField(GOOD[tee].wire(), GOOD[tee].fields[0]!, 7 as unknown as string)).code).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it.each(TEES)('%s: line-wrapped base64 decodes to the same evidence', (tee) => {
    const wrap = (s: string): string => s.replace(/.{1,76}/g, '$&\r\n')
    const wire = GOOD[tee].wire()
    const wrapped = Object.fromEntries(Object.entries(wire).map(([k, v]) => [k, Array.isArray(v) ? v.map((x: string) => wrap(x)) : wrap(v as string)]))
    expect(registry[tee].decode(wrapped)).toEqual(registry[tee].decode(wire))
  })
})
