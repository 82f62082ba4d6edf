// Every quote set in ../shared/vectors/tpm/manifest.json verifies as the manifest says (the same
// arguments conformance.sh passes to `keyward verify --tee tpm`), and tampering is rejected
// with a specific code.
import { describe, it, expect } from 'vitest'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { readManifest, vectorPath, readVector } from '../../helpers/vectors.js'
import { verifyTpmCommand } from '../../../src/cli/verify-tpm.js'
import { KeywardError } from '../../../src/errors.js'
import { fromHex, toHex, sha256 } from '../../../src/util/bytes.js'
import {
  akName, createTpmVerifier, parseAkPublic, parseAttest, parsePcrsFile, parseSignature, parseTpmPublic, verifyQuote, verifyTpmEvidence,
  type TpmEvidence,
} from '../../../src/verifiers/tpm/index.js'
import { errorCodeOf } from '../../helpers/errors.js'

interface QuoteSet { id: string; dir: string; quotes: Record<string, { nonceHex: string; firmwareVersion: string; pcrSelection: string; sigScheme: string }> }
const manifest = readManifest<{ quoteSets: QuoteSet[] }>('tpm')

const cases = manifest.quoteSets.flatMap((s) => {
  const d = vectorPath('tpm', s.dir)
  const ak = existsSync(join(d, 'ak.pub.pem')) ? 'ak.pub.pem' : '../ak.pub.pem'
  return Object.entries(s.quotes).map(([bank, q]) => {
    const stem = existsSync(join(d, `quote-${bank}.msg`)) ? `quote-${bank}` : 'quote'
    const args = ['--ak', join(d, ak), '--quote', join(d, `${stem}.msg`), '--sig', join(d, `${stem}.sig`), '--pcrs', join(d, `${stem}.pcrs`)]
    if (q.nonceHex) args.push('--nonce', q.nonceHex)
    const log = existsSync(join(d, 'eventlog.bin')) ? join(d, 'eventlog.bin') : undefined
    if (log) args.push('--eventlog', log)
    return { id: `${s.id}/${bank}`, d, stem, ak: join(d, ak), bank, q, args, log }
  })
})


function evidenceOf(c: (typeof cases)[number], akFile = c.ak): TpmEvidence {
  return {
    ak: parseAkPublic(new Uint8Array(readFileSync(akFile))),
    attest: parseAttest(new Uint8Array(readFileSync(join(c.d, `${c.stem}.msg`)))),
    signature: parseSignature(new Uint8Array(readFileSync(join(c.d, `${c.stem}.sig`)))),
    pcrs: parsePcrsFile(new Uint8Array(readFileSync(join(c.d, `${c.stem}.pcrs`)))),
  }
}

describe('manifest quote sets (conformance.sh arguments)', () => {
  it('covers all 19 quotes of the manifest', () => {
    expect(cases.length).toBe(19)
  })
  it.each(cases)('$id verifies', async (c) => {
    const claims = await verifyTpmCommand(c.args)
    expect(claims.tee).toBe('tpm')
    expect(toHex(claims.bindingData)).toBe(c.q.nonceHex)
    expect(claims.details.firmwareVersion).toBe(c.q.firmwareVersion)
    expect(claims.details.sigScheme).toBe(c.q.sigScheme)
    const [bank, list] = c.q.pcrSelection.split(':') as [string, string]
    const pcrs = (claims.details.pcrs as Record<string, Record<string, string>>)[bank]!
    expect(Object.keys(pcrs).map(Number)).toEqual(list.split(',').map(Number))
    // pcrs.json / pcrs-<bank>.json hold the same values the PCR file carried
    const json = existsSync(join(c.d, `pcrs-${c.bank}.json`)) ? `pcrs-${c.bank}.json` : 'pcrs.json'
    expect(pcrs).toEqual(JSON.parse(readFileSync(join(c.d, json), 'utf8'))[bank])
    expect(claims.measurement).toMatch(/^[0-9a-f]+$/)
    expect(claims.issuedAt).toBeNull()
    if (c.log) {
      const ev = claims.details.eventLog as Record<string, unknown>
      expect(ev.eventCount).toBeGreaterThan(0)
      // the replayed log vouches for some of the quoted PCRs of this bank, and only for those
      const verified = (ev.verifiedPcrs as Record<string, number[]>)[bank]
      expect(verified?.length).toBeGreaterThan(0)
      for (const i of verified!) expect(Object.keys(pcrs).map(Number)).toContain(i)
    }
  })
  it.each(cases.filter((c) => c.q.nonceHex))('$id: a wrong nonce is ERR_NONCE_MISMATCH', async (c) => {
    const args = [...c.args]
    const i = args.indexOf('--nonce')
    const n = fromHex(c.q.nonceHex)!
    n[0]! ^= 1
    args[i + 1] = toHex(n)
    expect(await errorCodeOf(verifyTpmCommand(args))).toBe('ERR_NONCE_MISMATCH')
  })
})

