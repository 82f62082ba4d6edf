// Platform detection and collector construction. Detection looks for each TEE's interface:
// /dev/nsm (Nitro Enclaves), configfs-tsm (SEV-SNP guests), a TPM resource manager. A
// confidential VM often has a vTPM too, so the hardware TEE interfaces are preferred; pass
// the platform explicitly to choose otherwise.
import { access, constants } from 'node:fs/promises'
import type { Tee } from '../../src/protocol/tee.js'
import { TEES } from '../../src/protocol/tee.js'
import type { Collector } from './collectors/types.js'
import { createTpmCollector, DEFAULT_TCTI, type TpmCollectorOptions } from './collectors/tpm.js'
import { ClientConfigError } from './errors.js'
import type { NitroCollectorOptions } from './collectors/nitro.js'
import type { SevSnpCollectorOptions } from './collectors/sev-snp.js'

export const PLATFORM_PROBES: ReadonlyArray<{ tee: Tee; path: string }> = [
  { tee: 'nitro', path: '/dev/nsm' },
  { tee: 'sev-snp', path: '/sys/kernel/config/tsm/report' },
  { tee: 'tpm', path: '/dev/tpmrm0' },
]

export type PathExists = (path: string) => Promise<boolean>

const exists: PathExists = async (p) => {
  try {
    await access(p, constants.F_OK)
    return true
  } catch {
    return false
  }
}

/** The first platform whose interface exists, or undefined. */
export async function detectPlatform(pathExists: PathExists = exists): Promise<Tee | undefined> {
  for (const p of PLATFORM_PROBES) if (await pathExists(p.path)) return p.tee
  return undefined
}

export function parseTee(s: string): Tee {
  if (!(TEES as readonly string[]).includes(s)) throw new ClientConfigError(`unknown platform "${s}" (one of ${TEES.join(', ')})`)
  return s as Tee
}

export interface CollectorOptions {
  /** TPM collector options; stateDir is required for TPM. */
  tpm?: Partial<TpmCollectorOptions>
  nitro?: NitroCollectorOptions
  'sev-snp'?: SevSnpCollectorOptions
}

/**
 * Builds the collector for a platform. The Nitro and SEV-SNP collectors (collectors/nitro.ts,
 * collectors/sev-snp.ts) are loaded only when used.
 */
export async function createCollector(tee: Tee, opts: CollectorOptions = {}): Promise<Collector> {
  switch (tee) {
    case 'tpm': {
      const t = opts.tpm ?? {}
      if (!t.stateDir) throw new ClientConfigError('the TPM collector needs a state dir (--state-dir)')
      return createTpmCollector({ tcti: DEFAULT_TCTI, ...t, stateDir: t.stateDir })
    }
    case 'nitro':
      return (await import('./collectors/nitro.js')).createNitroCollector(opts.nitro)
    case 'sev-snp':
      return (await import('./collectors/sev-snp.js')).createSevSnpCollector(opts['sev-snp'])
  }
}
