import { describe, it, expect, beforeAll } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KeywardError } from '../../../src/errors.js'
import { createKdsCache, createSevSnpVerifier } from '../../../src/verifiers/sev-snp/index.js'
import { buildCertTable } from '../../../src/verifiers/sev-snp/certs.js'
import { OFF } from '../../../src/verifiers/sev-snp/layout.js'
import { parseAttestationReport } from '../../../src/verifiers/sev-snp/parse.js'
import type { VerifyContext } from '../../../src/verifiers/types.js'
import { TEST_NOW, b64, certDer, evidenceOf, manifest, signReport, snpFile, testOnlyPki, vector, writeTcb, type TestOnlyPki } from './helpers.js'
import { errorCodeOf } from '../../helpers/errors.js'

const sevSnpVerifier = createSevSnpVerifier()

const verifyEvidence = (ev: unknown, ctx: VerifyContext, v = sevSnpVerifier): Promise<unknown> => (async () => v.verify(v.decode(ev), ctx))()

/** Expected rejection code of each negative vector (which check fails first in keyward's order). */
const NEGATIVE_CODES: Record<string, string> = {
  'neg-milan-v2-vlek-constellation-badsig': 'ERR_SIGNATURE_INVALID',
  'neg-milan-v2-trustee-vcek-invalid-legacy': 'ERR_SIGNATURE_INVALID',
  'neg-milan-v2-trustee-vcek-invalid-new': 'ERR_SIGNATURE_INVALID',
  'neg-milan-v2-trustee-tampered-body': 'ERR_SIGNATURE_INVALID',
  'neg-milan-v2-trustee-tampered-tcb': 'ERR_SIGNATURE_INVALID',
  'neg-milan-v2-trustee-sig-padding': 'ERR_SIGNATURE_INVALID',
  'neg-milan-v2-trustee-tampered-vcek': 'ERR_CHAIN_INVALID',
  'neg-milan-v2-virtee-wrong-chip-vcek': 'ERR_SIGNATURE_INVALID',
  'neg-milan-v2-virtee-genoa-chain': 'ERR_CHAIN_INVALID',
  'neg-milan-v3-vlek-via-ask': 'ERR_CHAIN_INVALID',
}

describe('manifest vectors', () => {
  const genuine = manifest.vectors.filter((v) => v.expected === 'valid')
  const negatives = manifest.vectors.filter((v) => v.expected !== 'valid')

  it.each(genuine.map((v) => [v.name, v] as const))('%s verifies at verify_at with its measurement and TCB', async (_n, v) => {
    const c = await sevSnpVerifier.verify(sevSnpVerifier.decode(evidenceOf(v)), { now: new Date(v.verify_at) })
    expect(c.tee).toBe('sev-snp')
    expect(c.measurement).toBe(v.measurement)
    expect(c.debug).toBe(v.policy_decoded.debug === 1)
    const d = c.details as Record<string, any>
    const t = d.reportedTcb
    const w = v.reported_tcb
    expect({ bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode, fmc: t.fmc }).toEqual({
      bootloader: w.bootloader,
      tee: w.tee,
      snp: w.snp,
      microcode: w.microcode,
      fmc: w.fmc,
    })
    expect(d.vmpl).toBe(v.vmpl)
    expect(d.chipId).toBe(v.chip_id)
    expect(d.reportData).toBe(v.report_data)
    expect(d.signingKey).toBe(v.signer.toLowerCase())
    expect(d.product).toBe(v.product)
    expect(Buffer.from(c.bindingData).toString('hex')).toBe(v.report_data)
    expect(() => JSON.stringify(c.details)).not.toThrow()
  })

  it.each(negatives.map((v) => [v.name, v] as const))('%s is rejected with its specific code', async (name, v) => {
    expect(NEGATIVE_CODES[name], `no expected code for new negative vector ${name}`).toBeDefined()
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), { now: new Date(v.verify_at) }))).toBe(NEGATIVE_CODES[name])
  })

  it('a genuine report is rejected once its VCEK has expired or before it was issued', async () => {
    const v = vector('milan-v2-virtee')
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), { now: new Date('2031-01-01T00:00:00Z') }))).toBe('ERR_CERT_EXPIRED')
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), { now: new Date('2023-01-01T00:00:00Z') }))).toBe('ERR_CERT_EXPIRED')
  })

  it('uses the shipped ASK/ARK when the evidence carries only the VCEK, and VLEK reports the shipped ASVK', async () => {
    for (const name of ['genoa-v5-oak', 'turin-v5-oak', 'milan-v3-vlek-aws-trustee']) {
      const v = vector(name)
      const ev = { report: b64(snpFile(v.report)), vcek: b64(snpFile((v.vcek ?? v.vlek)!)) }
      expect((await sevSnpVerifier.verify(sevSnpVerifier.decode(ev), { now: new Date(v.verify_at) })).measurement).toBe(v.measurement)
    }
  })

  it('accepts the certificates from an extended-report certificate table', async () => {
    const v = vector('milan-v5-gcp')
    const certTable = b64(buildCertTable({ vcek: snpFile(v.vcek!), ask: certDer('milan-ask.pem'), ark: certDer('milan-ark.pem') }))
    const c = await sevSnpVerifier.verify(sevSnpVerifier.decode({ report: b64(snpFile(v.report)), certTable }), { now: new Date(v.verify_at) })
    expect(c.measurement).toBe(v.measurement)
    const wrong = b64(buildCertTable({ vcek: snpFile(v.vcek!), ask: certDer('genoa-ask.pem') }))
    expect(await errorCodeOf(verifyEvidence({ report: b64(snpFile(v.report)), certTable: wrong }, { now: new Date(v.verify_at) }))).toBe('ERR_CHAIN_INVALID')
  })

  it('a VCEK with another product\'s ASK (no ARK given) fails the chain', async () => {
    const v = vector('milan-v3-oak')
    const ev = { report: b64(snpFile(v.report)), vcek: b64(snpFile(v.vcek!)), chain: [b64(certDer('genoa-ask.pem'))] }
    expect(await errorCodeOf(verifyEvidence(ev, { now: new Date(v.verify_at) }))).toBe('ERR_CHAIN_INVALID')
  })

  it('with no certificates anywhere the report is refused', async () => {
    const v = vector('milan-v3-oak')
    expect(await errorCodeOf(verifyEvidence({ report: b64(snpFile(v.report)) }, { now: new Date(v.verify_at) }))).toBe('ERR_CHAIN_INVALID')
  })
})