describe('AK forms and names', () => {
  const gce = vectorPath('tpm', 'gce-cos85-vtpm/nonce9009')
  it('TPM2B_PUBLIC and TPMT_PUBLIC give the stored AK name; PEM gives the same key', () => {
    const name = readFileSync(join(gce, 'ak.name.hex'), 'utf8').trim()
    const t2b = parseTpmPublic(readVector('tpm', 'gce-cos85-vtpm/nonce9009/ak.tpm2b.pub'))
    const tt = parseTpmPublic(readVector('tpm', 'gce-cos85-vtpm/nonce9009/ak.tpmt.pub'))
    expect(toHex(akName(t2b))).toBe(name)
    expect(toHex(akName(tt))).toBe(name)
    const pem = parseAkPublic(readVector('tpm', 'gce-cos85-vtpm/nonce9009/ak.pub.pem'))
    expect(pem.public).toBeUndefined()
    expect(pem.key.export({ format: 'jwk' })).toEqual(parseAkPublic(readVector('tpm', 'gce-cos85-vtpm/nonce9009/ak.tpm2b.pub')).key.export({ format: 'jwk' }))
  })
  it.each(['rsa', 'ecc'])('swtpm %s AK: name = nameAlg ‖ sha256(TPMT_PUBLIC) matches tpm2_createak', (alg) => {
    const p = parseTpmPublic(readVector('tpm', `swtpm/${alg}/ak.pub`))
    expect(toHex(akName(p))).toBe(toHex(readVector('tpm', `swtpm/${alg}/ak.name`)))
  })
  it('the AK given as TPM2B reports verified attributes, as PEM reports them unknown', async () => {
    const c = cases.find((x) => x.id === 'gce-cos85-nonce9009/sha256')!
    const viaTpm = await verifyTpmCommand(c.args.map((a) => (a === c.ak ? join(c.d, 'ak.tpm2b.pub') : a)))
    expect(viaTpm.details.akAttributesVerified).toBe(true)
    expect(viaTpm.details.akName).toBe(readFileSync(join(c.d, 'ak.name.hex'), 'utf8').trim())
    const viaPem = await verifyTpmCommand(c.args)
    expect(viaPem.details.akAttributesVerified).toBe(false)
    expect(viaPem.details.akName).toBeNull()
    expect(viaPem).toMatchObject({ ak: { name: null, trust: null } })
    expect(viaTpm).toMatchObject({ ak: { name: viaTpm.details.akName, trust: null } })
  })
})

