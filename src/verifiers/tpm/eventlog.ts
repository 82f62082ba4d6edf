// TCG PC Client binary event log: parsing (legacy SHA-1 TCG_PCClientPCREvent, and crypto-agile
// TCG_PCR_EVENT2 after the Spec ID Event03 header; TCG PC Client Platform Firmware Profile
// §10.2) and replay per bank against quoted PCR values. Events are read for facts only after
// their PCR replayed to a quoted value (go-tpm-tools server/eventlog.go); see eventlog-facts.ts.
import { EvidenceMalformedError, KeywardError, asEvidenceError } from '../../errors.js'
import { ByteReader } from '../../protocol/reader.js'
import { constantTimeEqual, toHex, type HashName } from '../../util/bytes.js'
import { EV, EVENTLOG_LIMITS, HASH_ALGS } from './layout.js'
import { hashSize } from './parse.js'
import { hashOf } from './hash.js'

export interface TcgEvent {
  /** Position in the log (0-based, counting the header event). */
  index: number
  pcr: number
  type: number
  /** Digests per supported bank (algorithms keyward does not know are skipped by size). */
  digests: Partial<Record<HashName, Uint8Array>>
  data: Uint8Array
}

export interface EventLog {
  format: 'crypto-agile' | 'legacy-sha1'
  /** Banks this log carries digests for, in Spec ID order (legacy: sha1). */
  banks: HashName[]
  /** Locality from a StartupLocality EV_NO_ACTION event (PC Client §10.4.5.3), or null. */
  startupLocality: number | null
  events: TcgEvent[]
}

const SPEC_ID_03 = 'Spec ID Event03\0'
const STARTUP_LOCALITY = 'StartupLocality\0'

function ascii(b: Uint8Array, n: number): string {
  return Buffer.from(b.subarray(0, n)).toString('latin1')
}

/** Parses a binary event log; the format is detected from the first event. */
export function parseEventLog(bytes: Uint8Array): EventLog {
  try {
    return parseInner(bytes)
  } catch (e) {
    throw asEvidenceError(e, 'event log')
  }
}

function parseInner(bytes: Uint8Array): EventLog {
  const r = new ByteReader(bytes, 'event log')
  const first = readLegacyEvent(r, 0)
  const events: TcgEvent[] = []
  let startupLocality: number | null = null
  // PC Client §10.4.5.1: a crypto-agile log starts with a SHA-1-format EV_NO_ACTION event in
  // PCR 0 whose data is TCG_EfiSpecIdEvent with signature "Spec ID Event03".
  if (first.pcr === 0 && first.type === EV.NO_ACTION && ascii(first.data, 16) === SPEC_ID_03) {
    const algs = parseSpecId(first.data)
    events.push(first)
    while (r.remaining > 0) {
      if (events.length >= EVENTLOG_LIMITS.maxEvents) throw new EvidenceMalformedError('event log: too many events')
      const e = readEvent2(r, events.length, algs)
      startupLocality = startupLocalityOf(e) ?? startupLocality
      events.push(e)
    }
    const banks = algs.filter((a) => a.name !== null).map((a) => a.name as HashName)
    return { format: 'crypto-agile', banks, startupLocality, events }
  }
  events.push(first)
  startupLocality = startupLocalityOf(first)
  while (r.remaining > 0) {
    if (events.length >= EVENTLOG_LIMITS.maxEvents) throw new EvidenceMalformedError('event log: too many events')
    const e = readLegacyEvent(r, events.length)
    startupLocality = startupLocalityOf(e) ?? startupLocality
    events.push(e)
  }
  return { format: 'legacy-sha1', banks: ['sha1'], startupLocality, events }
}

function startupLocalityOf(e: TcgEvent): number | null {
  if (e.type !== EV.NO_ACTION || e.pcr !== 0 || e.data.length !== 17 || ascii(e.data, 16) !== STARTUP_LOCALITY) return null
  return e.data[16]!
}

