// Tampered and malformed documents: each is rejected with a specific code, in the verifier's
// fixed order (shape → alg → signature → chain → payload fields → binding). Genuine vectors are
// edited for checks before and at the signature; test-only signed documents reach the later ones.
import { describe, it, expect, beforeAll } from 'vitest'
import { encode } from 'cborg'
import { readVector, readManifest } from '../../helpers/vectors.js'
import { createNitroVerifier, parseNitroDocument } from '../../../src/verifiers/nitro/index.js'
import { errorCodeOf } from '../../helpers/errors.js'
import { concatBytes } from '../../../src/util/bytes.js'
import type { CborMap, CborValue } from '../../../src/protocol/cbor.js'
import { decodeCoseSign1 } from '../../../src/verifiers/common/cose.js'
import type { VerifyContext } from '../../../src/verifiers/types.js'
import {
  testOnlyPki, testOnlyCert, testOnlyDocument, testOnlyPayload, signCose, reassemble, payloadOf,
  type TestOnlyPki,
} from './fixtures.js'

const nitroVerifier = createNitroVerifier()

const manifest = readManifest<{ vectors: { file: string; timestamp_ms: number }[] }>('nitro')
const GOOD = 'anjuna-20240124-181425-debug.cbor'
const goodAt = new Date(manifest.vectors.find((v) => v.file === GOOD)!.timestamp_ms)
const good = readVector('nitro', GOOD)
const goodCose = decodeCoseSign1(good)

const codeOf = (bytes: Uint8Array, ctx: VerifyContext): Promise<string> => errorCodeOf(() => nitroVerifier.verify(parseNitroDocument(bytes), ctx))
const genuineCode = (bytes: Uint8Array): Promise<string> => codeOf(bytes, { now: goodAt })

function withPayload(edit: (m: Map<string, CborValue>) => void): Uint8Array {
  const m = payloadOf(good)
  edit(m)
  return reassemble({ protectedBytes: goodCose.protectedBytes, payload: encode(m), signature: goodCose.signature })
}

