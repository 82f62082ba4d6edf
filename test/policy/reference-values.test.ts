import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { activeRefs, importNitroMeasurements, importSnpMeasurement, importTpmPcrs, isActive, referenceValue, tpmPcrSet } from '../../src/policy/reference-values.js'
import { importTpmEventLog } from '../../src/cli/reference-import.js'
import { readManifest, readVector, vectorPath } from '../helpers/vectors.js'
import { NOW } from './helpers.js'
import { errorCode } from '../helpers/errors.js'

const opts = { createdBy: 'testOnlyAdmin', now: NOW }


interface NitroManifest {
  vectors: Array<{ file: string; pcrs?: Record<string, string>; debug_mode?: boolean; genuine: boolean }>
}

describe('Nitro measurements (nitro-cli build-enclave / describe-eif)', () => {
  const v = readManifest<NitroManifest>('nitro').vectors.find((x) => x.file === 'evervault-20221013-085802-prod.cbor')!
  const measurements = { Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: v.pcrs!.PCR0, PCR1: v.pcrs!.PCR1, PCR2: v.pcrs!.PCR2, PCR8: v.pcrs!.PCR8 } }

  it('imports PCR0-2 (and PCR8 of a signed EIF) with provenance', () => {
    const rows = importNitroMeasurements(JSON.stringify(measurements), { ...opts, source: 'payments.eif', expiresAt: NOW.getTime() + 1000 })
    expect(rows.map((r) => [r.set, r.value])).toEqual([
      ['nitro-pcr0', v.pcrs!.PCR0],
      ['nitro-pcr1', v.pcrs!.PCR1],
      ['nitro-pcr2', v.pcrs!.PCR2],
      ['nitro-pcr8', v.pcrs!.PCR8],
    ])
    for (const r of rows) {
      expect(r).toMatchObject({ tee: 'nitro', source: 'nitro-cli: payments.eif', createdBy: 'testOnlyAdmin', createdAt: NOW.getTime(), expiresAt: NOW.getTime() + 1000, revokedAt: null })
      expect(r.id).toMatch(/^rv_[0-9a-f-]{36}$/)
    }
    expect(new Set(rows.map((r) => r.id)).size).toBe(4)
  })

  it('rejects a non-SHA384 or incomplete measurements file', () => {
    expect(errorCode(() => importNitroMeasurements({ Measurements: { ...measurements.Measurements, HashAlgorithm: 'Sha256' } }, opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importNitroMeasurements({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: v.pcrs!.PCR0 } }, opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importNitroMeasurements({ Measurements: { ...measurements.Measurements, PCR1: 'abcd' } }, opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importNitroMeasurements('{', opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importNitroMeasurements(null, opts))).toBe('ERR_BAD_REQUEST')
  })
})

describe('SEV-SNP launch measurement', () => {
  const hex = 'a1b2c3d4'.repeat(12)
  it('accepts hex (with or without 0x) and base64, lowercased', () => {
    expect(importSnpMeasurement(`0x${hex.toUpperCase()}\n`, opts)[0]).toMatchObject({ set: 'snp-measurements', tee: 'sev-snp', value: hex, source: 'sev-snp-measure' })
    expect(importSnpMeasurement(Buffer.from(hex, 'hex').toString('base64'), { ...opts, set: 'snp-db' })[0]).toMatchObject({ set: 'snp-db', value: hex })
  })
  it('rejects other lengths', () => {
    expect(errorCode(() => importSnpMeasurement(hex.slice(2), opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importSnpMeasurement('', opts))).toBe('ERR_BAD_REQUEST')
  })
})

describe('TPM golden PCRs', () => {
  it('imports {bank: {index: hex}} JSON', () => {
    const text = readFileSync(vectorPath('tpm', 'eventlogs', 'rhel8-uefi.pcrs.json'), 'utf8')
    const stated = JSON.parse(text) as Record<string, Record<string, string>>
    const rows = importTpmPcrs(text, { ...opts, indices: [7] })
    expect(rows.map((r) => [r.set, r.value])).toEqual([
      ['tpm-sha1-pcr7', stated.sha1!['7']],
      ['tpm-sha256-pcr7', stated.sha256!['7']],
    ])
  })

  it('imports tpm2_pcrread YAML without reading 0x values as numbers', () => {
    const v7 = '3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969'
    const rows = importTpmPcrs(`sha256:\n  0 : 0x${'00'.repeat(32)}\n  7 : 0x${v7.toUpperCase()}\n`, opts)
    expect(rows.map((r) => [r.set, r.value])).toEqual([
      [tpmPcrSet('sha256', 0), '00'.repeat(32)],
      ['tpm-sha256-pcr7', v7],
    ])
  })

  it('rejects unknown banks, indices and sizes', () => {
    expect(errorCode(() => importTpmPcrs('{"md5": {"0": "00"}}', opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importTpmPcrs(`{"sha256": {"24": "${'00'.repeat(32)}"}}`, opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importTpmPcrs(`{"sha256": {"7": "${'00'.repeat(20)}"}}`, opts))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => importTpmPcrs('[1]', opts))).toBe('ERR_BAD_REQUEST')
  })

  // The replay comes from the TPM verifier (src/verifiers/tpm/eventlog.ts); the stated PCR
  // values beside each log are the source's, so this checks import end to end.
  it.each(['rhel8-uefi', 'glinux-alex', 'gdc-host', 'ubuntu-2404-amd-sevsnp'])('replays the %s event log to its stated PCRs', (name) => {
    const rows = importTpmEventLog(readVector('tpm', 'eventlogs', `${name}.bin`), { ...opts, banks: ['sha256'] })
    const stated = JSON.parse(readFileSync(vectorPath('tpm', 'eventlogs', `${name}.pcrs.json`), 'utf8')) as Record<string, Record<string, string>>
    const got = Object.fromEntries(rows.map((r) => [r.set, r.value]))
    const indices = Object.keys(stated.sha256!)
    expect(indices.length).toBeGreaterThan(0)
    for (const i of indices) expect(got[tpmPcrSet('sha256', Number(i))], `PCR ${i}`).toBe(stated.sha256![i]!.toLowerCase())
    expect(rows.every((r) => r.source === 'tcg-event-log' && r.tee === 'tpm')).toBe(true)
  })

  it('rejects a truncated event log with a typed error', () => {
    const bytes = readVector('tpm', 'eventlogs', 'rhel8-uefi.bin')
    expect(errorCode(() => importTpmEventLog(bytes.subarray(0, 100), opts))).toBe('ERR_EVIDENCE_MALFORMED')
  })
})

describe('activeRefs', () => {
  it('groups values by set, keeps the ids behind each value, drops revoked and expired', () => {
    const a = referenceValue('allowlist-digests', 'tpm', '0xAB'.padEnd(66, 'c'), opts)
    const b = { ...referenceValue('allowlist-digests', 'tpm', a.value, opts) }
    const revoked = { ...referenceValue('allowlist-digests', 'tpm', 'dd'.repeat(32), opts), revokedAt: NOW.getTime() - 5, revokedBy: 'x' }
    const future = { ...referenceValue('allowlist-digests', 'tpm', 'ee'.repeat(32), opts), revokedAt: NOW.getTime() + 5 }
    const proto = referenceValue('odd', 'tpm', '__proto__', opts)
    const r = activeRefs([a, b, revoked, future, proto], NOW, 'tpm')
    expect(a.value).toBe('ab' + 'c'.repeat(62))
    expect(r.refs['allowlist-digests']).toEqual([a.value, 'ee'.repeat(32)])
    expect(r.byValue['allowlist-digests']![a.value]).toEqual([a.id, b.id])
    expect(r.refs['odd']).toEqual(['__proto__'])
    expect(r.ids).toEqual([a.id, b.id, future.id, proto.id])
    expect(isActive(revoked, NOW)).toBe(false)
    expect(isActive(future, NOW)).toBe(true)
    expect(isActive(future, NOW.getTime() + 5)).toBe(false)
  })

  it('rejects bad set names', () => {
    expect(errorCode(() => referenceValue('Bad Set', 'tpm', 'x', opts))).toBe('ERR_BAD_REQUEST')
  })
})
