// Lab scenario 1: measured boot under OVMF with swtpm. The guest quotes PCR 0-7 and the
// allowlist PCR over /dev/tpmrm0 with our nonce and returns the quote and the firmware's UEFI
// event log; the host verifies the quote (src/verifiers/tpm and tpm2_checkquote), the EK
// certificate against the swtpm local CA, and replays the event log against the quoted PCRs.
// Then the broker half: `keyward serve` on 127.0.0.1, reached by keyward-client in the guest
// only through the virtio-serial relay, admits the AK by credential activation against the
// swtpm EK certificate, admits the attestation (quote over the binding digest, event log
// replayed), and denies an altered event log with the PCR named.
// The scenario runs first in exec-allowlist.test.ts's boot without an agent (scenario no-agent:
// one VM boot for both; its files are mb-*), against that boot's broker, which also holds the
// exec-allowlist policy; this scenario's policy admits only the AK enrolled as lab-measured-boot.
import { beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { isKeywardError, type KeywardError } from '../../src/errors.js'
import { fromB64, fromB64url, sha256, toHex } from '../../src/util/bytes.js'
import { encodeRecord } from '../../src/protocol/allowlist-state.js'
import { parseCertificate } from '../../src/verifiers/common/x509.js'
import { verifyEkCertificate } from '../../src/verifiers/tpm/ek.js'
import {
  parseAkPublic, parseAttest, parseEventLog, parsePcrsFile, parseSignature, replayEventLog, verifyQuote,
  type VerifiedQuote,
} from '../../src/verifiers/tpm/index.js'
import { createPublicKey } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from '../helpers/vectors.js'
import { checkQuoteWithTpm2Tools, type LabRun } from './lab.js'
import type { LabBroker } from './broker.js'
import { bindingDigest, jwkThumbprint, thumbprintBytes } from '../../src/protocol/binding.js'

const nonce = randomBytes(32)
let lab: LabRun
let broker: LabBroker

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

// The broker admits any TPM quote whose event log it could replay (the verifier replays the log
// against the quoted PCRs before it reports eventLog facts), from an AK it admitted as
// lab-measured-boot (the same broker serves the exec-allowlist half of the boot).
const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: lab-measured-boot
spec:
  tees: [tpm]
  conditions:
    - name: enrolled-as-lab-measured-boot
      expr: claims.details.akTrust.workload == "lab-measured-boot"
    - name: event-log-replayed
      expr: has(claims.details.eventLog)
  grants:
    secrets: [lab-boot-secret]
`

/** Applies scenario 1's policy and secret on `b`; the kernel arguments of its half of the boot. */
export async function prepareMeasuredBoot(b: LabBroker): Promise<Record<string, string>> {
  writeFileSync(join(b.dir, 'mb-policy.yaml'), POLICY)
  await b.admin('policy', 'apply', join(b.dir, 'mb-policy.yaml'))
  await b.admin('secret', 'put', 'lab-boot-secret', '--text', 'testOnly-lab-boot-secret')
  const enrolToken = (JSON.parse(await b.admin('enrol', 'token', '--workload', 'lab-measured-boot')) as { token: string }).token
  return { nonce: nonce.toString('hex'), mb_enrol_token: enrolToken, pcr: '15' }
}

/** A view of the boot's files with the mb- prefix scenario no-agent gave scenario 1's. */
export function measuredBootFiles(l: LabRun): LabRun {
  const n = (name: string): string => `mb-${name}`
  return { ...l, file: (x) => l.file(n(x)), has: (x) => l.has(n(x)), bytes: (x) => l.bytes(n(x)), text: (x) => l.text(n(x)), json: <T>(x: string) => l.json<T>(n(x)) }
}

interface EvidenceBody {
  tee: string
  nonce: string
  key: Record<string, string>
  evidence: { ak: string; quote: string; signature: string; pcrs: string; eventLog?: string }
}

/** Registers scenario 1's tests over the shared boot (`get` is read when they run, after the boot). */
export function measuredBootTests(get: () => { lab: LabRun; broker: LabBroker }): void {
  describe('lab: measured boot (OVMF + swtpm + /dev/tpmrm0)', () => {
    beforeAll(() => {
      ;({ lab, broker } = get())
      lab = measuredBootFiles(lab)
    })
    it('quote verifies with the nonce (our verifier and tpm2_checkquote) and covers PCR 0-7 and 15', async () => {
      const q = verify(lab, nonce)
      expect(q.akAttributesVerified).toBe(true)
      expect([...q.pcrs.sha256!.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 15])
      // No agent ran in this boot: /init closed the pre-workload phase with a SEPARATOR record alone.
      expect(toHex(q.pcrs.sha256!.get(15)!)).toBe(toHex(sha256(new Uint8Array(32), sha256(encodeRecord({ kind: 'separator' })))))
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

    it('the guest talked to the broker only through the virtio-serial relay, in protocol order', () => {
      const calls = [...lab.hostText('relay.log').matchAll(/relay: (\w+ \S+) -> (\d+)/g)].map((m) => `${m[1]} ${m[2]}`)
      // This scenario ran first in the boot; the exec-allowlist half follows, starting with its own registration.
      expect(calls.slice(0, 6)).toEqual([
        'POST /v1/tpm/register 200', 'POST /v1/tpm/activate 200', // register (credential activation)
        'POST /v1/challenge 200', 'POST /v1/attest 200', // attest
        'POST /v1/challenge 200', // evidence (posted by the host below)
        'POST /v1/tpm/register 200', // the exec-allowlist half
      ])
    })

    it('the broker admitted the AK by credential activation against the swtpm EK certificate', async () => {
      expect(lab.text('register.rc').trim()).toBe('0')
      const reg = JSON.parse(lab.text('register.out')) as { akName: string; workload: string; status: string }
      expect(reg).toEqual({ akName: expect.stringMatching(/^000b[0-9a-f]{64}$/), workload: 'lab-measured-boot', status: 'enrolled' })
      const all = (JSON.parse(await broker.admin('ak', 'list')) as { aks: { name: string; via: string; workload: string; ekFingerprint: string | null }[] }).aks
      // The exec-allowlist half of the boot registered its own AK, as lab-exec-allowlist.
      const aks = all.filter((a) => a.workload === 'lab-measured-boot')
      expect(aks).toHaveLength(1)
      expect(all.find((a) => a.workload !== 'lab-measured-boot')?.name).not.toBe(reg.akName)
      expect(aks[0]).toMatchObject({ name: reg.akName, via: 'credential-activation', workload: 'lab-measured-boot' })
      // The EK certificate the broker checked is the one in the guest TPM's NV (swtpm_localca's).
      expect(aks[0]!.ekFingerprint).toBe(parseCertificate(lab.bytes('ek.cert.der')).fingerprint)
    })

    it('the attestation (quote of PCR 0-7 + 15 over the binding, OVMF event log) is admitted', () => {
      expect(lab.text('attest.rc').trim()).toBe('0')
      const out = JSON.parse(lab.text('attest.out')) as { decision: string; policy: string; claims: { tee: string } }
      expect(out).toMatchObject({ decision: 'allow', policy: 'lab-measured-boot', claims: { tee: 'tpm' } })
    })

    it('the quote the client made carries the binding digest of the challenge nonce and its key', async () => {
      const body = JSON.parse(lab.text('evidence.out')) as EvidenceBody
      const q = verifyQuote(
        { ak: parseAkPublic(fromB64(body.evidence.ak)!), attest: parseAttest(fromB64(body.evidence.quote)!), signature: parseSignature(fromB64(body.evidence.signature)!), pcrs: parsePcrsFile(fromB64(body.evidence.pcrs)!) },
        { value: bindingDigest(fromB64url(body.nonce)!, thumbprintBytes(await jwkThumbprint(body.key))), code: 'ERR_BINDING_MISMATCH' },
      )
      expect([...q.pcrs.sha256!.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 15])
      expect(fromB64(body.evidence.eventLog!)).toEqual(lab.bytes('eventlog.bin'))
    })

    it('the broker denies the same evidence with one altered event, naming its PCR (ERR_EVENTLOG_REPLAY)', async () => {
      const body = JSON.parse(lab.text('evidence.out')) as EvidenceBody
      const raw = fromB64(body.evidence.eventLog!)!
      const hay = Buffer.from(raw)
      // PCR 4 (EV_EFI_BOOT_SERVICES_APPLICATION: the kernel OVMF loaded), an event whose digest is unique.
      const ev = parseEventLog(raw).events.find((e) => e.pcr === 4 && e.digests.sha256 && hay.indexOf(Buffer.from(e.digests.sha256)) === hay.lastIndexOf(Buffer.from(e.digests.sha256)))!
      expect(ev).toBeDefined()
      const altered = Buffer.from(raw)
      altered[altered.indexOf(Buffer.from(ev.digests.sha256!)) + 7]! ^= 0x80
      const r = await broker.post('/v1/attest', { ...body, evidence: { ...body.evidence, eventLog: altered.toString('base64') } })
      expect(r.status).toBe(403)
      expect(r.json).toMatchObject({ error: { code: 'ERR_EVENTLOG_REPLAY', message: expect.stringContaining('quoted PCR 4 ') } })
    })
  })
}
