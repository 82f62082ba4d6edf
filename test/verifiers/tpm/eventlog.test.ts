// Event-log replay over every log in ../shared/vectors/tpm (14 with stated PCRs, plus the two
// quote-set logs replayed against their verified quotes), altered logs, facts, and malformed input.
import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { readManifest, readVector, vectorPath } from '../../helpers/vectors.js'
import { KeywardError } from '../../../src/errors.js'
import { digest, fromHex, toHex, type HashName } from '../../../src/util/bytes.js'
import { extendReplay, extractFacts, parseEventLog, replayEventLog, replayBank, type EventLog } from '../../../src/verifiers/tpm/index.js'
import { verifyTpmCommand } from '../../../src/cli/verify-tpm.js'
import { errorCode } from '../../helpers/errors.js'

interface LogEntry { file: string; pcrsFile: string; events: number; format: string; logBanks: string[]; startupLocality: number | null; statedBanks: Record<string, number[]>; description: string }
const logs = readManifest<{ eventLogs: LogEntry[] }>('tpm').eventLogs

type Banks = Partial<Record<HashName, Map<number, Uint8Array>>>
function statedPcrs(file: string): Banks {
  const j = JSON.parse(readFileSync(vectorPath('tpm', file), 'utf8')) as Record<string, Record<string, string>>
  const out: Banks = {}
  for (const [b, v] of Object.entries(j)) out[b as HashName] = new Map(Object.entries(v).map(([k, h]) => [Number(k), fromHex(h)!]))
  return out
}


