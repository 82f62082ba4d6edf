// Malformed input of every TPM structure yields a KeywardError (never RangeError/TypeError):
// truncation at every offset, appended bytes, oversized TPM2B sizes, unknown algorithms.
import { describe, it, expect } from 'vitest'
import { readVector } from '../../helpers/vectors.js'
import { toHex } from '../../../src/util/bytes.js'
import { parseAkPublic, parseAttest, parsePcrsFile, parseSignature, parseTpmPublic } from '../../../src/verifiers/tpm/index.js'
import { parseTpm2bPublic, parseTpmtPublic } from '../../../src/verifiers/tpm/parse.js'
import { errorCode } from '../../helpers/errors.js'


const structures: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
  ['TPMS_ATTEST (RSA swtpm)', readVector('tpm', 'swtpm/rsa/0001/quote.msg'), parseAttest],
  ['TPMS_ATTEST (GCE)', readVector('tpm', 'gce-cos85-vtpm/nonce9009/quote-sha256.msg'), parseAttest],
  ['TPMT_SIGNATURE RSASSA', readVector('tpm', 'swtpm/rsa/0001/quote.sig'), parseSignature],
  ['TPMT_SIGNATURE ECDSA', readVector('tpm', 'swtpm/ecc/0001/quote.sig'), parseSignature],
  ['TPM2B_PUBLIC RSA', readVector('tpm', 'swtpm/rsa/ak.pub'), parseTpm2bPublic],
  ['TPM2B_PUBLIC ECC', readVector('tpm', 'swtpm/ecc/ak.pub'), parseTpm2bPublic],
  ['TPMT_PUBLIC RSA', readVector('tpm', 'gce-cos85-vtpm/nonce9009/ak.tpmt.pub'), parseTpmtPublic],
  ['PCR file (1 bank)', readVector('tpm', 'swtpm/rsa/0001/quote.pcrs'), parsePcrsFile],
  ['PCR file (24 PCRs)', readVector('tpm', 'gce-cos85-vtpm/nonce9009/quote-sha384.pcrs'), parsePcrsFile],
]

