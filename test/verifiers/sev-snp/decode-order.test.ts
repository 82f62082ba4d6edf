// Issue 13 item 8: where SEV-SNP certificate tables are parsed relative to spending the nonce.
// decode() (before the broker consumes the challenge nonce, src/broker/attest.ts) is structural
// only: base64, the fixed-size report, and the GHCB certificate table's entries bounds-checked, so
// malformed input costs no database write. X.509 parsing of the certificates (attacker-sized ASN.1,
// up to seven certificates) runs in verify(), after the nonce was spent: each such attempt costs
// the caller a fresh challenge, as Nitro's cabundle does. Shown on the verifier and through
// POST /v1/attest on SQLite and PostgreSQL (a structural failure leaves the nonce usable; a bad
// certificate spends it).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createSevSnpVerifier } from '../../../src/verifiers/sev-snp/index.js'
import { buildCertTable } from '../../../src/verifiers/sev-snp/certs.js'
import { errorCode, errorCodeOf } from '../../helpers/errors.js'
import { b64, certDer, snpFile, vector } from './helpers.js'
import { startHarness, type Harness } from '../../broker/harness.js'
import { createSessionKey } from '../../../enclave-client/src/session-key.js'

const sevSnpVerifier = createSevSnpVerifier()

const v = vector('milan-v5-gcp')
const report = () => b64(snpFile(v.report))
const notDer = new Uint8Array(64).fill(0x30)
// A table whose one entry points past its end (AMD 56421 certificate table).
const outOfBounds = (() => {
  const t = buildCertTable({ vcek: snpFile(v.vcek!) })
  const view = new DataView(t.buffer, t.byteOffset, t.byteLength)
  view.setUint32(20, t.length + 1, true) // entry 0 length
  return t
})()

describe('sev-snp decode is structural, X.509 waits for verify', () => {
  it('a certificate that is not DER decodes, and verify() refuses it as ERR_EVIDENCE_MALFORMED', async () => {
    const ev = sevSnpVerifier.decode({ report: report(), vcek: b64(notDer) })
    expect(ev.leafDer).toEqual(notDer)
    expect(await errorCodeOf(sevSnpVerifier.verify(ev, { now: new Date(v.verify_at) }))).toBe('ERR_EVIDENCE_MALFORMED')
    const table = sevSnpVerifier.decode({ report: report(), certTable: b64(buildCertTable({ vcek: notDer, ask: certDer('milan-ask.pem'), ark: certDer('milan-ark.pem') })) })
    expect(await errorCodeOf(sevSnpVerifier.verify(table, { now: new Date(v.verify_at) }))).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('a malformed certificate table or report fails decode()', () => {
    expect(errorCode(() => sevSnpVerifier.decode({ report: report(), certTable: b64(outOfBounds) }))).toBe('ERR_EVIDENCE_MALFORMED')
    expect(errorCode(() => sevSnpVerifier.decode({ report: b64(snpFile(v.report).subarray(0, 100)), vcek: b64(notDer) }))).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('the genuine table still verifies', async () => {
    const certTable = b64(buildCertTable({ vcek: snpFile(v.vcek!), ask: certDer('milan-ask.pem'), ark: certDer('milan-ark.pem') }))
    expect((await sevSnpVerifier.verify(sevSnpVerifier.decode({ report: report(), certTable }), { now: new Date(v.verify_at) })).measurement).toBe(v.measurement)
  })
})

describe.each(['sqlite', 'postgres'] as const)('POST /v1/attest with sev-snp certificates (%s)', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend)
  })
  afterAll(async () => {
    await h?.stop()
  })
  const post = async (path: string, body: unknown) => {
    const r = await fetch(h.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: r.status, code: ((await r.json()) as { error?: { code: string } }).error?.code }
  }

  it('a malformed table leaves the nonce unspent; a certificate that is not X.509 spends it', async () => {
    const nonce = ((await (await fetch(`${h.url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string }).nonce
    const key = (await createSessionKey('ES256')).publicJwk
    const attest = (evidence: unknown) => post('/v1/attest', { tee: 'sev-snp', nonce, key, evidence })
    expect(await attest({ report: report(), certTable: b64(outOfBounds) })).toEqual({ status: 400, code: 'ERR_EVIDENCE_MALFORMED' })
    expect(await attest({ report: report(), certTable: b64(outOfBounds) })).toEqual({ status: 400, code: 'ERR_EVIDENCE_MALFORMED' })
    // Structurally sound, so the nonce is spent before the certificate is parsed.
    expect(await attest({ report: report(), vcek: b64(notDer) })).toEqual({ status: 400, code: 'ERR_EVIDENCE_MALFORMED' })
    expect(await attest({ report: report(), vcek: b64(notDer) })).toEqual({ status: 403, code: 'ERR_NONCE_USED' })
  })
})
