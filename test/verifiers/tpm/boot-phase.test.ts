// Boot facts come only from the boot phase (src/verifiers/tpm/boot-phase.ts). Events that root on
// a running host appends after boot (with matching extends, so the log still replays) are denied
// with ERR_EVENTLOG_UNTRUSTED naming PCR, event index and rule; every genuine vector log passes.
import { describe, it, expect } from 'vitest'
import { readVector, readManifest } from '../../helpers/vectors.js'
import { KeywardError } from '../../../src/errors.js'
import { toHex, type HashName } from '../../../src/util/bytes.js'
import { extractFacts, parseEventLog, replayBank, replayEventLog, type EventLog } from '../../../src/verifiers/tpm/index.js'
import type { TcgEvent } from '../../../src/verifiers/tpm/eventlog.js'
import { EV } from '../../../src/verifiers/tpm/layout.js'
import {
  bootApplication, bootEvents, efiAction, encodeEventLog, grubCmdline, secureBootVariable, separator, tcgEvent, type LogEvent,
} from '../../helpers/event-log.js'

const GOLDEN_CMDLINE = '/vmlinuz root=/dev/vda1 ro console=ttyS0'
const GOLDEN_KERNEL = new Uint8Array(32).fill(0x60)

/** A quote over every PCR the log extends, with the values the log replays to (what the TPM would hold). */
function quoteOf(log: EventLog, pcrs?: number[]): Partial<Record<HashName, Map<number, Uint8Array>>> {
  const bank: HashName = log.banks.includes('sha256') ? 'sha256' : 'sha1'
  const all = replayBank(log, bank)
  return { [bank]: new Map([...all].filter(([p]) => !pcrs || pcrs.includes(p))) }
}

function bootFacts(log: EventLog) {
  const { secureBoot, kernelDigest, kernelCmdline, bootLoaderDigests, platformDigests, separators, exitBootServicesEvent } = facts(log)
  return { secureBoot, kernelDigest, kernelCmdline, bootLoaderDigests, platformDigests, separators, exitBootServicesEvent }
}

function facts(log: EventLog, pcrs?: number[]) {
  return extractFacts(log, replayEventLog(log, quoteOf(log, pcrs)))
}

function denial(log: EventLog): { code: string; detail: unknown } {
  try {
    facts(log)
  } catch (e) {
    if (e instanceof KeywardError) return { code: e.code, detail: e.detail }
    throw e
  }
  throw new Error('log was accepted')
}

/** The events in a new order, re-indexed as a log written in that order would be. */
function reordered(log: EventLog, events: TcgEvent[]): EventLog {
  return { ...log, events: events.map((e, index) => ({ ...e, index })) }
}

function append(log: EventLog, ...events: LogEvent[]): EventLog {
  return { ...log, events: [...log.events, ...events.map((e, i) => tcgEvent(e, log.events.length + i))] }
}

const cos85 = () => parseEventLog(readVector('tpm', 'eventlogs/cos-85-amd-sev.bin'))

describe('genuine logs are in their boot phase', () => {
  const logs = readManifest<{ eventLogs: { file: string }[] }>('tpm').eventLogs.map((l) => l.file)
  it.each(logs)('%s: no rule fires, the boot phase ends at ExitBootServices where logged', (file) => {
    const log = parseEventLog(readVector('tpm', file))
    const f = facts(log)
    const ebs = log.events.find((e) => e.pcr === 5 && e.type === EV.EFI_ACTION && Buffer.from(e.data).toString('latin1') === 'Exit Boot Services Invocation')
    expect(f.exitBootServicesEvent).toBe(ebs?.index ?? null)
  })
})