describe('event logs with stated PCR values', () => {
  it('has the 14 logs of eventlogs/', () => expect(logs.length).toBe(14))
  it.each(logs)('$file replays to its stated PCRs', (l) => {
    const log = parseEventLog(readVector('tpm', l.file))
    expect(log.format).toBe(l.format.startsWith('legacy') ? 'legacy-sha1' : 'crypto-agile')
    expect(log.startupLocality).toBe(l.startupLocality)
    const r = replayEventLog(log, statedPcrs(l.pcrsFile))
    for (const [bank, pcrs] of Object.entries(l.statedBanks)) {
      if (log.banks.includes(bank as HashName)) expect(r.verified[bank as HashName]).toEqual(pcrs)
    }
    const facts = extractFacts(log, r)
    expect(facts.eventCount).toBe(l.events)
    expect(facts.separators.slice().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    if (/Secure Boot enabled/.test(l.description)) expect(facts.secureBoot).toBe(true)
    if (/Secure Boot disabled|secure boot disabled/i.test(l.description)) expect(facts.secureBoot).toBe(false)
  })
  it('an altered event names the first divergent PCR', () => {
    const bytes = readVector('tpm', 'eventlogs/rhel8-uefi.bin')
    const log = parseEventLog(bytes)
    const target = log.events.find((e) => e.pcr === 4 && e.type === 0x80000003)!
    target.digests.sha256![0]! ^= 1
    try {
      replayEventLog(log, statedPcrs('eventlogs/rhel8-uefi.pcrs.json'))
      expect.unreachable()
    } catch (e) {
      const k = e as KeywardError
      expect(k.code).toBe('ERR_EVENTLOG_REPLAY')
      expect(k.detail).toMatchObject({ pcr: 4, bank: 'sha256' })
      expect(k.detail?.replayed).not.toBe(k.detail?.expected)
    }
  })
  it('a log replayed against another machine\'s PCRs fails on the first PCR whose stated values differ', () => {
    const log = parseEventLog(readVector('tpm', 'eventlogs/debian-10.bin'))
    const own = statedPcrs('eventlogs/debian-10.pcrs.json').sha1!
    const other = statedPcrs('eventlogs/rhel8-uefi.pcrs.json')
    const firstDiff = [...own.keys()].sort((a, b) => a - b).find((i) => toHex(own.get(i)!) !== toHex(other.sha1!.get(i)!))
    try {
      replayEventLog(log, other)
      expect.unreachable()
    } catch (e) {
      expect((e as KeywardError).code).toBe('ERR_EVENTLOG_REPLAY')
      expect((e as KeywardError).detail).toMatchObject({ pcr: firstDiff, bank: 'sha1', expected: toHex(other.sha1!.get(firstDiff!)!), replayed: toHex(own.get(firstDiff!)!) })
    }
  })
  it('StartupLocality sets PCR 0\'s initial value: ignoring it breaks the replay', () => {
    const log = parseEventLog(readVector('tpm', 'eventlogs/glinux-alex.bin'))
    expect(log.startupLocality).toBe(3)
    const noLocality: EventLog = { ...log, startupLocality: null }
    expect(errorCode(() => replayEventLog(noLocality, statedPcrs('eventlogs/glinux-alex.pcrs.json')))).toBe('ERR_EVENTLOG_REPLAY')
  })
  it('a log and quote without a common bank is ERR_EVENTLOG_REPLAY', () => {
    const log = parseEventLog(readVector('tpm', 'eventlogs/debian-10.bin'))
    const sha256Only: Banks = { sha256: statedPcrs('eventlogs/rhel8-uefi.pcrs.json').sha256! }
    expect(errorCode(() => replayEventLog(log, sha256Only))).toBe('ERR_EVENTLOG_REPLAY')
  })
})

describe('quote-set logs replay against the verified quote', () => {
  const gce = 'gce-cos85-vtpm/nonce9009'
  it.each(['sha1', 'sha256', 'sha384'])('GCE COS 85 %s quote', async (bank) => {
    const d = vectorPath('tpm', gce)
    const claims = await verifyTpmCommand(['--ak', `${d}/ak.tpm2b.pub`, '--quote', `${d}/quote-${bank}.msg`, '--sig', `${d}/quote-${bank}.sig`, '--pcrs', `${d}/quote-${bank}.pcrs`, '--nonce', '9009', '--eventlog', `${d}/eventlog.bin`])
    const ev = claims.details.eventLog as { verifiedPcrs: Record<string, number[]>; eventCount: number; secureBoot: boolean; kernelCmdline: string }
    expect(ev.verifiedPcrs[bank]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(ev.eventCount).toBe(44)
    expect(ev.secureBoot).toBe(true)
    expect(ev.kernelCmdline).toMatch(/^\/syslinux\/vmlinuz/)
  })
  it('GCE Windows legacy SHA-1 log', async () => {
    const d = vectorPath('tpm', 'gce-windows-shielded-vm')
    const claims = await verifyTpmCommand(['--ak', `${d}/ak.tpmt.pub`, '--quote', `${d}/quote.msg`, '--sig', `${d}/quote.sig`, '--pcrs', `${d}/quote.pcrs`, '--eventlog', `${d}/eventlog.bin`])
    const ev = claims.details.eventLog as { verifiedPcrs: Record<string, number[]>; eventCount: number; format: string }
    expect(ev.format).toBe('legacy-sha1')
    expect(ev.verifiedPcrs.sha1).toEqual([0, 4, 5, 7, 11, 12, 13, 14])
    expect(ev.eventCount).toBe(21)
  })
  it('a log from another machine fails replay against the GCE quote, naming the PCR', async () => {
    const d = vectorPath('tpm', gce)
    const quoted = JSON.parse(readFileSync(`${d}/pcrs-sha256.json`, 'utf8')).sha256 as Record<string, string>
    const other = statedPcrs('eventlogs/cos-93-amd-sev.pcrs.json').sha256!
    const firstDiff = [...other.keys()].sort((a, b) => a - b).find((i) => toHex(other.get(i)!) !== quoted[String(i)])
    expect(firstDiff).toBeDefined()
    await expect(verifyTpmCommand(['--ak', `${d}/ak.pub.pem`, '--quote', `${d}/quote-sha256.msg`, '--sig', `${d}/quote-sha256.sig`, '--pcrs', `${d}/quote-sha256.pcrs`, '--eventlog', vectorPath('tpm', 'eventlogs/cos-93-amd-sev.bin')]))
      .rejects.toMatchObject({ code: 'ERR_EVENTLOG_REPLAY', detail: { pcr: firstDiff, bank: 'sha256' } })
  })
  it('facts are read only from PCRs the quote covers', () => {
    const log = parseEventLog(readVector('tpm', 'eventlogs/rhel8-uefi.bin'))
    const stated = statedPcrs('eventlogs/rhel8-uefi.pcrs.json')
    const only0: Banks = { sha256: new Map([[0, stated.sha256!.get(0)!]]) }
    const facts = extractFacts(log, replayEventLog(log, only0))
    expect(facts.secureBoot).toBeNull()
    expect(facts.bootLoaderDigests).toEqual([])
    expect(facts.platformDigests.length).toBeGreaterThan(0)
  })
})

describe('extendReplay', () => {
  it('is H(H(0‖a)‖b), the TPM extend', () => {
    const a = digest('sha256', new Uint8Array([1]))
    const b = digest('sha256', new Uint8Array([2]))
    const want = digest('sha256', digest('sha256', new Uint8Array(32), a), b)
    expect(toHex(extendReplay('sha256', new Uint8Array(32), [a, b]))).toBe(toHex(want))
    expect(toHex(extendReplay('sha1', new Uint8Array(20), []))).toBe('00'.repeat(20))
  })
  it('agrees with the replay of a real log bank', () => {
    const log = parseEventLog(readVector('tpm', 'eventlogs/arch-linux-workstation.bin'))
    const ds = log.events.filter((e) => e.pcr === 4 && e.type !== 3).map((e) => e.digests.sha256!)
    expect(toHex(extendReplay('sha256', new Uint8Array(32), ds))).toBe(toHex(replayBank(log, 'sha256').get(4)!))
  })
  it('rejects wrong sizes', () => {
    expect(errorCode(() => extendReplay('sha256', new Uint8Array(20), []))).toBe('ERR_BAD_REQUEST')
    expect(errorCode(() => extendReplay('sha1', new Uint8Array(20), [new Uint8Array(32)]))).toBe('ERR_BAD_REQUEST')
  })
})

describe('malformed event logs yield KeywardError only', () => {
  it.each(['eventlogs/debian-10.bin', 'eventlogs/arch-linux-workstation.bin'])('%s truncated at every offset', (f) => {
    const bytes = readVector('tpm', f)
    let rejected = 0
    for (let n = 0; n < bytes.length; n++) {
      const c = errorCode(() => parseEventLog(bytes.subarray(0, n)))
      // cutting exactly between two events leaves a valid (shorter) log
      if (c !== 'OK') {
        expect(c).toBe('ERR_EVIDENCE_MALFORMED')
        rejected++
      }
    }
    expect(rejected).toBeGreaterThan(bytes.length * 0.9)
  })
  it('oversized event size, bad PCR index, unknown digest algorithm and bad Spec ID are rejected', () => {
    const good = readVector('tpm', 'eventlogs/arch-linux-workstation.bin')
    const hdrSize = new DataView(good.buffer, good.byteOffset).getUint32(28, true)
    const firstEvent2 = 32 + hdrSize
    const cases: [string, (b: Uint8Array, v: DataView) => void][] = [
      ['event size', (_b, v) => v.setUint32(28, 0xfffffff0, true)],
      ['pcr index', (_b, v) => v.setUint32(firstEvent2, 99, true)],
      ['digest count', (_b, v) => v.setUint32(firstEvent2 + 8, 9, true)],
      ['digest alg', (_b, v) => v.setUint16(firstEvent2 + 12, 0x0099, true)],
      ['spec sha256 size', (_b, v) => v.setUint16(32 + 28 + 4 + 2, 20, true)],
      ['spec alg count', (_b, v) => v.setUint32(32 + 24, 0, true)],
    ]
    for (const [name, mutate] of cases) {
      const b = good.slice()
      mutate(b, new DataView(b.buffer))
      expect(errorCode(() => parseEventLog(b)), name).toMatch(/^ERR_EVIDENCE_(MALFORMED|UNSUPPORTED)$/)
    }
    expect(errorCode(() => parseEventLog(new Uint8Array(0)))).toBe('ERR_EVIDENCE_MALFORMED')
  })
  it('random bytes never escape as RangeError/TypeError', () => {
    let seed = 7
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff
    for (let i = 0; i < 300; i++) {
      const b = new Uint8Array(1 + (i % 97)).map(rnd)
      const c = errorCode(() => parseEventLog(b))
      expect(c === 'OK' || c.startsWith('ERR_')).toBe(true)
    }
  })
})
