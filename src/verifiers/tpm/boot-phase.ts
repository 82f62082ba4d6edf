// The boot phase of a replayed event log, and the rules that make a log untrustworthy for boot
// facts. Root on a running host can extend PCRs 4/7/8/9 and append matching events after boot, so
// the replay still matches the quote; facts are therefore read only from the boot phase, and an
// event that genuine firmware or boot loaders never log where it stands is a denial
// (ERR_EVENTLOG_UNTRUSTED, detail {pcr, event, rule}), never a silent "last wins".
//
// TCG PC Client Platform Firmware Profile (PFP) 1.05, §3.3.4 PCR usage:
// - EV_SEPARATOR is measured once into each of PCRs 0–7 when the pre-OS phase ends (§3.3.4.1–8,
//   §10.4.1 Table 9); a second one comes from software that runs after the firmware.
// - PCR 7 (§3.3.4.8): the Secure Boot configuration (SecureBoot, PK, KEK, db, dbx...) is measured
//   as EV_EFI_VARIABLE_DRIVER_CONFIG, each variable once, *before* PCR 7's separator; after it only
//   EV_EFI_VARIABLE_AUTHORITY (images verified by db) is logged.
// - PCR 5 (§3.3.4.6): "Exit Boot Services Invocation" (EV_EFI_ACTION) when the OS loader calls
//   ExitBootServices(), then "Exit Boot Services Returned with Success/Failure". After that call
//   boot services, including EFI_TCG2_PROTOCOL, are gone: no firmware or boot-services code can
//   log an event any more, so every event in PCRs 0–7 after it (other than those PCR 5 actions)
//   was put there by the running OS.
// - PCRs 8/9 belong to the OS loader (§3.3.4, "defined for use by the Static OS"): GRUB logs the
//   kernel command line once as EV_IPL "kernel_cmdline: …" in PCR 8, and the Linux EFI stub tags
//   its LoadOptions once (TCG_PCClientTaggedEvent 0x8f3b22ed) in PCR 9, both before
//   ExitBootServices. Other PCR 8/9 events after ExitBootServices are ignored for facts.
// Order *between* PCRs is not covered by any digest (each PCR is its own hash chain), so the
// position of the ExitBootServices event relative to other PCRs' events is only as honest as the
// log; the per-PCR rules (one separator, configuration before PCR 7's separator, one command line
// per source) hold whatever the interleaving. docs/policy.md says what that leaves to policy.
import { KeywardError } from '../../errors.js'
import { EV } from './layout.js'
import type { EventLog, TcgEvent } from './eventlog.js'

export type BootPhaseRule =
  | 'separator-twice'
  | 'variable-after-separator'
  | 'variable-twice'
  | 'event-after-exit-boot-services'
  | 'cmdline-after-exit-boot-services'
  | 'cmdline-twice'

// Linux EFI stub (drivers/firmware/efi/libstub): tagged event for the LoadOptions (kernel command line).
export const LINUX_LOAD_OPTIONS_TAG = 0x8f3b22ed
const EBS_INVOCATION = 'Exit Boot Services Invocation'
const EBS_ACTIONS = new Set([EBS_INVOCATION, 'Exit Boot Services Returned with Success', 'Exit Boot Services Returned with Failure'])

export interface BootPhase {
  /** Index of the first "Exit Boot Services Invocation" in a replayed PCR 5, or null (not logged, or PCR 5 unverified). */
  exitBootServices: number | null
  /** True when the event stands in the boot phase (before exitBootServices, or any event when it is null). */
  inBootPhase(e: TcgEvent): boolean
}

function text(e: TcgEvent): string {
  return Buffer.from(e.data).toString('latin1').replace(/\0+$/, '')
}

/** GRUB's PCR 8 command-line event or the EFI stub's PCR 9 LoadOptions tag; the source name, else null. */
export function cmdlineSource(e: TcgEvent): 'grub' | 'efi-stub' | null {
  if (e.pcr === 8 && e.type === EV.IPL && text(e).startsWith('kernel_cmdline: ')) return 'grub'
  if (e.pcr === 9 && e.type === EV.EVENT_TAG && e.data.length >= 8) {
    const v = new DataView(e.data.buffer, e.data.byteOffset, e.data.byteLength)
    if (v.getUint32(0, true) === LINUX_LOAD_OPTIONS_TAG) return 'efi-stub'
  }
  return null
}

/** The UEFI variable an EV_EFI_VARIABLE_* event names (GUID hex + name), or null when too short. */
function variableKey(e: TcgEvent): string | null {
  if (e.data.length < 32) return null
  const v = new DataView(e.data.buffer, e.data.byteOffset, e.data.byteLength)
  const nameLen = Number(v.getBigUint64(16, true) & 0xffffn)
  const name = e.data.subarray(32, Math.min(e.data.length, 32 + nameLen * 2))
  return `${Buffer.from(e.data.subarray(0, 16)).toString('hex')}:${Buffer.from(name).toString('hex')}`
}

function untrusted(e: TcgEvent, rule: BootPhaseRule, why: string): KeywardError {
  return new KeywardError('ERR_EVENTLOG_UNTRUSTED', `event log untrusted: event ${e.index} in PCR ${e.pcr}: ${why} (${rule})`, {
    detail: { pcr: e.pcr, event: e.index, rule },
  })
}

/**
 * Applies the boot-phase rules above to the events of `trusted` PCRs (those that replayed to a
 * verified quote; events of other PCRs are attacker-chosen and never read) and returns the
 * phase boundary. Throws ERR_EVENTLOG_UNTRUSTED on the first violation in log order.
 */
export function checkBootPhase(log: EventLog, trusted: ReadonlySet<number>): BootPhase {
  const events = log.events.filter((e) => trusted.has(e.pcr) && e.type !== EV.NO_ACTION)
  const ebs = trusted.has(5)
    ? events.find((e) => e.pcr === 5 && e.type === EV.EFI_ACTION && text(e) === EBS_INVOCATION)?.index ?? null
    : null
  const separated = new Set<number>()
  const variables = new Set<string>()
  const cmdlines = new Set<string>()
  for (const e of events) {
    const afterEbs = ebs !== null && e.index > ebs
    const cmd = cmdlineSource(e)
    if (afterEbs && e.pcr <= 7 && !(e.pcr === 5 && e.type === EV.EFI_ACTION && EBS_ACTIONS.has(text(e)))) {
      throw untrusted(e, 'event-after-exit-boot-services', 'firmware PCR extended after ExitBootServices')
    }
    if (afterEbs && cmd) throw untrusted(e, 'cmdline-after-exit-boot-services', 'kernel command line logged after ExitBootServices')
    if (cmd) {
      if (cmdlines.has(cmd)) throw untrusted(e, 'cmdline-twice', `second ${cmd} kernel command line`)
      cmdlines.add(cmd)
    }
    if (e.type === EV.SEPARATOR && e.pcr <= 7) {
      if (separated.has(e.pcr)) throw untrusted(e, 'separator-twice', 'second EV_SEPARATOR')
      separated.add(e.pcr)
    }
    if (e.type === EV.EFI_VARIABLE_DRIVER_CONFIG && e.pcr === 7) {
      if (separated.has(7)) throw untrusted(e, 'variable-after-separator', 'Secure Boot configuration variable after the PCR 7 separator')
      const key = variableKey(e)
      if (key !== null && variables.has(key)) throw untrusted(e, 'variable-twice', 'Secure Boot configuration variable measured twice')
      if (key !== null) variables.add(key)
    }
  }
  return { exitBootServices: ebs, inBootPhase: (e) => ebs === null || e.index < ebs }
}