describe('post-boot appends to a real log (COS 85 on GCE), extended so the log still replays', () => {
  it('the unaltered log yields its boot facts', () => {
    const f = facts(cos85())
    expect(f.exitBootServicesEvent).toBe(44)
    expect(f.secureBoot).toBe(true)
    expect(f.kernelCmdline).toMatch(/^\/syslinux\/vmlinuz\.A /)
  })
  it('a second kernel command line after ExitBootServices is denied, naming PCR 8, the event and the rule', () => {
    const log = append(cos85(), grubCmdline(GOLDEN_CMDLINE))
    expect(denial(log)).toEqual({ code: 'ERR_EVENTLOG_UNTRUSTED', detail: { pcr: 8, event: 46, rule: 'cmdline-after-exit-boot-services' } })
  })
  it('a Secure Boot variable after boot is denied in PCR 7', () => {
    const log = append(cos85(), secureBootVariable(false))
    expect(denial(log)).toEqual({ code: 'ERR_EVENTLOG_UNTRUSTED', detail: { pcr: 7, event: 46, rule: 'event-after-exit-boot-services' } })
  })
  it('a boot application (kernel) after boot is denied in PCR 4', () => {
    const log = append(cos85(), bootApplication(GOLDEN_KERNEL))
    expect(denial(log)).toEqual({ code: 'ERR_EVENTLOG_UNTRUSTED', detail: { pcr: 4, event: 46, rule: 'event-after-exit-boot-services' } })
  })
  it('moving ExitBootServices behind the appended events does not help: one command line per source, config before the PCR 7 separator', () => {
    const base = append(cos85(), grubCmdline(GOLDEN_CMDLINE))
    const isEbs = (e: TcgEvent) => e.pcr === 5 && e.type === EV.EFI_ACTION
    const moved = reordered(base, [...base.events.filter((e) => !isEbs(e)), ...base.events.filter(isEbs)])
    expect(denial(moved)).toEqual({ code: 'ERR_EVENTLOG_UNTRUSTED', detail: { pcr: 8, event: 44, rule: 'cmdline-twice' } })
    const sb = append(cos85(), secureBootVariable(true))
    const movedSb = reordered(sb, [...sb.events.filter((e) => !isEbs(e)), ...sb.events.filter(isEbs)])
    expect(denial(movedSb)).toEqual({ code: 'ERR_EVENTLOG_UNTRUSTED', detail: { pcr: 7, event: 44, rule: 'variable-after-separator' } })
  })
  it('events after ExitBootServices in PCRs the OS owns are ignored for facts, not denied', () => {
    const log = append(cos85(), { pcr: 9, type: EV.IPL, data: new Uint8Array(Buffer.from('/boot/extra\0')) }, { pcr: 14, type: EV.IPL, data: new Uint8Array(Buffer.from('MokList\0')) })
    expect(bootFacts(log)).toEqual(bootFacts(cos85()))
  })
  it('events in PCRs the quote does not cover are never read, so they cannot deny either', () => {
    const log = append(cos85(), grubCmdline(GOLDEN_CMDLINE))
    const f = facts(log, [0, 1, 2, 3, 4, 5, 6, 7])
    expect(f.kernelCmdline).toBeNull()
    expect(f.secureBoot).toBe(true)
  })
})

describe('boot-like logs', () => {
  const boot = (events: LogEvent[]) => parseEventLog(encodeEventLog(events))
  it('yield the facts of their boot phase', () => {
    const f = facts(boot(bootEvents({ secureBoot: true, kernel: GOLDEN_KERNEL, cmdline: GOLDEN_CMDLINE })))
    expect([f.secureBoot, f.kernelCmdline, f.bootLoaderDigests, f.exitBootServicesEvent]).toEqual([true, GOLDEN_CMDLINE, [toHex(GOLDEN_KERNEL)], 13])
  })
  it('ExitBootServices may fail and be retried (PFP: "Returned with Failure")', () => {
    const events = bootEvents({ secureBoot: true, kernel: GOLDEN_KERNEL, cmdline: GOLDEN_CMDLINE })
    events.splice(events.length - 1, 0, efiAction(5, 'Exit Boot Services Returned with Failure'), efiAction(5, 'Exit Boot Services Invocation'))
    expect(facts(boot(events)).secureBoot).toBe(true)
  })
  it('a configuration variable measured twice before the separator is denied', () => {
    const events = [secureBootVariable(false), ...bootEvents({ secureBoot: true, kernel: GOLDEN_KERNEL, cmdline: GOLDEN_CMDLINE })]
    expect(denial(boot(events))).toEqual({ code: 'ERR_EVENTLOG_UNTRUSTED', detail: { pcr: 7, event: 2, rule: 'variable-twice' } })
  })
  it('a second separator in PCRs 0–7 is denied', () => {
    const events = bootEvents({ secureBoot: true, kernel: GOLDEN_KERNEL, cmdline: GOLDEN_CMDLINE })
    events.splice(10, 0, separator(4))
    expect(denial(boot(events))).toMatchObject({ code: 'ERR_EVENTLOG_UNTRUSTED', detail: { pcr: 4, event: 11, rule: 'separator-twice' } })
  })
  it('without an ExitBootServices event (firmware that does not log it) a second command line is still denied', () => {
    const events = bootEvents({ secureBoot: false, kernel: GOLDEN_KERNEL, cmdline: `${GOLDEN_CMDLINE} init=/bin/sh` }).filter((e) => e.pcr !== 5 || e.type !== EV.EFI_ACTION)
    expect(facts(boot(events)).exitBootServicesEvent).toBeNull()
    expect(denial(boot([...events, grubCmdline(GOLDEN_CMDLINE)]))).toMatchObject({ detail: { pcr: 8, rule: 'cmdline-twice' } })
  })
})