function checkPcr(pcr: number, r: ByteReader): void {
  if (pcr >= EVENTLOG_LIMITS.pcrs) throw new EvidenceMalformedError(`event log: PCR index ${pcr} out of range at offset 0x${r.pos.toString(16)}`)
}

// PC Client §10.2.1 TCG_PCClientPCREvent: pcrIndex, eventType, SHA-1 digest, eventDataSize, event.
function readLegacyEvent(r: ByteReader, index: number): TcgEvent {
  const pcr = r.u32le('pcrIndex')
  checkPcr(pcr, r)
  const type = r.u32le('eventType')
  const sha1 = r.bytesN(20, 'digest')
  const data = readEventData(r)
  return { index, pcr, type, digests: { sha1 }, data }
}

function readEventData(r: ByteReader): Uint8Array {
  const size = r.u32le('eventSize')
  if (size > EVENTLOG_LIMITS.maxEventSize) throw new EvidenceMalformedError(`event log: event size ${size} too large`)
  return r.bytesN(size, 'event')
}

interface SpecAlg {
  id: number
  size: number
  name: HashName | null
}

// PC Client §10.4.5.1 TCG_EfiSpecIDEventStruct.
function parseSpecId(data: Uint8Array): SpecAlg[] {
  const r = new ByteReader(data, 'Spec ID Event03')
  r.skip(16, 'signature')
  r.u32le('platformClass')
  r.u8('specVersionMinor')
  const major = r.u8('specVersionMajor')
  if (major !== 2) throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', `event log: spec version major ${major}`)
  r.u8('specErrata')
  r.u8('uintnSize')
  const n = r.u32le('numberOfAlgorithms')
  if (n === 0 || n > 16) throw new EvidenceMalformedError(`Spec ID Event03: ${n} algorithms`)
  const algs: SpecAlg[] = []
  for (let i = 0; i < n; i++) {
    const id = r.u16le('algorithmId')
    const size = r.u16le('digestSize')
    const known = HASH_ALGS.get(id)
    if (known && known.size !== size) throw new EvidenceMalformedError(`Spec ID Event03: ${known.name} digest size ${size}`)
    if (size === 0 || size > 64) throw new EvidenceMalformedError(`Spec ID Event03: digest size ${size}`)
    if (algs.some((a) => a.id === id)) throw new EvidenceMalformedError('Spec ID Event03: algorithm listed twice')
    algs.push({ id, size, name: known ? known.name : null })
  }
  const vendorSize = r.u8('vendorInfoSize')
  r.skip(vendorSize, 'vendorInfo')
  r.end()
  return algs
}

// PC Client §10.2.2 TCG_PCR_EVENT2: pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event.
function readEvent2(r: ByteReader, index: number, algs: SpecAlg[]): TcgEvent {
  const pcr = r.u32le('pcrIndex')
  checkPcr(pcr, r)
  const type = r.u32le('eventType')
  const count = r.u32le('digests.count')
  if (count > algs.length) throw new EvidenceMalformedError(`event log: event ${index} has ${count} digests, header lists ${algs.length}`)
  const digests: TcgEvent['digests'] = {}
  for (let i = 0; i < count; i++) {
    const id = r.u16le('hashAlg')
    const alg = algs.find((a) => a.id === id)
    if (!alg) throw new EvidenceMalformedError(`event log: event ${index} uses algorithm 0x${id.toString(16)} not in the header`)
    const d = r.bytesN(alg.size, 'digest')
    if (alg.name) {
      if (digests[alg.name]) throw new EvidenceMalformedError(`event log: event ${index} has two ${alg.name} digests`)
      digests[alg.name] = d
    }
  }
  const data = readEventData(r)
  return { index, pcr, type, digests, data }
}