describe('nitro tampering of a genuine document', () => {
  it('control: reassembling the untouched parts still verifies', async () => {
    expect(await genuineCode(reassemble(goodCose))).toBe('OK')
    expect(await genuineCode(concatBytes(new Uint8Array([0xd2]), good))).toBe('OK') // tagged COSE_Sign1
  })

  const flipFirst = (v: CborValue | undefined): Uint8Array => {
    const b = Uint8Array.from(v as Uint8Array)
    b[0]! ^= 1
    return b
  }
  const edits: [string, (m: Map<string, CborValue>) => void][] = [
    ['module_id', (m) => m.set('module_id', 'i-0000000000000000-enc0000000000000000')],
    ['digest', (m) => m.set('digest', 'SHA512')],
    ['timestamp', (m) => m.set('timestamp', (m.get('timestamp') as number) + 1)],
    ['pcrs[0]', (m) => (m.get('pcrs') as Map<number, CborValue>).set(0, new Uint8Array(48).fill(1))],
    ['pcrs[4]', (m) => { const p = m.get('pcrs') as Map<number, CborValue>; p.set(4, flipFirst(p.get(4))) }],
    ['pcrs dropped entry', (m) => (m.get('pcrs') as Map<number, CborValue>).delete(15)],
    ['public_key', (m) => m.set('public_key', flipFirst(m.get('public_key')))],
    ['user_data', (m) => m.set('user_data', flipFirst(m.get('user_data')))],
    ['nonce', (m) => m.set('nonce', flipFirst(m.get('nonce')))],
    ['nonce removed', (m) => m.delete('nonce')],
    ['nonce null', (m) => m.set('nonce', null)],
    ['field added', (m) => m.set('extra', 1)],
    ['cabundle swapped 1<->2', (m) => { const c = m.get('cabundle') as Uint8Array[]; [c[1], c[2]] = [c[2]!, c[1]!] }],
    ['cabundle reversed', (m) => (m.get('cabundle') as Uint8Array[]).reverse()],
    ['cabundle last dropped', (m) => (m.get('cabundle') as Uint8Array[]).pop()],
    ['cabundle null', (m) => m.set('cabundle', null)],
    ['cabundle removed', (m) => m.delete('cabundle')],
    ['certificate replaced by the instance CA', (m) => m.set('certificate', (m.get('cabundle') as Uint8Array[])[3]!)],
  ]
  it.each(edits)('changed %s (payload re-encoded, signature kept) → ERR_SIGNATURE_INVALID', async (_n, edit) => {
    expect(await genuineCode(withPayload(edit))).toBe('ERR_SIGNATURE_INVALID')
  })

  it('any one signature byte changed → ERR_SIGNATURE_INVALID', async () => {
    for (let i = 0; i < goodCose.signature.length; i++) {
      const sig = Uint8Array.from(goodCose.signature)
      sig[i]! ^= 1 << (i % 8)
      expect(await genuineCode(reassemble({ ...goodCose, signature: sig })), `byte ${i}`).toBe('ERR_SIGNATURE_INVALID')
    }
    expect(await genuineCode(reassemble({ ...goodCose, signature: goodCose.signature.subarray(0, 95) }))).toBe('ERR_SIGNATURE_INVALID')
    expect(await genuineCode(reassemble({ ...goodCose, signature: new Uint8Array(0) }))).toBe('ERR_SIGNATURE_INVALID')
  })

  it('wrong algorithm in the protected header → ERR_EVIDENCE_UNSUPPORTED, before the signature', async () => {
    for (const alg of [-36, -7, -37, 1, 'ES384']) {
      const protectedBytes = encode(new Map<number, CborValue>([[1, alg]]))
      expect(await genuineCode(reassemble({ ...goodCose, protectedBytes })), String(alg)).toBe('ERR_EVIDENCE_UNSUPPORTED')
    }
    const crit = encode(new Map<number, CborValue>([[1, -35], [2, [99]]]))
    expect(await genuineCode(reassemble({ ...goodCose, protectedBytes: crit }))).toBe('ERR_EVIDENCE_UNSUPPORTED')
    // alg only in the unprotected bucket does not count
    const unprot = encode([new Uint8Array(0), new Map([[1, -35]]), goodCose.payload, goodCose.signature])
    expect(await genuineCode(unprot)).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('trailing bytes, duplicate keys, indefinite lengths, non-minimal integers, other tags → ERR_EVIDENCE_MALFORMED', async () => {
    const bad: [string, Uint8Array][] = [
      ['trailing byte', concatBytes(good, new Uint8Array([0]))],
      ['trailing item', concatBytes(good, encode(1))],
      ['duplicate payload key', reassemble({ ...goodCose, payload: concatBytes(new Uint8Array([0xaa]), goodCose.payload.subarray(1), encode('nonce'), encode(null)) })],
      ['duplicate protected key', reassemble({ ...goodCose, protectedBytes: new Uint8Array([0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22]) })],
      ['duplicate unprotected key', concatBytes(new Uint8Array([0x84]), encode(goodCose.protectedBytes), new Uint8Array([0xa2, 0x04, 0x40, 0x04, 0x40]), encode(goodCose.payload), encode(goodCose.signature))],
      ['label in both headers', encode([goodCose.protectedBytes, new Map([[1, -35]]), goodCose.payload, goodCose.signature])],
      ['indefinite outer array', concatBytes(new Uint8Array([0x9f]), good.subarray(1), new Uint8Array([0xff]))],
      ['indefinite unprotected map', concatBytes(new Uint8Array([0x84]), encode(goodCose.protectedBytes), new Uint8Array([0xbf, 0xff]), encode(goodCose.payload), encode(goodCose.signature))],
      ['indefinite payload bstr', concatBytes(new Uint8Array([0x84]), encode(goodCose.protectedBytes), new Uint8Array([0xa0, 0x5f]), encode(goodCose.payload), new Uint8Array([0xff]), encode(goodCose.signature))],
      ['non-minimal alg', reassemble({ ...goodCose, protectedBytes: new Uint8Array([0xa1, 0x01, 0x39, 0x00, 0x22]) })],
      ['non-minimal array length', concatBytes(new Uint8Array([0x98, 0x04]), good.subarray(1))],
      ['tag 17', concatBytes(new Uint8Array([0xd1]), good)],
      ['tag 18 twice', concatBytes(new Uint8Array([0xd2, 0xd2]), good)],
      ['3-element array', encode([goodCose.protectedBytes, new Map(), goodCose.payload])],
      ['5-element array', encode([goodCose.protectedBytes, new Map(), goodCose.payload, goodCose.signature, null])],
      ['map instead of array', encode(new Map([[1, 2]]))],
      ['detached payload', encode([goodCose.protectedBytes, new Map(), null, goodCose.signature])],
      ['payload not a map', reassemble({ ...goodCose, payload: encode([1, 2]) })],
      ['protected header not a map', reassemble({ ...goodCose, protectedBytes: encode(1) })],
      ['signature as text', encode([goodCose.protectedBytes, new Map(), goodCose.payload, 'sig'])],
      ['undefined in payload', reassemble({ ...goodCose, payload: concatBytes(new Uint8Array([0xaa]), goodCose.payload.subarray(1), encode('x'), new Uint8Array([0xf7])) })],
      ['empty input', new Uint8Array(0)],
    ]
    for (const [name, bytes] of bad) expect(await genuineCode(bytes), name).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('byte changes across a genuine document never verify and never throw anything but a KeywardError', async () => {
    const seen = new Set<string>()
    for (let i = 0; i < good.length; i += 5) {
      const b = Uint8Array.from(good)
      b[i]! ^= 0x5a
      const code = await genuineCode(b)
      expect(code, `byte ${i}`).not.toBe('OK')
      seen.add(code)
    }
    expect([...seen].sort()).toEqual(expect.arrayContaining(['ERR_EVIDENCE_MALFORMED', 'ERR_SIGNATURE_INVALID']))
  })

  it('every truncation of a genuine document → ERR_EVIDENCE_MALFORMED', () => {
    for (let n = 0; n < good.length; n++) {
      expect(() => parseNitroDocument(good.subarray(0, n)), `prefix ${n}`).toThrow(expect.objectContaining({ code: 'ERR_EVIDENCE_MALFORMED' }))
    }
  })
})

describe('nitro chain and payload rules (test-only PKI)', () => {
  let pki: TestOnlyPki
  let ctx: VerifyContext
  beforeAll(async () => {
    pki = await testOnlyPki()
    ctx = { now: pki.at, trust: { nitro: { roots: [pki.root.cert] } } }
  })

  it('a document signed under a passed root verifies; under the pinned AWS root it does not', async () => {
    const doc = testOnlyDocument(pki)
    const c = await nitroVerifier.verify(parseNitroDocument(doc), ctx)
    expect(c.details.kind).toBe('enclave')
    expect(c.debug).toBe(false)
    expect(c.measurement).toBe('01'.repeat(48))
    expect(c.nonce).toEqual(new Uint8Array(32).fill(0xaa))
    expect(await codeOf(doc, { now: pki.at })).toBe('ERR_ROOT_UNTRUSTED')
    expect(await codeOf(doc, { ...ctx, trust: { nitro: { roots: [] } } })).toBe('ERR_ROOT_UNTRUSTED')
    expect(await codeOf(doc, { ...ctx, now: new Date(pki.at.getTime() + 4 * 3_600_000) })).toBe('ERR_CERT_EXPIRED')
  })

  it('reports debug mode (PCR0-2 zero) without denying it, and NitroTPM documents with PCR4', async () => {
    const pcrs = new Map<number, CborValue>([[0, new Uint8Array(48)], [1, new Uint8Array(48)], [2, new Uint8Array(48)], [4, new Uint8Array(48).fill(4)]])
    const dbg = await nitroVerifier.verify(parseNitroDocument(testOnlyDocument(pki, { pcrs })), ctx)
    expect(dbg.debug).toBe(true)
    const tpm = await nitroVerifier.verify(parseNitroDocument(testOnlyDocument(pki, { pcrs: undefined, nitrotpm_pcrs: pcrs })), ctx)
    expect(tpm.details.kind).toBe('nitrotpm')
    expect(tpm.debug).toBe(false)
    expect(tpm.measurement).toBe('04'.repeat(48))
  })

  it('accepts the indefinite-length payload map the NSM emits, and the CDDL size extremes', async () => {
    const entries = [...testOnlyPayload(pki)].map(([k, v]) => concatBytes(encode(k), encode(v)))
    const indefinite = concatBytes(new Uint8Array([0xbf]), ...entries, new Uint8Array([0xff]))
    expect(await codeOf(signCose(indefinite, pki.leaf.key), ctx)).toBe('OK')
    const max = new Uint8Array(1024).fill(7)
    const c = await nitroVerifier.verify(parseNitroDocument(testOnlyDocument(pki, { user_data: max, nonce: new Uint8Array(0), public_key: max })), ctx)
    expect(c.bindingData).toHaveLength(1024)
    expect(c.details.nonce).toBe('')
    const pcrs = new Map<number, CborValue>([[0, new Uint8Array(32)], [1, new Uint8Array(64)], [31, new Uint8Array(48)]])
    expect(await codeOf(testOnlyDocument(pki, { pcrs }), ctx)).toBe('OK')
    const absent = await nitroVerifier.verify(parseNitroDocument(testOnlyDocument(pki, { nonce: undefined, public_key: undefined })), ctx)
    expect(absent.details.absentFields).toEqual(['public_key', 'nonce'])
  })

  it('rejects an indefinite-length array inside the payload', async () => {
    const p = testOnlyPayload(pki)
    const entries = [...p].map(([k, v]) =>
      k === 'cabundle' ? concatBytes(encode(k), new Uint8Array([0x9f]), ...(v as Uint8Array[]).map((c) => encode(c)), new Uint8Array([0xff])) : concatBytes(encode(k), encode(v)))
    const payload = concatBytes(new Uint8Array([0xa0 + p.size]), ...entries)
    expect(await codeOf(signCose(payload, pki.leaf.key), ctx)).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('rejects reordered, incomplete and foreign certificate bundles with chain codes', async () => {
    const { root, inter } = pki
    expect(await codeOf(testOnlyDocument(pki, { cabundle: [inter.der, root.der] }), ctx)).toBe('ERR_ROOT_UNTRUSTED')
    expect(await codeOf(testOnlyDocument(pki, { cabundle: [inter.der] }), ctx)).toBe('ERR_ROOT_UNTRUSTED')
    expect(await codeOf(testOnlyDocument(pki, { cabundle: [root.der] }), ctx)).toBe('ERR_CHAIN_INVALID')
    expect(await codeOf(testOnlyDocument(pki, { cabundle: [root.der, inter.der, inter.der] }), ctx)).toBe('ERR_CHAIN_INVALID')
    // the real AWS root first, then an intermediate it never signed
    const aws = decodeCoseSign1(good)
    const awsRoot = (payloadOf(good).get('cabundle') as Uint8Array[])[0]!
    expect(aws.payload.length).toBeGreaterThan(0)
    expect(await codeOf(testOnlyDocument(pki, { cabundle: [awsRoot, inter.der] }), { now: pki.at })).toBe('ERR_CHAIN_INVALID')
  })

  it('rejects a leaf signed by an untrusted intermediate that copies the real one\'s name', async () => {
    const rogueRoot = await testOnlyCert({ name: 'testOnly root', ca: true, notBefore: new Date(pki.at.getTime() - 1e9), notAfter: new Date(pki.at.getTime() + 1e9) })
    const rogueInter = await testOnlyCert({ name: 'testOnly intermediate', issuer: rogueRoot, ca: true, notBefore: new Date(pki.at.getTime() - 1e8), notAfter: new Date(pki.at.getTime() + 1e8) })
    const rogueLeaf = await testOnlyCert({ name: 'testOnly enclave', issuer: rogueInter, ca: false, notBefore: new Date(pki.at.getTime() - 1e6), notAfter: new Date(pki.at.getTime() + 1e7) })
    const withRogueLeaf = signCose(encode(testOnlyPayload(pki, { certificate: rogueLeaf.der })), rogueLeaf.key)
    expect(await codeOf(withRogueLeaf, ctx)).toBe('ERR_CHAIN_INVALID')
    const withRogueInter = signCose(encode(testOnlyPayload(pki, { certificate: rogueLeaf.der, cabundle: [pki.root.der, rogueInter.der] })), rogueLeaf.key)
    expect(await codeOf(withRogueInter, ctx)).toBe('ERR_CHAIN_INVALID')
    // and a leaf key that did not sign the document
    expect(await codeOf(signCose(encode(testOnlyPayload(pki)), rogueLeaf.key), ctx)).toBe('ERR_SIGNATURE_INVALID')
  })

  it('rejects CA misuse: a CA leaf, a non-CA intermediate, a leaf without digitalSignature', async () => {
    const t = pki.at.getTime()
    const caLeaf = await testOnlyCert({ name: 'testOnly enclave', issuer: pki.inter, ca: true, notBefore: new Date(t - 1e6), notAfter: new Date(t + 1e7) })
    expect(await codeOf(signCose(encode(testOnlyPayload(pki, { certificate: caLeaf.der })), caLeaf.key), ctx)).toBe('ERR_CHAIN_INVALID')
    const eeInter = await testOnlyCert({ name: 'testOnly ee intermediate', issuer: pki.root, ca: false, notBefore: new Date(t - 1e8), notAfter: new Date(t + 1e8), keyUsage: 0x20 })
    const leaf2 = await testOnlyCert({ name: 'testOnly enclave 2', issuer: eeInter, ca: false, notBefore: new Date(t - 1e6), notAfter: new Date(t + 1e7) })
    expect(await codeOf(signCose(encode(testOnlyPayload(pki, { certificate: leaf2.der, cabundle: [pki.root.der, eeInter.der] })), leaf2.key), ctx)).toBe('ERR_CHAIN_INVALID')
    const noSign = await testOnlyCert({ name: 'testOnly enclave', issuer: pki.inter, ca: false, notBefore: new Date(t - 1e6), notAfter: new Date(t + 1e7), keyUsage: 0x08 })
    expect(await codeOf(signCose(encode(testOnlyPayload(pki, { certificate: noSign.der })), noSign.key), ctx)).toBe('ERR_CHAIN_INVALID')
  })

  const big = new Uint8Array(1025)
  // Keys of any CBOR type on purpose: the parser must reject the ones AWS's spec does not allow.
  const pcr = (k: CborValue, v: CborValue): CborMap => new Map([[0, new Uint8Array(48)], [k, v]]) as CborMap
  const fieldCases: [string, Record<string, CborValue | undefined>][] = [
    ['digest SHA256', { digest: 'SHA256' }],
    ['digest as bytes', { digest: new Uint8Array([1]) }],
    ['module_id empty', { module_id: '' }],
    ['module_id too long', { module_id: 'i'.repeat(256) }],
    ['module_id missing', { module_id: undefined }],
    ['timestamp zero', { timestamp: 0 }],
    ['timestamp negative', { timestamp: -1 }],
    ['timestamp beyond Date range', { timestamp: 2n ** 60n }],
    ['timestamp as text', { timestamp: '1700000000000' }],
    ['timestamp missing', { timestamp: undefined }],
    ['pcr of 47 bytes', { pcrs: pcr(1, new Uint8Array(47)) }],
    ['pcr index 32', { pcrs: pcr(32, new Uint8Array(48)) }],
    ['pcr index text', { pcrs: pcr('1', new Uint8Array(48)) }],
    ['pcr value null', { pcrs: pcr(1, null) }],
    ['pcrs empty', { pcrs: new Map() }],
    ['pcrs as array', { pcrs: [new Uint8Array(48)] }],
    ['PCR0 missing', { pcrs: new Map([[1, new Uint8Array(48)]]) }],
    ['NitroTPM without PCR4', { pcrs: undefined, nitrotpm_pcrs: pcr(1, new Uint8Array(48)) }],
    ['both pcr maps', { nitrotpm_pcrs: pcr(1, new Uint8Array(48)) }],
    ['no pcr map', { pcrs: undefined }],
    ['user_data 1025 bytes', { user_data: big }],
    ['nonce 1025 bytes', { nonce: big }],
    ['public_key 1025 bytes', { public_key: big }],
    ['user_data as text', { user_data: 'abc' }],
    ['nonce as integer', { nonce: 5 }],
    ['unknown field', { extra: new Uint8Array(1) }],
    ['cabundle empty', { cabundle: [] }],
    ['cabundle null', { cabundle: null }],
    ['cabundle entry too large', { cabundle: [new Uint8Array(1025)] }],
    ['cabundle entry empty', { cabundle: [new Uint8Array(0)] }],
    ['cabundle entry not DER', { cabundle: [new Uint8Array([1, 2, 3])] }],
    ['certificate as text', { certificate: 'cert' }],
    ['certificate missing', { certificate: undefined }],
  ]
  it.each(fieldCases)('payload rule: %s → ERR_EVIDENCE_MALFORMED', async (_n, over) => {
    expect(await codeOf(testOnlyDocument(pki, over), ctx)).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('fuzz: every prefix and every single-byte change of a small document gives a result or a KeywardError', async () => {
    const doc = testOnlyDocument(pki, { public_key: undefined, user_data: undefined })
    for (let n = 0; n < doc.length; n++) {
      expect(() => parseNitroDocument(doc.subarray(0, n))).toThrow(expect.objectContaining({ code: 'ERR_EVIDENCE_MALFORMED' }))
    }
    let seed = 12345
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16
    const outcomes = new Map<string, number>()
    for (let i = 0; i < doc.length; i++) {
      const b = Uint8Array.from(doc)
      b[i] = i % 2 === 0 ? b[i]! ^ 0xff : rnd() & 0xff
      if (b[i] === doc[i]) b[i]! ^= 0x01
      const code = await codeOf(b, ctx)
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1)
    }
    expect(outcomes.get('OK') ?? 0).toBe(0)
    expect(outcomes.get('ERR_EVIDENCE_MALFORMED')).toBeGreaterThan(0)
    expect(outcomes.get('ERR_SIGNATURE_INVALID')).toBeGreaterThan(0)
  })
})
