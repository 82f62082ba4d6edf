// Builds TCG PC Client crypto-agile event logs (SHA-256 bank only) the way UEFI firmware and GRUB
// write them (PFP §10.2: Spec ID Event03 header, then TCG_PCR_EVENT2), for tests that log and
// extend boot-like events on a software TPM or append events to real logs.
import { createHash } from 'node:crypto'
import { EV } from '../../src/verifiers/tpm/layout.js'
import type { TcgEvent } from '../../src/verifiers/tpm/eventlog.js'

export interface LogEvent {
  pcr: number
  type: number
  data: Uint8Array
  /** The SHA-256 digest extended; defaults to SHA-256(data). */
  digest?: Uint8Array
}

const sha256 = (b: Uint8Array | string): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest())
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n >>> 0)
  return b
}

export function digestOf(e: LogEvent): Uint8Array {
  return e.digest ?? sha256(e.data)
}

/** Serializes events after a Spec ID Event03 header listing only sha256. */
export function encodeEventLog(events: LogEvent[]): Uint8Array {
  const specId = Buffer.concat([
    Buffer.from('Spec ID Event03\0', 'latin1'), u32(0), Buffer.from([0, 2, 0, 2]), u32(1), Buffer.from([0x0b, 0x00, 0x20, 0x00]), Buffer.from([0]),
  ])
  const parts: Buffer[] = [u32(0), u32(EV.NO_ACTION), Buffer.alloc(20), u32(specId.length), specId]
  for (const e of events) {
    parts.push(u32(e.pcr), u32(e.type), u32(1), Buffer.from([0x0b, 0x00]), Buffer.from(digestOf(e)), u32(e.data.length), Buffer.from(e.data))
  }
  return new Uint8Array(Buffer.concat(parts))
}

/** The parsed form of `e` at log position `index`, for appending to a parsed vector log. */
export function tcgEvent(e: LogEvent, index: number): TcgEvent {
  return { index, pcr: e.pcr, type: e.type, digests: { sha256: digestOf(e) }, data: e.data }
}

// --- boot-like events as OVMF, shim/GRUB and the kernel's EFI stub log them --------------------

const EFI_GLOBAL_VARIABLE = Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex')

/** EV_EFI_VARIABLE_DRIVER_CONFIG in PCR 7 (UEFI_VARIABLE_DATA, PFP §10.4.4.1); digest over the whole structure. */
export function secureBootVariable(enabled: boolean, name = 'SecureBoot'): LogEvent {
  const n = Buffer.from(name, 'utf16le')
  const len = Buffer.alloc(16)
  len.writeBigUInt64LE(BigInt(name.length), 0)
  len.writeBigUInt64LE(1n, 8)
  return { pcr: 7, type: EV.EFI_VARIABLE_DRIVER_CONFIG, data: new Uint8Array(Buffer.concat([EFI_GLOBAL_VARIABLE, len, n, Buffer.from([enabled ? 1 : 0])])) }
}

export function separator(pcr: number): LogEvent {
  return { pcr, type: EV.SEPARATOR, data: new Uint8Array(4) }
}

export function efiAction(pcr: number, text: string): LogEvent {
  return { pcr, type: EV.EFI_ACTION, data: new Uint8Array(Buffer.from(text, 'latin1')) }
}

/** EV_EFI_BOOT_SERVICES_APPLICATION in PCR 4: the digest is the image's Authenticode hash. */
export function bootApplication(imageDigest: Uint8Array): LogEvent {
  return { pcr: 4, type: EV.EFI_BOOT_SERVICES_APPLICATION, data: new Uint8Array(32), digest: imageDigest }
}

/** GRUB 2's EV_IPL in PCR 8: data "kernel_cmdline: <cmdline>\0", digest over the command line. */
export function grubCmdline(cmdline: string): LogEvent {
  return { pcr: 8, type: EV.IPL, data: new Uint8Array(Buffer.from(`kernel_cmdline: ${cmdline}\0`)), digest: sha256(cmdline) }
}

/** A firmware boot up to ExitBootServices: Secure Boot state, separators 0–7, kernel, command line. */
export function bootEvents(o: { secureBoot: boolean; kernel: Uint8Array; cmdline: string }): LogEvent[] {
  return [
    secureBootVariable(o.secureBoot),
    separator(7),
    efiAction(4, 'Calling EFI Application from Boot Option'),
    ...[0, 1, 2, 3, 4, 5, 6].map(separator),
    bootApplication(o.kernel),
    grubCmdline(o.cmdline),
    efiAction(5, 'Exit Boot Services Invocation'),
    efiAction(5, 'Exit Boot Services Returned with Success'),
  ]
}

// --- the golden boot the attack tests pretend to have had ----------------------------------------

export const GOLDEN_CMDLINE = '/vmlinuz-6.1.0-golden root=/dev/vda1 ro console=ttyS0'

/** A release policy written on the documented measured-boot facts (docs/policy.md), granting `secret`. */
export function goldenBootPolicy(secret: string): string {
  return `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: golden-boot
spec:
  tees: [tpm]
  conditions:
    - name: kernel-cmdline-golden
      expr: claims.details.eventLog.kernelCmdline == "${GOLDEN_CMDLINE}"
    - name: secure-boot-on
      expr: claims.details.eventLog.secureBoot == true
  grants:
    secrets: [${secret}]
`
}