describe('one flipped byte anywhere in the report', () => {
  const v = vector('milan-v3-oak')
  const bytes = snpFile(v.report)
  const vcek = b64(snpFile(v.vcek!))
  const ctx = { now: new Date(v.verify_at) }

  it('is rejected: ERR_SIGNATURE_INVALID unless the parser already refuses the structure', async () => {
    const parserCodes = new Map<number, string>()
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes.slice()
      b[i]! ^= 0x01 << i % 8
      let parseCode = 'OK'
      try {
        parseAttestationReport(b)
      } catch (e) {
        parseCode = (e as KeywardError).code
      }
      const code = await errorCodeOf(verifyEvidence({ report: b64(b), vcek }, ctx))
      if (parseCode === 'OK') expect(code, `offset 0x${i.toString(16)}`).toBe('ERR_SIGNATURE_INVALID')
      else {
        expect(code).toBe(parseCode)
        parserCodes.set(i, code)
      }
    }
    // The parser refuses only version, algorithm, policy, FLAGS and must-be-zero bytes.
    const structural = (i: number): boolean =>
      i < 4 || (i >= OFF.POLICY && i < OFF.POLICY + 8) || (i >= OFF.SIGNATURE_ALGO && i < OFF.SIGNATURE_ALGO + 4) ||
      (i >= OFF.FLAGS && i < OFF.REPORT_DATA) || (i >= OFF.RESERVED_18B && i < OFF.CHIP_ID) || i === OFF.RESERVED_1EB ||
      i === OFF.RESERVED_1EF || (i >= OFF.LAUNCH_MIT_VECTOR && i < OFF.SIGNATURE)
    for (const i of parserCodes.keys()) expect(structural(i), `offset 0x${i.toString(16)}`).toBe(true)
    expect(parserCodes.size).toBeLessThan(0x2a0 / 2)
  })
})

