import { describe, it, expect } from 'vitest'
import { randomBytes } from 'node:crypto'
import { errorCode, errorCodeOf } from '../../helpers/errors.js'
import { parseAttestationReport, signedBytes } from '../../../src/verifiers/sev-snp/parse.js'
import { buildCertTable, parseCertTable } from '../../../src/verifiers/sev-snp/certs.js'
import { createSevSnpVerifier } from '../../../src/verifiers/sev-snp/index.js'
import { OFF, REPORT_SIZE } from '../../../src/verifiers/sev-snp/layout.js'
import { b64, certDer, manifest, snpFile } from './helpers.js'

const sevSnpVerifier = createSevSnpVerifier()

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const u64hex = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`
const genuine = manifest.vectors.filter((v) => v.expected === 'valid')
const base = snpFile('milan-v2-trustee.bin')
const v5 = snpFile('genoa-v5-oak.bin')

describe('parseAttestationReport over the manifest', () => {
  it.each(manifest.vectors.map((v) => [v.name, v] as const))('%s: fields as the manifest lists', (_n, v) => {
    const bytes = snpFile(v.report)
    const code = errorCode(() => parseAttestationReport(bytes))
    // Only the padding negative has a structurally odd signature; parse leaves signatures to verify.ts.
    expect(code).toBe('OK')
    const r = parseAttestationReport(bytes)
    const m = v as unknown as Record<string, any>
    expect(r.version).toBe(v.report_version)
    expect(hexOf(r.measurement)).toBe(v.measurement)
    expect(hexOf(r.reportData)).toBe(v.report_data)
    expect(hexOf(r.chipId)).toBe(v.chip_id)
    expect(hexOf(r.hostData)).toBe(m.host_data)
    expect(hexOf(r.idKeyDigest)).toBe(m.id_key_digest)
    expect(hexOf(r.reportId)).toBe(m.report_id)
    expect(r.vmpl).toBe(v.vmpl)
    expect(r.guestSvn).toBe(m.guest_svn)
    expect(u64hex(r.policy.raw)).toBe(m.policy)
    expect(r.policy.debug).toBe(v.policy_decoded.debug === 1)
    expect(r.policy.smt).toBe(m.policy_decoded.smt === 1)
    expect(r.policy.migrationAgent).toBe(m.policy_decoded.migrate_ma === 1)
    expect(r.policy.abiMajor).toBe(m.policy_decoded.abi_major)
    expect(u64hex(r.platformInfo.raw)).toBe(m.platform_info)
    expect(r.signingKey).toBe(m.signing_key === 1 ? 'vlek' : 'vcek')
    expect(r.maskChipKey).toBe(m.mask_chip_key === 1)
    for (const k of ['current_tcb', 'reported_tcb', 'committed_tcb', 'launch_tcb'] as const) {
      const want = m[k] as Record<string, unknown>
      const got = r[k === 'current_tcb' ? 'currentTcb' : k === 'reported_tcb' ? 'reportedTcb' : k === 'committed_tcb' ? 'committedTcb' : 'launchTcb']
      expect(u64hex(got.raw)).toBe(want.raw)
      expect({ bl: got.bootloader, tee: got.tee, snp: got.snp, uc: got.microcode, fmc: got.fmc }).toEqual({
        bl: want.bootloader,
        tee: want.tee,
        snp: want.snp,
        uc: want.microcode,
        fmc: want.fmc,
      })
    }
    const fw = `${r.currentVersion.major}.${r.currentVersion.minor}.${r.currentVersion.build}`
    expect(fw).toBe(m.current_fw_version)
    expect(r.cpuid ? `0x${r.cpuid.family.toString(16)}` : null).toBe(m.cpuid_fam_id)
    expect(r.cpuid ? `0x${r.cpuid.model.toString(16)}` : null).toBe(m.cpuid_mod_id)
    expect(r.launchMitVector === undefined ? null : u64hex(r.launchMitVector)).toBe(m.launch_mit_vector)
    if (v.expected === 'valid') expect(r.product ?? 'Milan').toBe(v.product)
    expect(signedBytes(r)).toEqual(bytes.subarray(0, 0x2a0))
  })

  it('decodes the Turin TCB layout (fmc in byte 0) only for family 1Ah', () => {
    const t = parseAttestationReport(snpFile('turin-v5-oak.bin'))
    expect(t.tcbLayout).toBe('turin')
    expect(t.reportedTcb.fmc).toBe(0)
    expect(t.reportedTcb.bootloader).toBe(1)
    const g = parseAttestationReport(v5)
    expect(g.tcbLayout).toBe('milan-genoa')
    expect(g.reportedTcb.fmc).toBeUndefined()
  })

  it('covers the report versions 2, 3 and 5', () => {
    expect(new Set(genuine.map((v) => v.report_version))).toEqual(new Set([2, 3, 5]))
  })
})

describe('parseAttestationReport rejects malformed input with typed errors', () => {
  const patched = (src: Uint8Array, off: number, ...vals: number[]): Uint8Array => {
    const b = src.slice()
    vals.forEach((x, i) => (b[off + i] = x))
    return b
  }
  it.each([
    ['empty', 'ERR_EVIDENCE_MALFORMED', new Uint8Array(0)],
    ['one byte short', 'ERR_EVIDENCE_MALFORMED', base.subarray(0, REPORT_SIZE - 1)],
    ['one byte long', 'ERR_EVIDENCE_MALFORMED', new Uint8Array([...base, 0])],
    ['version 1', 'ERR_EVIDENCE_UNSUPPORTED', patched(base, 0, 1)],
    ['version 4', 'ERR_EVIDENCE_UNSUPPORTED', patched(base, 0, 4)],
    ['version 6', 'ERR_EVIDENCE_UNSUPPORTED', patched(base, 0, 6)],
    ['signature algo 0', 'ERR_EVIDENCE_UNSUPPORTED', patched(base, OFF.SIGNATURE_ALGO, 0)],
    ['signature algo 2', 'ERR_EVIDENCE_UNSUPPORTED', patched(base, OFF.SIGNATURE_ALGO, 2)],
    ['policy bit 17 clear', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.POLICY + 2, 0x01)],
    ['unknown policy bit 40', 'ERR_EVIDENCE_UNSUPPORTED', patched(base, OFF.POLICY + 5, 0x01)],
    ['FLAGS reserved bit 5', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.FLAGS, 0x20)],
    ['SIGNING_KEY 3 (reserved)', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.FLAGS, 3 << 2)],
    ['reserved 0x04C', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.RESERVED_04C + 3, 1)],
    ['v2 CPUID bytes (reserved)', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.CPUID_FAM_ID, 0x19)],
    ['reserved 0x19F', 'ERR_EVIDENCE_MALFORMED', patched(base, 0x19f, 1)],
    ['reserved 0x1EB', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.RESERVED_1EB, 1)],
    ['reserved 0x1EF', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.RESERVED_1EF, 1)],
    ['v2 mitigation vector (reserved)', 'ERR_EVIDENCE_MALFORMED', patched(base, OFF.LAUNCH_MIT_VECTOR, 1)],
    ['v5 reserved 0x208', 'ERR_EVIDENCE_MALFORMED', patched(v5, OFF.RESERVED_208, 1)],
    ['v5 reserved 0x29F', 'ERR_EVIDENCE_MALFORMED', patched(v5, 0x29f, 1)],
  ] as const)('%s → %s', (_n, code, bytes) => {
    expect(errorCode(() => parseAttestationReport(bytes))).toBe(code)
  })

  it('accepts a v5 mitigation vector that a v2 report must not carry', () => {
    const b = v5.slice()
    b[OFF.CURRENT_MIT_VECTOR] = 3
    expect(parseAttestationReport(b).currentMitVector).toBe(3n)
  })

  it('fuzz: every truncation and random byte string gives a report or a KeywardError', () => {
    for (let n = 0; n < REPORT_SIZE; n += 7) expect(errorCode(() => parseAttestationReport(v5.subarray(0, n)))).toBe('ERR_EVIDENCE_MALFORMED')
    for (let n = 1; n < 64; n += 9) expect(errorCode(() => parseAttestationReport(new Uint8Array([...v5, ...new Uint8Array(n)])))).toBe('ERR_EVIDENCE_MALFORMED')
    let parsed = 0
    for (let i = 0; i < 3000; i++) {
      const b = i % 2 === 0 ? new Uint8Array(randomBytes(REPORT_SIZE)) : v5.slice()
      if (i % 2 === 1) for (let k = 0; k < 1 + (i % 5); k++) b[(i * 131 + k * 977) % 0x2a0]! ^= 1 << (i + k) % 8
      if (errorCode(() => parseAttestationReport(b)) === 'OK') parsed++
    }
    expect(parsed).toBeGreaterThan(0)
  })

  it('fuzz: decode() never throws anything but a KeywardError; what it passes (certificates are parsed after the nonce) verify() refuses', async () => {
    const inputs: unknown[] = [null, 1, 'x', [], {}, { report: 1 }, { report: '!!' }, { report: b64(base), extra: 1 }, { report: b64(base), vcek: 'AAAA' }]
    for (let i = 0; i < 300; i++) {
      inputs.push({ report: b64(new Uint8Array(randomBytes(i * 4))) })
      inputs.push({ report: b64(base), certTable: b64(new Uint8Array(randomBytes(i % 80))) })
      inputs.push({ report: b64(base), chain: [b64(new Uint8Array(randomBytes(i)))] })
    }
    for (const x of inputs) {
      const code = errorCode(() => sevSnpVerifier.decode(x))
      expect(code).toMatch(/^ERR_EVIDENCE_(MALFORMED|UNSUPPORTED)$|^OK$/)
      if (code === 'OK') expect(await errorCodeOf(sevSnpVerifier.verify(sevSnpVerifier.decode(x), { now: new Date() }))).toMatch(/^ERR_/)
    }
  })
})

describe('certificate table (GHCB extended report)', () => {
  const vcek = snpFile('milan-v2-trustee.vcek.der')
  const ask = certDer('milan-ask.pem')
  const ark = certDer('milan-ark.pem')

  it('round-trips VCEK, ASK and ARK', () => {
    const t = parseCertTable(buildCertTable({ vcek, ask, ark }))
    expect(t.vcek).toEqual(vcek)
    expect(t.ask).toEqual(ask)
    expect(t.ark).toEqual(ark)
    expect(t.vlek).toBeUndefined()
  })

  it('rejects tables without terminator, with offsets outside, or truncated', () => {
    const good = buildCertTable({ vcek, ask })
    expect(errorCode(() => parseCertTable(good.subarray(0, 30)))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => parseCertTable(good.subarray(0, good.length - 1)))).toBe('ERR_EVIDENCE_MALFORMED')
    const bad = good.slice()
    new DataView(bad.buffer).setUint32(16, 4, true) // VCEK offset points into the header
    expect(errorCode(() => parseCertTable(bad))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('rejects a duplicated GUID', () => {
    const t = buildCertTable({ vcek, ask })
    const dup = t.slice()
    dup.set(t.subarray(0, 16), 24) // second entry gets the VCEK GUID too
    expect(errorCode(() => parseCertTable(dup))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})