describe('tampering', () => {
  const rsa = cases.find((c) => c.id === 'gce-cos85-nonce9009/sha256')!
  const ecc = cases.find((c) => c.id === 'swtpm-ecc-0001/sha256')!
  const win = cases.find((c) => c.id === 'gce-windows-shielded-vm/sha1')!

  it.each([rsa, ecc, win])('$id: every flipped quote byte is rejected with a specific code', (c) => {
    const msg = new Uint8Array(readFileSync(join(c.d, `${c.stem}.msg`)))
    const base = evidenceOf(c)
    const codes = new Set<string>()
    for (let i = 0; i < msg.length; i++) {
      const m = msg.slice()
      m[i]! ^= 0x01
      let code = 'OK'
      try {
        verifyQuote({ ...base, attest: parseAttest(m) })
      } catch (e) {
        expect(e).toBeInstanceOf(KeywardError)
        code = (e as KeywardError).code
      }
      expect(code, `byte ${i}`).not.toBe('OK')
      codes.add(code)
    }
    expect([...codes].every((x) => ['ERR_SIGNATURE_INVALID', 'ERR_EVIDENCE_MALFORMED', 'ERR_EVIDENCE_UNSUPPORTED'].includes(x))).toBe(true)
  })
  it.each([rsa, ecc, win])('$id: every flipped signature byte is rejected', (c) => {
    const sig = new Uint8Array(readFileSync(join(c.d, `${c.stem}.sig`)))
    const base = evidenceOf(c)
    for (let i = 0; i < sig.length; i++) {
      const s = sig.slice()
      s[i]! ^= 0x80
      let code = 'OK'
      try {
        verifyQuote({ ...base, signature: parseSignature(s) })
      } catch (e) {
        expect(e).toBeInstanceOf(KeywardError)
        code = (e as KeywardError).code
      }
      expect(['ERR_SIGNATURE_INVALID', 'ERR_EVIDENCE_MALFORMED', 'ERR_EVIDENCE_UNSUPPORTED'], `byte ${i}`).toContain(code)
    }
  })
  it.each([rsa, ecc])('$id: a PCR value that does not match the digest is ERR_PCR_DIGEST_MISMATCH', async (c) => {
    const e = evidenceOf(c)
    const bank = e.pcrs.banks[e.pcrs.selection[0]!.hash]!
    const [idx, v] = [...bank][0]!
    const changed = v.slice()
    changed[0]! ^= 1
    bank.set(idx, changed)
    expect(await errorCodeOf(() => verifyQuote(e))).toBe('ERR_PCR_DIGEST_MISMATCH')
  })
  it('a presented selection different from the quoted one is ERR_PCR_DIGEST_MISMATCH', async () => {
    const e = evidenceOf(rsa)
    e.pcrs.selection = [{ hash: 'sha256', pcrs: e.pcrs.selection[0]!.pcrs.slice(1) }]
    expect(await errorCodeOf(() => verifyQuote(e))).toBe('ERR_PCR_DIGEST_MISMATCH')
  })
  it('a signature by a different AK is ERR_SIGNATURE_INVALID', async () => {
    const e = evidenceOf(rsa, vectorPath('tpm', 'az-snp-vtpm/evidence-v0/ak.pub.pem'))
    expect(await errorCodeOf(() => verifyQuote(e))).toBe('ERR_SIGNATURE_INVALID')
    const x = evidenceOf(ecc, vectorPath('tpm', 'swtpm/rsa/ak.pub.pem'))
    expect(await errorCodeOf(() => verifyQuote(x))).toBe('ERR_SIGNATURE_INVALID')
  })

  // TPMA_OBJECT bits at byte offset 4..7 of TPMT_PUBLIC: the key (and so the signature) stays valid.
  const clearBit = (tpmt: Uint8Array, bit: number): Uint8Array => {
    const t = tpmt.slice()
    const v = new DataView(t.buffer)
    v.setUint32(4, v.getUint32(4) & ~bit)
    return t
  }
  it.each([
    ['restricted', 1 << 16],
    ['fixedTPM', 1 << 1],
    ['fixedParent', 1 << 4],
    ['sensitiveDataOrigin', 1 << 5],
    ['sign', 1 << 18],
  ])('an AK without %s is ERR_AK_ATTRIBUTES', async (name, bit) => {
    const tpmt = readVector('tpm', 'gce-cos85-vtpm/nonce9009/ak.tpmt.pub')
    const e = evidenceOf(rsa)
    e.ak = parseAkPublic(clearBit(tpmt, bit))
    try {
      verifyQuote(e)
      expect.unreachable()
    } catch (err) {
      expect((err as KeywardError).code).toBe('ERR_AK_ATTRIBUTES')
      expect((err as KeywardError).detail?.missing).toEqual([name])
    }
  })
})