describe.each(structures)('%s', (_name, good, parse) => {
  it('parses the genuine bytes', () => {
    expect(errorCode(() => parse(good))).toBe('OK')
  })
  it('every truncation is ERR_EVIDENCE_MALFORMED', () => {
    for (let n = 0; n < good.length; n++) expect(errorCode(() => parse(good.subarray(0, n))), `length ${n}`).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('trailing bytes are rejected', () => {
    const longer = new Uint8Array(good.length + 1)
    longer.set(good)
    expect(errorCode(() => parse(longer))).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('every single-byte corruption yields a value or a KeywardError', () => {
    for (let i = 0; i < good.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const b = good.slice()
        b[i]! ^= x
        const c = errorCode(() => parse(b))
        expect(c === 'OK' || c.startsWith('ERR_EVIDENCE_'), `byte ${i}`).toBe(true)
      }
    }
  })
})

describe('specific structure checks', () => {
  const quote = readVector('tpm', 'swtpm/rsa/0001/quote.msg')
  it('wrong magic and wrong attest type are malformed', () => {
    const m = quote.slice()
    m[0] = 0
    expect(errorCode(() => parseAttest(m))).toBe('ERR_EVIDENCE_MALFORMED')
    const t = quote.slice()
    t[5] = 0x17 // TPM_ST_ATTEST_CERTIFY
    expect(errorCode(() => parseAttest(t))).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('oversized TPM2B sizes are malformed', () => {
    const q = quote.slice()
    q[6] = 0xff // qualifiedSigner.size = 0xff22 > TPM2B_NAME max
    expect(errorCode(() => parseAttest(q))).toBe('ERR_EVIDENCE_MALFORMED')
    const sig = readVector('tpm', 'swtpm/rsa/0001/quote.sig').slice()
    sig[4] = 0x7f // sig.size 0x7f00 > MAX_RSA_KEY_BYTES
    expect(errorCode(() => parseSignature(sig))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => parseAttest(new Uint8Array(4096)))).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('unknown algorithms are ERR_EVIDENCE_UNSUPPORTED', () => {
    const sig = readVector('tpm', 'swtpm/rsa/0001/quote.sig').slice()
    sig[1] = 0x10 // TPM_ALG_NULL signature
    expect(errorCode(() => parseSignature(sig))).toBe('ERR_EVIDENCE_UNSUPPORTED')
    const h = readVector('tpm', 'swtpm/rsa/0001/quote.sig').slice()
    h[3] = 0x12 // SM3_256 hash
    expect(errorCode(() => parseSignature(h))).toBe('ERR_EVIDENCE_UNSUPPORTED')
    const pub = readVector('tpm', 'swtpm/ecc/ak.pub').slice()
    pub[0x13] = 0x20 // curve 0x0020 (SM2-like, unknown)
    expect(errorCode(() => parseTpmPublic(pub))).toBe('ERR_EVIDENCE_UNSUPPORTED')
    const kh = readVector('tpm', 'swtpm/ecc/ak.pub').slice()
    kh[3] = 0x08 // TPM_ALG_KEYEDHASH object
    expect(errorCode(() => parseTpmPublic(kh))).toBe('ERR_EVIDENCE_UNSUPPORTED')
    const q = quote.slice()
    q[0x5d] = 0x12 // PCR selection bank SM3_256
    expect(toHex(q.subarray(0x58, 0x5e))).toBe('000000010012')
    expect(errorCode(() => parseAttest(q))).toBe('ERR_EVIDENCE_UNSUPPORTED')
  })
  it('PCR file: digest counts must match the selection', () => {
    const p = readVector('tpm', 'swtpm/rsa/0001/quote.pcrs').slice()
    p[0x84] = 3 // three TPML_DIGEST for nine PCRs
    expect(errorCode(() => parsePcrsFile(p))).toBe('ERR_EVIDENCE_MALFORMED')
    const q = readVector('tpm', 'swtpm/rsa/0001/quote.pcrs').slice()
    q[0x88] = 7 // first TPML_DIGEST.count 7 instead of 8 → one digest short
    expect(errorCode(() => parsePcrsFile(q))).toBe('ERR_EVIDENCE_MALFORMED')
    const r = readVector('tpm', 'swtpm/rsa/0001/quote.pcrs').slice()
    r[0x8c] = 0x14 // a sha256 PCR with a 20-byte digest
    expect(errorCode(() => parsePcrsFile(r))).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('PCR file values follow the selection order', () => {
    const p = parsePcrsFile(readVector('tpm', 'swtpm/rsa/0001/quote.pcrs'))
    expect(p.selection).toEqual([{ hash: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 23] }])
    expect(toHex(p.banks.sha256!.get(23)!)).toBe('23aa91b4169cfdfb07e4a939e65516cfb3a6f5fe0da0fb7c6a9ca4fe0ab7a329')
  })
  it('AK detection: PEM, DER SPKI, TPM2B, TPMT; garbage is a KeywardError', () => {
    const pem = readVector('tpm', 'swtpm/ecc/ak.pub.pem')
    const k = parseAkPublic(pem).key
    const der = new Uint8Array(k.export({ type: 'spki', format: 'der' }))
    expect(parseAkPublic(der).key.equals(k)).toBe(true)
    expect(parseAkPublic(readVector('tpm', 'swtpm/ecc/ak.pub')).key.equals(k)).toBe(true)
    expect(parseAkPublic(readVector('tpm', 'swtpm/ecc/ak.pub').subarray(2)).key.equals(k)).toBe(true)
    expect(errorCode(() => parseAkPublic(new TextEncoder().encode('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => parseAkPublic(new Uint8Array([0x30, 1, 2])))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => parseAkPublic(new Uint8Array(0)))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})