/** PCR extend: v' = H(v ‖ d) for each digest in order (Part 1 §17.2). Exported for the allowlist replay. */
export function extendReplay(alg: HashName, initial: Uint8Array, digests: Uint8Array[]): Uint8Array {
  const size = hashSize(alg)
  if (initial.length !== size) throw new KeywardError('ERR_BAD_REQUEST', `extendReplay: initial value must be ${size} bytes for ${alg}`)
  // One buffer for v ‖ d and a one-shot hash (hash.ts): createHash per extend costs ~4x more.
  const buf = Buffer.alloc(2 * size)
  buf.set(initial, 0)
  for (const d of digests) {
    if (d.length !== size) throw new KeywardError('ERR_BAD_REQUEST', `extendReplay: ${alg} digest must be ${size} bytes`)
    buf.set(d, size)
    buf.set(hashOf(alg, buf), 0)
  }
  return new Uint8Array(buf.subarray(0, size))
}

/** Replayed PCR values of one bank: index → value, for every PCR the log extends. */
export function replayBank(log: EventLog, bank: HashName): Map<number, Uint8Array> {
  const size = hashSize(bank)
  const perPcr = new Map<number, Uint8Array[]>()
  for (const e of log.events) {
    if (e.type === EV.NO_ACTION) continue // PC Client §10.4.5: EV_NO_ACTION is never extended
    const d = e.digests[bank]
    if (!d) throw new KeywardError('ERR_EVENTLOG_REPLAY', `event ${e.index} has no ${bank} digest`, { detail: { event: e.index, bank } })
    let list = perPcr.get(e.pcr)
    if (!list) perPcr.set(e.pcr, (list = []))
    list.push(d)
  }
  const out = new Map<number, Uint8Array>()
  for (const [pcr, list] of [...perPcr].sort((a, b) => a[0] - b[0])) {
    const initial = new Uint8Array(size)
    // PC Client §10.4.5.3: a StartupLocality event sets PCR 0's initial value to 00..0L.
    if (pcr === 0 && log.startupLocality !== null) initial[size - 1] = log.startupLocality
    out.set(pcr, extendReplay(bank, initial, list))
  }
  return out
}

export interface ReplayResult {
  /** The bank facts were read from (the strongest bank both the log and the quote carry). */
  bank: HashName
  /** Banks compared, each with the PCR indices that replayed to the quoted value. */
  verified: Partial<Record<HashName, number[]>>
}

const BANK_PREFERENCE: HashName[] = ['sha512', 'sha384', 'sha256', 'sha1']

/**
 * Replays `log` for every bank it shares with `quoted` (bank → index → value, which the caller
 * must have taken from a verified quote) and requires each PCR the log extends and the quote
 * covers to match. The first divergent PCR (ascending index, banks strongest first) is
 * ERR_EVENTLOG_REPLAY with detail {pcr, bank, expected, replayed}. PCRs the log extends but the
 * quote does not cover stay unverified, and facts must not be read from their events.
 */
export function replayEventLog(log: EventLog, quoted: Partial<Record<HashName, Map<number, Uint8Array>>>): ReplayResult {
  const banks = BANK_PREFERENCE.filter((b) => log.banks.includes(b) && quoted[b] !== undefined)
  if (banks.length === 0) {
    throw new KeywardError('ERR_EVENTLOG_REPLAY', 'event log and quote share no PCR bank', {
      detail: { logBanks: log.banks, quotedBanks: Object.keys(quoted) },
    })
  }
  const verified: ReplayResult['verified'] = {}
  for (const bank of banks) {
    const replayed = replayBank(log, bank)
    const q = quoted[bank]!
    const ok: number[] = []
    for (const [pcr, value] of replayed) {
      const expected = q.get(pcr)
      if (!expected) continue
      if (!constantTimeEqual(expected, value)) {
        throw new KeywardError('ERR_EVENTLOG_REPLAY', `event log does not replay to quoted PCR ${pcr} (${bank})`, {
          detail: { pcr, bank, expected: toHex(expected), replayed: toHex(value) },
        })
      }
      ok.push(pcr)
    }
    verified[bank] = ok
  }
  return { bank: banks[0]!, verified }
}