describe('createTpmVerifier (broker path)', () => {
  const tpmVerifier = createTpmVerifier()
  const c = cases.find((x) => x.id === 'swtpm-rsa-0001/sha256')!
  const wire = () => ({
    ak: readFileSync(vectorPath('tpm', 'swtpm/rsa/ak.pub')).toString('base64'),
    quote: readFileSync(join(c.d, 'quote.msg')).toString('base64'),
    signature: readFileSync(join(c.d, 'quote.sig')).toString('base64'),
    pcrs: readFileSync(join(c.d, 'quote.pcrs')).toString('base64'),
  })
  const name = toHex(readVector('tpm', 'swtpm/rsa/ak.name'))
  const nonce = fromHex(c.q.nonceHex)!
  const registered = async (n: string) => (n === name ? { via: 'credential-activation' as const, workload: 'w1', revoked: false } : null)

  it('verifies with a registered AK and the expected extraData', async () => {
    const claims = await tpmVerifier.verify(tpmVerifier.decode(wire()), { now: new Date(), expectedBinding: nonce, resolveAk: registered })
    expect(claims.details.akName).toBe(name)
    expect(claims.details.akTrust).toEqual({ via: 'credential-activation', workload: 'w1' })
    // typed for the broker: the AK and its registered workload, the quoted PCRs as bytes (details shows them as hex)
    expect(claims.ak).toEqual({ name, trust: { via: 'credential-activation', workload: 'w1' } })
    const hexPcrs = Object.fromEntries(Object.entries(claims.pcrs).map(([bank, m]) => [bank, Object.fromEntries([...m].map(([i, b]) => [String(i), toHex(b)]))]))
    expect(hexPcrs).toEqual(claims.details.pcrs)
    expect(Object.keys(hexPcrs.sha256 ?? {})).not.toHaveLength(0)
    expect(claims.details.akAttributesVerified).toBe(true)
    expect(claims.debug).toBe(false)
  })
  it('an unregistered AK is ERR_AK_UNTRUSTED', async () => {
    const ev = tpmVerifier.decode(wire())
    expect(await errorCodeOf(tpmVerifier.verify(ev, { now: new Date(), resolveAk: async () => null }))).toBe('ERR_AK_UNTRUSTED')
    expect(await errorCodeOf(tpmVerifier.verify(ev, { now: new Date(), resolveAk: async () => ({ via: 'pinned', workload: 'w', revoked: true }) }))).toBe('ERR_AK_UNTRUSTED')
  })
  it('an AK given only as PEM cannot be resolved: ERR_AK_UNTRUSTED', async () => {
    const ev = tpmVerifier.decode({ ...wire(), ak: readFileSync(vectorPath('tpm', 'swtpm/rsa/ak.pub.pem'), 'utf8') })
    expect(await errorCodeOf(tpmVerifier.verify(ev, { now: new Date(), resolveAk: registered }))).toBe('ERR_AK_UNTRUSTED')
  })
  it('extraData that is not the binding digest is ERR_BINDING_MISMATCH', async () => {
    const ev = tpmVerifier.decode(wire())
    expect(await errorCodeOf(tpmVerifier.verify(ev, { now: new Date(), expectedBinding: sha256(nonce), resolveAk: registered }))).toBe('ERR_BINDING_MISMATCH')
  })
  it.each([
    [{}],
    [{ ak: 'x', quote: 'x', signature: 'x' }],
    [{ ak: '!!', quote: 'AA==', signature: 'AA==', pcrs: 'AA==' }],
    [{ ak: 'AA==', quote: 'AA==', signature: 'AA==', pcrs: 'AA==', extra: 1 }],
    [null],
    ['string'],
  ])('decode rejects %j with a KeywardError', async (bad) => {
    expect(['ERR_EVIDENCE_MALFORMED', 'ERR_EVIDENCE_UNSUPPORTED']).toContain(await errorCodeOf(() => tpmVerifier.decode(bad)))
  })
  it('direct verifyTpmEvidence also replays an event log given in the evidence', async () => {
    const g = cases.find((x) => x.id === 'gce-cos85-nonce9009/sha256')!
    const ev = evidenceOf(g, join(g.d, 'ak.tpm2b.pub'))
    const w = tpmVerifier.decode({
      ak: readFileSync(join(g.d, 'ak.tpm2b.pub')).toString('base64'),
      quote: readFileSync(join(g.d, 'quote-sha256.msg')).toString('base64'),
      signature: readFileSync(join(g.d, 'quote-sha256.sig')).toString('base64'),
      pcrs: readFileSync(join(g.d, 'quote-sha256.pcrs')).toString('base64'),
      eventLog: readFileSync(join(g.d, 'eventlog.bin')).toString('base64'),
    })
    expect(w.eventLog?.events.length).toBeGreaterThan(0)
    const claims = await verifyTpmEvidence(w, { now: new Date(), expectedNonce: fromHex('9009')! })
    expect((claims.details.eventLog as { secureBoot: boolean }).secureBoot).toBe(true)
    expect(toHex(ev.attest.extraData)).toBe('9009')
  })
})
