// Generic COSE_Sign1 and strict CBOR behaviour, independent of Nitro.
import { describe, it, expect } from 'vitest'
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto'
import { encode } from 'cborg'
import { decodeCoseSign1, requireCoseAlg, sigStructure1, verifyCoseSign1, COSE_ALG } from '../../../src/verifiers/common/cose.js'
import { decodeCborStrict } from '../../../src/protocol/cbor.js'
import { concatBytes, toHex } from '../../../src/util/bytes.js'
import { errorCode } from '../../helpers/errors.js'

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))


describe('strict CBOR', () => {
  it('decodes preferred encodings into Maps, bigints and bytes', () => {
    const v = decodeCborStrict(hex('a3 01 38 22 63 6b6579 43 010203 1b 0020000000000000 f6'))
    expect(v).toBeInstanceOf(Map)
    const m = v as Map<unknown, unknown>
    expect(m.get(1)).toBe(-35)
    expect(m.get('key')).toEqual(new Uint8Array([1, 2, 3]))
    expect(m.get(9007199254740992n)).toBeNull()
  })

  it.each([
    ['non-minimal uint', '18 01'],
    ['non-minimal length', '59 0001 00'],
    ['duplicate text key', 'a2 61 61 01 61 61 02'],
    ['duplicate int key', 'a2 01 01 01 02'],
    ['byte-string key', 'a1 41 00 01'],
    ['array key', 'a1 80 01'],
    ['indefinite array', '9f 01 ff'],
    ['indefinite map (not opted in)', 'bf 01 02 ff'],
    ['indefinite bytes', '5f 41 00 ff'],
    ['undefined', 'f7'],
    ['NaN', 'f9 7e00'],
    ['Infinity', 'f9 7c00'],
    ['tag', 'c1 01'],
    ['trailing bytes', '01 02'],
    ['truncated', '43 0102'],
    ['lone break', 'ff'],
    ['reserved additional info', '1c'],
    ['empty', ''],
  ])('rejects %s', (_n, h) => {
    expect(errorCode(() => decodeCborStrict(hex(h)))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('accepts indefinite maps only when asked, and still rejects duplicates and indefinite arrays in them', () => {
    expect(decodeCborStrict(hex('bf 01 02 ff'), { allowIndefiniteMaps: true })).toEqual(new Map([[1, 2]]))
    expect(errorCode(() => decodeCborStrict(hex('bf 01 02 01 03 ff'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(hex('bf 01 9f ff ff'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(hex('bf 01 5f 41 00 ff ff'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(hex('bf 01 7f 61 61 ff ff'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(hex('bf 01 02'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(hex('a1 01 ff'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(hex('bf 01 ff ff'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(hex('82 a1 01 ff 02'), { allowIndefiniteMaps: true }))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('turns deep nesting and oversize input into a typed error, never a RangeError', () => {
    const deep = concatBytes(new Uint8Array(200_000).fill(0x81), new Uint8Array([0x01]))
    expect(errorCode(() => decodeCborStrict(deep, { maxBytes: 1 << 20 }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => decodeCborStrict(new Uint8Array(10), { maxBytes: 5 }))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

describe('COSE_Sign1', () => {
  it('encodes the Sig_structure as RFC 9052 §4.4 specifies', () => {
    // ["Signature1", h'a10126', h'', h'7061796c6f6164']
    expect(toHex(sigStructure1(hex('a10126'), new TextEncoder().encode('payload')))).toBe(
      '84' + '6a' + Buffer.from('Signature1').toString('hex') + '43a10126' + '40' + '47' + Buffer.from('payload').toString('hex'),
    )
  })

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
  const protectedBytes = hex('a10126') // {1: -7} ES256
  const payload = new TextEncoder().encode('This is the content.')
  const sig = new Uint8Array(cryptoSign('sha256', sigStructure1(protectedBytes, payload), { key: privateKey, dsaEncoding: 'ieee-p1363' }))
  const msg = encode([protectedBytes, new Map([[4, new Uint8Array([0x31, 0x31])]]), payload, sig])

  it('verifies tagged and untagged messages and reads the alg from the protected header', () => {
    for (const bytes of [msg, concatBytes(new Uint8Array([0xd2]), msg)]) {
      const m = decodeCoseSign1(bytes)
      expect(m.tagged).toBe(bytes[0] === 0xd2)
      expect(requireCoseAlg(m, ['ES256', 'ES384'])).toBe('ES256')
      expect(verifyCoseSign1(m, publicKey, 'ES256')).toBe(true)
      expect(m.untrustedUnprotectedHeader.get(4)).toEqual(new Uint8Array([0x31, 0x31]))
    }
  })

  it('fails closed: wrong key, wrong curve for the alg, wrong length, external AAD, changed payload', () => {
    const m = decodeCoseSign1(msg)
    expect(verifyCoseSign1(m, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey, 'ES256')).toBe(false)
    expect(verifyCoseSign1(m, p384.publicKey, 'ES384')).toBe(false)
    expect(verifyCoseSign1(m, publicKey, 'ES384')).toBe(false)
    expect(verifyCoseSign1({ ...m, signature: m.signature.subarray(1) }, publicKey, 'ES256')).toBe(false)
    expect(verifyCoseSign1(m, publicKey, 'ES256', new Uint8Array([1]))).toBe(false)
    expect(verifyCoseSign1({ ...m, payload: new Uint8Array([1]) }, publicKey, 'ES256')).toBe(false)
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey
    expect(verifyCoseSign1(m, rsa, 'ES256')).toBe(false)
  })

  it('allow-lists algorithms: disallowed → ERR_EVIDENCE_UNSUPPORTED, missing → ERR_EVIDENCE_MALFORMED, crit → unsupported', () => {
    const m = decodeCoseSign1(msg)
    expect(errorCode(() => requireCoseAlg(m, ['ES384']))).toBe('ERR_EVIDENCE_UNSUPPORTED')
    const none = decodeCoseSign1(encode([new Uint8Array(0), new Map([[1, COSE_ALG.ES256]]), payload, sig]))
    expect(errorCode(() => requireCoseAlg(none, ['ES256']))).toBe('ERR_EVIDENCE_MALFORMED')
    const crit = decodeCoseSign1(encode([encode(new Map<number, unknown>([[1, -7], [2, [4]]]) as never), new Map(), payload, sig]))
    expect(errorCode(() => requireCoseAlg(crit, ['ES256']))).toBe('ERR_EVIDENCE_UNSUPPORTED')
    const typed = decodeCoseSign1(encode([encode(new Map<number, unknown>([[1, new Uint8Array(1)]]) as never), new Map(), payload, sig]))
    expect(errorCode(() => requireCoseAlg(typed, ['ES256']))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it.each([
    ['label in both buckets', () => encode([protectedBytes, new Map([[1, -7]]), payload, sig])],
    ['unprotected null', () => encode([protectedBytes, null, payload, sig])],
    ['protected as map', () => encode([new Map([[1, -7]]), new Map(), payload, sig])],
    ['protected bstr not a map', () => encode([encode(5), new Map(), payload, sig])],
    ['detached payload', () => encode([protectedBytes, new Map(), null, sig])],
    ['signature not bytes', () => encode([protectedBytes, new Map(), payload, 1])],
    ['COSE_Sign (tag 98)', () => concatBytes(hex('d862'), msg)],
    ['not an array', () => encode('x')],
  ])('rejects %s as malformed', (_n, mk) => {
    expect(errorCode(() => decodeCoseSign1(mk()))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})
