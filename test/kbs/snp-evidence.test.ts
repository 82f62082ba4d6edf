// guest-components' snp evidence (the sev crate's serde_json form) → keyward's sev-snp wire form.
// The AMD signature covers the report bytes, so a genuine report that verifies after translation
// shows the translation byte-exact: the Trustee fixture (a Genoa report with its VCEK) and every
// valid shared vector, put into the sev JSON form and back.
import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { translateSnpEvidence, reportBytes, KbsSnpEvidence } from '../../src/broker/kbs/snp-evidence.js'
import { createSevSnpVerifier } from '../../src/verifiers/sev-snp/index.js'
import { errorCode, errorCodeOf } from '../helpers/errors.js'
import { certDer, manifest, snpFile } from '../verifiers/sev-snp/helpers.js'
import { certEntry, sevReportJson } from './snp.js'

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/kbs/trustee-snp-evidence.json', import.meta.url)), 'utf8')) as { attestation_report: Record<string, any>; cert_chain: unknown[] }
const hex = (a: number[]) => Buffer.from(a).toString('hex')
const sevSnpVerifier = createSevSnpVerifier()

describe('guest-components snp evidence translation', () => {
  it("Trustee's e2e evidence (genuine Genoa report + VCEK) verifies after translation under the pinned AMD roots", async () => {
    const c = await sevSnpVerifier.verify(sevSnpVerifier.decode(translateSnpEvidence(fixture)), { now: new Date('2025-06-01T00:00:00Z') })
    expect(c.measurement).toBe(hex(fixture.attestation_report.measurement))
    expect(Buffer.from(c.bindingData!).toString('hex')).toBe(hex(fixture.attestation_report.report_data))
    expect((c.details as Record<string, any>).productName).toBe('Genoa')
  })

  it('one changed field of the JSON form → the AMD signature fails (ERR_SIGNATURE_INVALID)', async () => {
    const ev = structuredClone(fixture)
    ev.attestation_report.guest_svn = 1
    expect(await errorCodeOf(sevSnpVerifier.verify(sevSnpVerifier.decode(translateSnpEvidence(ev)), { now: new Date('2025-06-01T00:00:00Z') }))).toBe('ERR_SIGNATURE_INVALID')
  })

  const valid = manifest.vectors.filter((v) => v.expected === 'valid')
  it(`every valid shared vector (${valid.length}: v2, v3, v5; Milan, Genoa, Turin) round-trips byte for byte and verifies at its time`, async () => {
    for (const v of valid) {
      const bytes = snpFile(v.report)
      const json = { attestation_report: sevReportJson(bytes), cert_chain: [certEntry(v.signer, snpFile((v.vcek ?? v.vlek)!)), ...v.chain.map((c) => certEntry(c.includes('ark') ? 'ARK' : 'ASK', certDer(c)))] }
      expect(Buffer.from(reportBytes(KbsSnpEvidence.parse(json).attestation_report)).equals(Buffer.from(bytes)), v.name).toBe(true)
      const c = await sevSnpVerifier.verify(sevSnpVerifier.decode(translateSnpEvidence(json)), { now: new Date(v.verify_at) })
      expect(c.measurement, v.name).toBe(v.measurement)
    }
  })

  it('malformed evidence is ERR_EVIDENCE_MALFORMED naming the field, never a TypeError', () => {
    const r = fixture.attestation_report
    const bad: unknown[] = [
      null,
      'AAAA',
      { attestation_report: { ...r, policy: 2 ** 60 } },
      { attestation_report: { ...r, measurement: r.measurement.slice(1) } },
      { attestation_report: { ...r, chip_id: [...r.chip_id.slice(1), 256] } },
      { attestation_report: { ...r, current_tcb: { bootloader: 1 } } },
      { attestation_report: { ...r, extra: 1 } },
      { attestation_report: r, cert_chain: [{ cert_type: 'VCEK', data: 'AAAA' }] },
      { attestation_report: r, cert_chain: Array(9).fill({ cert_type: 'ASK', data: [] }) },
    ]
    for (const b of bad) expect(errorCode(() => translateSnpEvidence(b)), JSON.stringify(b).slice(0, 80)).toBe('ERR_EVIDENCE_MALFORMED')
  })
})
