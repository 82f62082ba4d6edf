// Every document in ../shared/vectors/nitro: genuine ones verify at their own timestamp with the
// manifest's PCRs and fields; at today's date they are expired; the shipped negatives fail with
// specific codes.
import { describe, it, expect } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { readManifest, readVector } from '../../helpers/vectors.js'
import { createNitroVerifier, parseNitroDocument } from '../../../src/verifiers/nitro/index.js'
import type { NitroClaims } from '../../../src/protocol/claims.js'
import type { NitroDetails } from '../../../src/verifiers/nitro/verify.js'
import { toHex } from '../../../src/util/bytes.js'
import { errorCodeOf } from '../../helpers/errors.js'

const nitroVerifier = createNitroVerifier()

interface FieldInfo { encoding: 'null' | 'bstr'; length?: number; hex?: string }
interface Vector {
  file: string
  genuine: boolean
  expected: string
  kind: string
  module_id: string
  timestamp_ms: number
  digest: string
  debug_mode: boolean | null
  pcr_map_key: 'pcrs' | 'nitrotpm_pcrs'
  pcr_count: number
  pcrs: Record<string, string>
  other_nonzero_pcrs?: Record<string, string>
  public_key: FieldInfo
  user_data: FieldInfo
  nonce: FieldInfo
  cabundle_count: number
  leaf: { notAfter: string }
}
interface Manifest { vectors: Vector[]; root: { sha256_der: string }; companion_files: { file: string }[] }

const manifest = readManifest<Manifest>('nitro')
const genuine = manifest.vectors.filter((v) => v.genuine && v.expected === 'valid-at-timestamp')
const ZERO48 = '00'.repeat(48)

async function verifyAt(file: string, now: Date, ctx: Record<string, unknown> = {}): Promise<NitroClaims<NitroDetails>> {
  const ev = parseNitroDocument(readVector('nitro', file))
  return nitroVerifier.verify(ev, { now, ...ctx })
}


function expectField(actual: Uint8Array | null, hexDetail: string | null, f: FieldInfo): void {
  if (f.encoding === 'null') {
    expect(actual).toBeNull()
    expect(hexDetail).toBeNull()
  } else {
    expect(actual).not.toBeNull()
    expect(actual!.length).toBe(f.length)
    if (f.hex !== undefined) expect(hexDetail).toBe(f.hex)
  }
}

