// Facts from a replayed event log. Only events in PCRs that replayed to the quote are read
// (ReplayResult.verified), and data-bearing events are trusted only where the PC Client spec
// says the digest covers the data (§10.4.4 EV_EFI_VARIABLE_*, EV_SEPARATOR) and it does, and
// only from the boot phase after the rules of boot-phase.ts hold (post-boot appends deny).
import { constantTimeEqual, toHex, type HashName } from '../../util/bytes.js'
import { hashOf } from './hash.js'
import type { JsonObject } from '../../protocol/claims.js'
import { EV } from './layout.js'
import type { EventLog, ReplayResult, TcgEvent } from './eventlog.js'
import { checkBootPhase, cmdlineSource } from './boot-phase.js'

// UEFI 2.x: EFI_GLOBAL_VARIABLE {8BE4DF61-93CA-11D2-AA0D-00E098032B8C} in its mixed-endian byte form.
const EFI_GLOBAL_VARIABLE = Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex')

export interface EventLogFacts extends JsonObject {
  format: string
  /** Events in the log, excluding the crypto-agile Spec ID header. */
  eventCount: number
  bank: string
  verifiedPcrs: { [bank: string]: number[] }
  /** SecureBoot from EV_EFI_VARIABLE_DRIVER_CONFIG in PCR 7; null when not logged or not provable. */
  secureBoot: boolean | null
  /** Digests (of `bank`) of EV_EFI_PLATFORM_FIRMWARE_BLOB(2) / EV_S_CRTM_* events in PCR 0. */
  platformDigests: string[]
  /** EV_EFI_BOOT_SERVICES_APPLICATION digests in PCR 4, in load order (shim, boot loader, kernel...). */
  bootLoaderDigests: string[]
  /** The last PCR 4 application when more than one was loaded (EFI-stub kernel), else null. */
  kernelDigest: string | null
  /** Kernel command line when logged and its digest proves it (GRUB PCR 8 EV_IPL, EFI stub PCR 9 tag). */
  kernelCmdline: string | null
  /** EV_SEPARATOR per PCR; separatorError when any carries the error value 0x00000001. */
  separators: number[]
  separatorError: boolean
  startupLocality: number | null
  /** Event index of "Exit Boot Services Invocation" (PCR 5), where the boot phase ends; null when not logged. */
  exitBootServicesEvent: number | null
}

function utf16(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength & ~1).toString('utf16le').replace(/\0+$/, '')
}

function digestCovers(e: TcgEvent, bank: HashName, data: Uint8Array): boolean {
  const d = e.digests[bank]
  return d !== undefined && constantTimeEqual(d, hashOf(bank, data))
}

// UEFI_VARIABLE_DATA (PC Client §10.4.4.1): GUID, u64 name length (chars), u64 data length, name (UTF-16), data.
function readVariable(data: Uint8Array): { guid: Uint8Array; name: string; value: Uint8Array } | null {
  if (data.length < 32) return null
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const nameLen = v.getBigUint64(16, true)
  const dataLen = v.getBigUint64(24, true)
  if (nameLen > 1024n || dataLen > BigInt(data.length)) return null
  const nameEnd = 32 + Number(nameLen) * 2
  if (nameEnd + Number(dataLen) > data.length) return null
  return { guid: data.subarray(0, 16), name: utf16(data.subarray(32, nameEnd)), value: data.subarray(nameEnd, nameEnd + Number(dataLen)) }
}

/**
 * Reads facts from boot-phase events whose PCR replayed (see ReplayResult.verified); throws
 * ERR_EVENTLOG_UNTRUSTED when the log breaks a boot-phase rule (checkBootPhase).
 */
export function extractFacts(log: EventLog, replay: ReplayResult): EventLogFacts {
  const bank = replay.bank
  const trusted = new Set(replay.verified[bank] ?? [])
  const phase = checkBootPhase(log, trusted)
  const facts: EventLogFacts = {
    format: log.format,
    eventCount: log.format === 'crypto-agile' ? log.events.length - 1 : log.events.length,
    bank,
    verifiedPcrs: Object.fromEntries(Object.entries(replay.verified).map(([b, p]) => [b, p ?? []])),
    secureBoot: null,
    platformDigests: [],
    bootLoaderDigests: [],
    kernelDigest: null,
    kernelCmdline: null,
    separators: [],
    separatorError: false,
    startupLocality: log.startupLocality,
    exitBootServicesEvent: phase.exitBootServices,
  }
  for (const e of log.events) {
    if (!trusted.has(e.pcr) || e.type === EV.NO_ACTION || !phase.inBootPhase(e)) continue
    const d = e.digests[bank]
    if (!d) continue
    switch (e.type) {
      case EV.EFI_VARIABLE_DRIVER_CONFIG: {
        const v = readVariable(e.data)
        if (e.pcr === 7 && v && v.name === 'SecureBoot' && Buffer.from(v.guid).equals(EFI_GLOBAL_VARIABLE) && digestCovers(e, bank, e.data)) {
          facts.secureBoot = v.value.length === 1 && v.value[0] === 1
        }
        break
      }
      case EV.S_CRTM_CONTENTS:
      case EV.S_CRTM_VERSION:
      case EV.EFI_PLATFORM_FIRMWARE_BLOB:
      case EV.EFI_PLATFORM_FIRMWARE_BLOB2:
        if (e.pcr === 0) facts.platformDigests.push(toHex(d))
        break
      case EV.EFI_BOOT_SERVICES_APPLICATION:
        if (e.pcr === 4) facts.bootLoaderDigests.push(toHex(d))
        break
      case EV.SEPARATOR:
        facts.separators.push(e.pcr)
        // PC Client §10.4.4.2: 0x00000001 in the data signals a firmware error.
        if (e.data.length === 4 && e.data[0] === 1 && e.data[1] === 0 && e.data[2] === 0 && e.data[3] === 0) facts.separatorError = true
        break
      case EV.IPL: {
        // GRUB 2: EV_IPL in PCR 8 "kernel_cmdline: <cmdline>", digest over the command line itself.
        const s = Buffer.from(e.data).toString('utf8').replace(/\0+$/, '')
        const m = /^kernel_cmdline: ([\s\S]*)$/.exec(s)
        if (cmdlineSource(e) === 'grub' && m && (digestCovers(e, bank, Buffer.from(m[1]!)) || digestCovers(e, bank, Buffer.from(m[1]! + '\0')))) {
          facts.kernelCmdline = m[1]!
        }
        break
      }
      case EV.EVENT_TAG: {
        // TCG_PCClientTaggedEvent {u32 id, u32 size, data}; the Linux EFI stub hashes the data (UTF-16 LoadOptions).
        if (cmdlineSource(e) !== 'efi-stub') break
        const size = new DataView(e.data.buffer, e.data.byteOffset, e.data.byteLength).getUint32(4, true)
        if (size !== e.data.length - 8) break
        const opts = e.data.subarray(8)
        if (digestCovers(e, bank, opts)) facts.kernelCmdline = utf16(opts)
        break
      }
    }
  }
  if (facts.bootLoaderDigests.length > 1) facts.kernelDigest = facts.bootLoaderDigests[facts.bootLoaderDigests.length - 1]!
  return facts
}
