// Lab scenario 1: measured boot under OVMF with swtpm. The guest quotes PCR 0-7 and the
// allowlist PCR over /dev/tpmrm0 with our nonce and returns the quote and the firmware's UEFI
// event log; the host verifies the quote (src/verifiers/tpm and tpm2_checkquote), the EK
// certificate against the swtpm local CA, and replays the event log against the quoted PCRs.
import { beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { isKeywardError, type KeywardError } from '../../src/errors.js'
import { toHex } from '../../src/util/bytes.js'
import { parseCertificate } from '../../src/verifiers/common/x509.js'
import { verifyEkCertificate } from '../../src/verifiers/tpm/ek.js'
import {
  parseAkPublic, parseAttest, parseEventLog, parsePcrsFile, parseSignature, replayEventLog, verifyQuote,
  type VerifiedQuote,
} from '../../src/verifiers/tpm/index.js'
import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { REPO_ROOT } from '../helpers/vectors.js'
import { checkQuoteWithTpm2Tools, runLab, type LabRun } from './lab.js'

const nonce = randomBytes(32)
let lab: LabRun

function verify(l: LabRun, expected: Uint8Array): VerifiedQuote {
  return verifyQuote(
    { ak: parseAkPublic(l.bytes('ak.pub')), attest: parseAttest(l.bytes('quote.msg')), signature: parseSignature(l.bytes('quote.sig')), pcrs: parsePcrsFile(l.bytes('quote.pcrs')) },
    { value: expected, code: 'ERR_NONCE_MISMATCH' },
  )
}

function codeOf(f: () => unknown): { code: string; detail: Record<string, unknown> | undefined } {
  try {
    f()
  } catch (e) {
    if (isKeywardError(e)) return { code: e.code, detail: (e as KeywardError).detail }
    throw e
  }
  throw new Error('expected a KeywardError')
}

const challengesServed: string[] = []

beforeAll(async () => {
  // A stand-in for the broker's challenge route, reached only through the virtio-serial relay:
  // the guest has no network, so a quote over this nonce proves the channel end to end.
  const server = createServer((req, res) => {
    challengesServed.push(`${req.method} ${req.url}`)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ nonce: nonce.toString('hex') }))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  try {
    lab = await runLab('measured-boot', { relay: '1', pcr: '15' }, { relay: `http://127.0.0.1:${port}` })
  } finally {
    server.close()
  }
})

describe('lab: measured boot (OVMF + swtpm + /dev/tpmrm0)', () => {
  it('the guest fetched its nonce from the host over virtio-serial (no network in the guest)', () => {
    expect(challengesServed).toEqual(['POST /v1/challenge'])
    expect(lab.text('nonce.hex').trim()).toBe(nonce.toString('hex'))
  })

  it('quote verifies with the nonce (our verifier and tpm2_checkquote) and covers PCR 0-7 and 15', async () => {
    const q = verify(lab, nonce)
    expect(q.akAttributesVerified).toBe(true)
    expect([...q.pcrs.sha256!.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 15])
    // No agent ran in this boot: the allowlist PCR is still at its reset value.
    expect(toHex(q.pcrs.sha256!.get(15)!)).toBe('00'.repeat(32))
    // Firmware measured the boot: PCR 0 is not at its reset value.
    expect(toHex(q.pcrs.sha256!.get(0)!)).not.toBe('00'.repeat(32))
    expect(await checkQuoteWithTpm2Tools(lab, nonce.toString('hex'))).toBe(true)
  })

  it('a quote for another nonce is refused (ERR_NONCE_MISMATCH), by both verifiers', async () => {
    const other = Buffer.from(nonce)
    other[0]! ^= 1
    expect(codeOf(() => verify(lab, other)).code).toBe('ERR_NONCE_MISMATCH')
    expect(await checkQuoteWithTpm2Tools(lab, other.toString('hex'))).toBe(false)
  })

  it('the EK certificate chains to the swtpm local CA and certifies the EK the AK was made under', () => {
    const roots = [parseCertificate(lab.hostText('tpm/ca-root.pem'), 'root')]
    const ek = createPublicKey(lab.text('ek.pub.pem'))
    const v = verifyEkCertificate(
      { certificate: lab.bytes('ek.cert.der'), chain: [lab.hostText('tpm/ca-intermediate.pem')], ekPublic: ek },
      { roots, now: new Date() },
    )
    expect(v.path).toHaveLength(3)
    // Under an unrelated anchor (AWS's Nitro root) the same certificate is untrusted.
    const unrelated = parseCertificate(readFileSync(join(REPO_ROOT, 'src/verifiers/nitro/roots/aws-nitro-enclaves-root-g1.pem'), 'utf8'), 'unrelated root')
    expect(codeOf(() => verifyEkCertificate(
      { certificate: lab.bytes('ek.cert.der'), chain: [lab.hostText('tpm/ca-intermediate.pem')] },
      { roots: [unrelated], now: new Date() },
    )).code).toBe('ERR_EK_UNTRUSTED')
  })

  it('the UEFI event log replays to every quoted PCR it extends (0-7)', () => {
    const q = verify(lab, nonce)
    const log = parseEventLog(lab.bytes('eventlog.bin'))
    expect(log.format).toBe('crypto-agile')
    const r = replayEventLog(log, { sha256: q.pcrs.sha256! })
    expect(r.bank).toBe('sha256')
    expect(r.verified.sha256!.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('one altered event is denied with its PCR named (one case per PCR 0-7)', () => {
    const q = verify(lab, nonce)
    const raw = lab.bytes('eventlog.bin')
    const log = parseEventLog(raw)
    const hay = Buffer.from(raw)
    const tried: number[] = []
    for (let pcr = 0; pcr <= 7; pcr++) {
      // Pick an event of this PCR whose digest occurs once in the log, so the flipped byte is its own.
      const ev = log.events.find((e) => {
        const d = e.pcr === pcr ? e.digests.sha256 : undefined
        return d !== undefined && hay.indexOf(Buffer.from(d)) === hay.lastIndexOf(Buffer.from(d))
      })
      if (!ev) continue
      const altered = Buffer.from(raw)
      altered[altered.indexOf(Buffer.from(ev.digests.sha256!)) + 7]! ^= 0x80
      const err = codeOf(() => replayEventLog(parseEventLog(new Uint8Array(altered)), { sha256: q.pcrs.sha256! }))
      expect(err.code).toBe('ERR_EVENTLOG_REPLAY')
      expect(err.detail?.pcr).toBe(pcr)
      expect(err.detail?.expected).toBe(toHex(q.pcrs.sha256!.get(pcr)!))
      tried.push(pcr)
    }
    // OVMF measures into PCR 0, 1, 2, 4, 5 and 7 with distinct events at least.
    expect(tried.length).toBeGreaterThanOrEqual(5)
    expect(tried).toContain(0)
    expect(tried).toContain(4)
  })
})