describe('nitro vectors', () => {
  it('covers enclave and NitroTPM documents', () => {
    expect(genuine.length).toBeGreaterThanOrEqual(30)
    expect(genuine.some((v) => v.pcr_map_key === 'nitrotpm_pcrs')).toBe(true)
  })

  it.each(genuine.map((v) => [v.file, v] as const))('%s verifies at its timestamp with the manifest claims', async (_f, v) => {
    const c = await verifyAt(v.file, new Date(v.timestamp_ms))
    const d = c.details
    expect(c.tee).toBe('nitro')
    expect(d.kind).toBe(v.pcr_map_key === 'pcrs' ? 'enclave' : 'nitrotpm')
    expect(d.moduleId).toBe(v.module_id)
    expect(d.digest).toBe(v.digest)
    expect(d.timestamp).toBe(v.timestamp_ms)
    expect(c.issuedAt).toBe(new Date(v.timestamp_ms).toISOString())
    expect(Object.keys(d.pcrs)).toHaveLength(v.pcr_count)
    // the typed PCRs (bytes, bank sha384) are the ones details shows as hex
    expect(Object.keys(c.pcrs)).toEqual(['sha384'])
    expect(Object.fromEntries([...c.pcrs.sha384!].map(([i, b]) => [String(i), toHex(b)]))).toEqual(d.pcrs)
    const want = { ...v.pcrs, ...(v.other_nonzero_pcrs ?? {}) }
    for (const [name, hex] of Object.entries(want)) {
      expect(d.pcrs[name.replace('PCR', '')], name).toBe(hex === 'zero' ? ZERO48 : hex)
    }
    expect(c.measurement).toBe(d.pcrs[v.pcr_map_key === 'pcrs' ? '0' : '4'])
    expect(c.debug).toBe(v.debug_mode === true)
    expectField(c.publicKey, d.publicKey, v.public_key)
    expectField(c.nonce, d.nonce, v.nonce)
    expectField(v.user_data.encoding === 'null' ? null : c.bindingData, d.userData, v.user_data)
    if (v.user_data.encoding === 'null') expect(c.bindingData).toHaveLength(0)
    expect(d.certificateFingerprints).toHaveLength(v.cabundle_count + 1)
    expect(d.certificateFingerprints[0]).toBe(manifest.root.sha256_der)
  })

  it.each(genuine.map((v) => [v.file, v] as const))('%s is rejected as expired at today\'s date and after its leaf expires', async (_f, v) => {
    expect(await errorCodeOf(verifyAt(v.file, new Date()))).toBe('ERR_CERT_EXPIRED')
    const leafEnd = new Date(v.leaf.notAfter).getTime()
    expect(await errorCodeOf(verifyAt(v.file, new Date(leafEnd + 61_000)))).toBe('ERR_CERT_EXPIRED')
    expect(await errorCodeOf(verifyAt(v.file, new Date(leafEnd + 61_000), { clockSkewMs: 120_000 }))).toBe('OK')
  })

  it('is valid ±10 minutes around a timestamp and not a day before it', async () => {
    const v = genuine[0]!
    expect(await errorCodeOf(verifyAt(v.file, new Date(v.timestamp_ms + 600_000)))).toBe('OK')
    expect(await errorCodeOf(verifyAt(v.file, new Date(v.timestamp_ms - 86_400_000)))).toBe('ERR_CERT_EXPIRED')
  })

  it('rejects the shipped bad-signature document', async () => {
    const v = manifest.vectors.find((x) => x.file.includes('NEG-badsig'))!
    expect(await errorCodeOf(verifyAt(v.file, new Date(v.timestamp_ms)))).toBe('ERR_SIGNATURE_INVALID')
    // signature before chain: still a signature failure at a time the chain has expired
    expect(await errorCodeOf(verifyAt(v.file, new Date()))).toBe('ERR_SIGNATURE_INVALID')
  })

  it('rejects the self-signed mock (unprotected header null) as malformed, and as untrusted once that is patched', async () => {
    const v = manifest.vectors.find((x) => x.file.includes('NEG-selfsigned'))!
    const bytes = readVector('nitro', v.file)
    expect(() => parseNitroDocument(bytes)).toThrow(expect.objectContaining({ code: 'ERR_EVIDENCE_MALFORMED' }))
    // the unprotected header is not signed: replacing null (0xf6) by {} (0xa0) keeps the signature valid,
    // so the document gets as far as the chain, where its null cabundle fails.
    const patched = Uint8Array.from(bytes)
    expect(patched.subarray(0, 7)).toEqual(Uint8Array.from([0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xf6]))
    patched[6] = 0xa0
    const ev = parseNitroDocument(patched)
    expect(await errorCodeOf(nitroVerifier.verify(ev, { now: new Date(v.timestamp_ms * 1000) }))).toBe('ERR_EVIDENCE_MALFORMED')
  })

  it('binds the evervault TLS certificate key through user_data', async () => {
    const tls = new X509Certificate(readVector('nitro', 'evervault-20230918-150330-bound-tls-cert.der'))
    const spki = new Uint8Array(tls.publicKey.export({ type: 'spki', format: 'der' }))
    const v = genuine.find((x) => x.file === 'evervault-20230918-150330-debug.cbor')!
    const c = await verifyAt(v.file, new Date(v.timestamp_ms))
    expect(toHex(c.bindingData)).toBe(toHex(spki))
    expect(await errorCodeOf(verifyAt(v.file, new Date(v.timestamp_ms), { expectedBinding: spki }))).toBe('OK')
    const other = Uint8Array.from(spki)
    other[other.length - 1]! ^= 1
    expect(await errorCodeOf(verifyAt(v.file, new Date(v.timestamp_ms), { expectedBinding: other }))).toBe('ERR_BINDING_MISMATCH')
  })

  it('checks nonce and binding against the context, constant-time, and treats a null field as a mismatch', async () => {
    const withNonce = genuine.find((x) => x.nonce.encoding === 'bstr' && x.user_data.encoding === 'bstr')!
    const at = new Date(withNonce.timestamp_ms)
    const c = await verifyAt(withNonce.file, at)
    expect(await errorCodeOf(verifyAt(withNonce.file, at, { expectedNonce: c.nonce!, expectedBinding: c.bindingData }))).toBe('OK')
    const wrong = Uint8Array.from(c.nonce!)
    wrong[0]! ^= 0xff
    expect(await errorCodeOf(verifyAt(withNonce.file, at, { expectedNonce: wrong }))).toBe('ERR_NONCE_MISMATCH')
    expect(await errorCodeOf(verifyAt(withNonce.file, at, { expectedNonce: c.nonce!.subarray(1) }))).toBe('ERR_NONCE_MISMATCH')
    const noNonce = genuine.find((x) => x.nonce.encoding === 'null')!
    expect(await errorCodeOf(verifyAt(noNonce.file, new Date(noNonce.timestamp_ms), { expectedNonce: new Uint8Array(32) }))).toBe('ERR_NONCE_MISMATCH')
    const noUser = genuine.find((x) => x.user_data.encoding === 'null')!
    expect(await errorCodeOf(verifyAt(noUser.file, new Date(noUser.timestamp_ms), { expectedBinding: new Uint8Array(32) }))).toBe('ERR_BINDING_MISMATCH')
  })

  it('tells null, empty and absent optional fields apart', async () => {
    const empty = genuine.find((x) => x.file.startsWith('nitrite-20240507'))!
    const c = await verifyAt(empty.file, new Date(empty.timestamp_ms))
    expect(c.details.userData).toBe('')
    expect(c.details.nonce).toBe('')
    expect(c.details.absentFields).toEqual([])
    const nul = await verifyAt(genuine[0]!.file, new Date(genuine[0]!.timestamp_ms))
    expect(nul.details.userData).toBeNull()
  })

  it('decodes the wire shape {document: base64}', async () => {
    const v = genuine[0]!
    const doc = Buffer.from(readVector('nitro', v.file)).toString('base64')
    const ev = nitroVerifier.decode({ document: doc })
    const c = await nitroVerifier.verify(ev, { now: new Date(v.timestamp_ms) })
    expect(c.details.moduleId).toBe(v.module_id)
    expect(nitroVerifier.decode({ document: doc.replace(/=+$/, '') }).cose.signature).toEqual(ev.cose.signature)
    for (const bad of [null, 'x', {}, { document: 5 }, { document: doc, extra: 1 }, { document: doc.slice(0, 10) + '!' + doc.slice(11) }, { document: '' }]) {
      expect(() => nitroVerifier.decode(bad), JSON.stringify(bad).slice(0, 40)).toThrow(expect.objectContaining({ code: 'ERR_EVIDENCE_MALFORMED' }))
    }
  })
})