describe('testOnly PKI: TCB, chip id, CRL, roots, binding, appraisal', () => {
  let pki: TestOnlyPki
  let trust: VerifyContext['trust']
  const src = snpFile('milan-v3-oak.bin') // v3, CPUID says Milan
  const chip = src.slice(OFF.CHIP_ID, OFF.CHIP_ID + 64)
  const tcb = { bl: 4, tee: 0, snp: 24, ucode: 219 }

  beforeAll(async () => {
    pki = await testOnlyPki('Milan')
    trust = { snp: { arks: [new X509Certificate(pki.ark.cert.raw)] } }
  })

  async function signed(o: { reportTcb?: typeof tcb; certTcb?: typeof tcb; hwId?: Uint8Array; chipId?: Uint8Array; mask?: boolean; reportData?: Uint8Array; debug?: boolean } = {}) {
    const { vcek, key } = await pki.issueVcek({ tcb: o.certTcb ?? tcb, hwId: o.hwId ?? chip })
    const b = src.slice()
    writeTcb(b, OFF.REPORTED_TCB, o.reportTcb ?? tcb)
    b.set(o.chipId ?? chip, OFF.CHIP_ID)
    if (o.mask) b[OFF.FLAGS]! |= 2
    if (o.reportData) b.set(o.reportData, OFF.REPORT_DATA)
    if (o.debug) b[OFF.POLICY + 2]! |= 0x08
    return { report: b64(signReport(b, key)), vcek: b64(new Uint8Array(vcek.cert.raw)), chain: [b64(new Uint8Array(pki.ask.cert.raw))] }
  }

  it('a report signed through a testOnly chain verifies when that ARK is the configured anchor', async () => {
    const c = await sevSnpVerifier.verify(sevSnpVerifier.decode(await signed()), { now: TEST_NOW, trust })
    expect((c.details as Record<string, any>).reportedTcb.snp).toBe(24)
  })

  it('the same chain with the pinned AMD roots: self-signed impostor ARK → ERR_ROOT_UNTRUSTED', async () => {
    const ev = await signed()
    ;(ev.chain as string[]).push(b64(new Uint8Array(pki.ark.cert.raw)))
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW }))).toBe('ERR_ROOT_UNTRUSTED')
    // Without the ARK in the evidence the pinned ARK-Milan is used and did not sign this ASK.
    expect(await errorCodeOf(verifyEvidence(await signed(), { now: TEST_NOW }))).toBe('ERR_CHAIN_INVALID')
  })

  it('VCEK for another TCB → ERR_TCB_MISMATCH (each component)', async () => {
    for (const certTcb of [{ ...tcb, bl: 3 }, { ...tcb, tee: 1 }, { ...tcb, snp: 23 }, { ...tcb, ucode: 220 }]) {
      expect(await errorCodeOf(verifyEvidence(await signed({ certTcb }), { now: TEST_NOW, trust }))).toBe('ERR_TCB_MISMATCH')
    }
  })

  it('VCEK of another chip → ERR_CHIP_ID_MISMATCH', async () => {
    const other = chip.slice()
    other[5]! ^= 0xff
    expect(await errorCodeOf(verifyEvidence(await signed({ hwId: other }), { now: TEST_NOW, trust }))).toBe('ERR_CHIP_ID_MISMATCH')
  })

  it('masked CHIP_ID is refused by default and accepted when the option allows it', async () => {
    const ev = await signed({ chipId: new Uint8Array(64), mask: true })
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW, trust }))).toBe('ERR_CHIP_ID_MISMATCH')
    const lenient = createSevSnpVerifier({ allowMaskedChipId: true })
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW, trust }, lenient))).toBe('OK')
  })

  it('an ASK listed on a CRL signed by the ARK → ERR_CERT_REVOKED; an unrelated CRL changes nothing', async () => {
    const ev = await signed()
    const revoking = await pki.crl([pki.askSerial])
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW, trust: { snp: { ...trust!.snp, crls: [revoking] } } }))).toBe('ERR_CERT_REVOKED')
    const viaOptions = createSevSnpVerifier({ crls: [revoking] })
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW, trust }, viaOptions))).toBe('ERR_CERT_REVOKED')
    const other = await pki.crl(['7777'])
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW, trust: { snp: { ...trust!.snp, crls: [other] } } }))).toBe('OK')
  })

  it('a CRL naming the ARK but signed by another key → ERR_CHAIN_INVALID', async () => {
    const forged = await pki.crl([pki.askSerial], pki.askKeys.privateKey)
    expect(await errorCodeOf(verifyEvidence(await signed(), { now: TEST_NOW, trust: { snp: { ...trust!.snp, crls: [forged] } } }))).toBe('ERR_CHAIN_INVALID')
  })

  it('a forged "ARK-Milan" CRL against the real Milan chain → ERR_CHAIN_INVALID; garbage CRL → malformed', async () => {
    const v = vector('milan-v3-oak')
    const forged = await pki.crl(['0'])
    const ctx = (crls: Uint8Array[]) => ({ now: new Date(v.verify_at), trust: { snp: { crls } } })
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), ctx([forged])))).toBe('ERR_CHAIN_INVALID')
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), ctx([new Uint8Array([0x30, 0x03, 1, 2, 3])])))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('REPORT_DATA binding: digest || zeros passes, anything else → ERR_BINDING_MISMATCH', async () => {
    const binding = new Uint8Array(32).fill(0xab)
    const rd = new Uint8Array(64)
    rd.set(binding)
    const ev = await signed({ reportData: rd })
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW, trust, expectedBinding: binding }))).toBe('OK')
    const wrong = binding.slice()
    wrong[31]! ^= 1
    expect(await errorCodeOf(verifyEvidence(ev, { now: TEST_NOW, trust, expectedBinding: wrong }))).toBe('ERR_BINDING_MISMATCH')
    const tail = rd.slice()
    tail[63] = 1
    expect(await errorCodeOf(verifyEvidence(await signed({ reportData: tail }), { now: TEST_NOW, trust, expectedBinding: binding }))).toBe('ERR_BINDING_MISMATCH')
  })

  it('wrong report_data of a genuine report → ERR_BINDING_MISMATCH', async () => {
    const v = vector('turin-v5-oak')
    const digest = Buffer.from(v.report_data.slice(0, 64), 'hex')
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), { now: new Date(v.verify_at), expectedBinding: digest }))).toBe('OK')
    digest[0]! ^= 1
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), { now: new Date(v.verify_at), expectedBinding: digest }))).toBe('ERR_BINDING_MISMATCH')
  })

  it('appraisal floors: debug refused when forbidden, TCB below a minimum → ERR_POLICY_DENIED', async () => {
    const v = vector('milan-v2-gosev-debug')
    const strict = createSevSnpVerifier({ allowDebug: false })
    expect(await errorCodeOf(verifyEvidence(evidenceOf(v), { now: new Date(v.verify_at) }, strict))).toBe('ERR_DEBUG_ENCLAVE')
    expect(await errorCodeOf(verifyEvidence(await signed({ debug: true }), { now: TEST_NOW, trust }, strict))).toBe('ERR_DEBUG_ENCLAVE')
    expect(await errorCodeOf(verifyEvidence(await signed(), { now: TEST_NOW, trust }, strict))).toBe('OK')
    const floor = createSevSnpVerifier({ minimumTcb: { snp: 25 } })
    expect(await errorCodeOf(verifyEvidence(await signed(), { now: TEST_NOW, trust }, floor))).toBe('ERR_POLICY_DENIED')
    const met = createSevSnpVerifier({ minimumTcb: { snp: 24, microcode: 219 } })
    expect(await errorCodeOf(verifyEvidence(await signed(), { now: TEST_NOW, trust }, met))).toBe('OK')
  })
})

describe('KDS certificate cache', () => {
  const v = vector('milan-v3-oak')
  const report = snpFile(v.report)
  const r = parseAttestationReport(report)

  it('serves a VCEK from disk, fetching a miss once through the injected fetch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-kds-'))
    try {
      const urls: string[] = []
      const fakeFetch = async (url: string): Promise<Uint8Array> => {
        urls.push(url)
        if (url.includes('/cert_chain')) return new Uint8Array(Buffer.concat([snpFile('milan-ask.pem'), snpFile('milan-ark.pem')]))
        if (url.endsWith('/crl')) throw new Error('offline')
        return snpFile(v.vcek!)
      }
      const kds = createKdsCache({ dir, fetch: fakeFetch })
      const online = createSevSnpVerifier({ kds })
      // The CRL fetch fails: that is an upstream error, not a silent pass.
      expect(await errorCodeOf(verifyEvidence({ report: b64(report) }, { now: new Date(v.verify_at) }, online))).toBe('ERR_UPSTREAM_UNAVAILABLE')
      const hwid = Buffer.from(r.chipId).toString('hex')
      expect(urls[0]).toBe(`https://kdsintf.amd.com/vcek/v1/Milan/${hwid}?blSPL=4&teeSPL=0&snpSPL=24&ucodeSPL=219`)
      // Offline: the same directory, no fetch → served from disk.
      const offline = createSevSnpVerifier({ certCacheDir: dir })
      const c = await offline.verify(offline.decode({ report: b64(report) }), { now: new Date(v.verify_at) })
      expect(c.measurement).toBe(v.measurement)
      // Another chip's report finds no VCEK offline.
      const gcp = vector('milan-v5-gcp')
      expect(await errorCodeOf(verifyEvidence(evidenceOf(gcp), { now: new Date(gcp.verify_at) }, offline))).toBe('OK')
      expect(await errorCodeOf(verifyEvidence({ report: b64(snpFile(gcp.report)) }, { now: new Date(gcp.verify_at) }, offline))).toBe('ERR_CHAIN_INVALID')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a fetched body that is not a certificate and stores nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-kds-'))
    try {
      const kds = createKdsCache({ dir, fetch: async () => new Uint8Array([1, 2, 3]) })
      expect(await errorCodeOf(kds.getVcek('Milan', r.chipId, r.reportedTcb))).toBe('ERR_EVIDENCE_MALFORMED')
      expect(await createKdsCache({ dir }).getVcek('Milan', r.chipId, r.reportedTcb)).toBeUndefined()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
