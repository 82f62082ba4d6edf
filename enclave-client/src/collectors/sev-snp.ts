// AMD SEV-SNP collector over Linux configfs-tsm (Documentation/ABI/testing/configfs-tsm), the
// stable kernel interface for attestation reports (Linux ≥ 6.7, sev-guest provider):
//
//   mkdir  /sys/kernel/config/tsm/report/$name     the kernel populates the attributes
//   read   generation                              counter bumped by every attribute write
//   write  inblob                                  64 bytes → REPORT_DATA (binding || zeros)
//   read   outblob                                 the 1184-byte ATTESTATION_REPORT
//   read   auxblob                                 the GHCB certificate table (may be empty)
//   read   generation                              must be ours + 1, else another writer raced: retry
//   rmdir  $name
//
// Tested against a directory tree that behaves as that document describes; it has not been run
// on SEV-SNP hardware here.
import { access, mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { CollectorError } from '../errors.js'
import type { Collector, CollectRequest } from './types.js'

export const DEFAULT_TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report'
const REPORT_SIZE = 1184
const REPORT_DATA_OFF = 0x50

/** The file operations the collector needs; injectable so tests can emulate configfs. */
export interface TsmFs {
  mkdir(path: string): Promise<void>
  rmdir(path: string): Promise<void>
  readFile(path: string): Promise<Uint8Array>
  writeFile(path: string, data: Uint8Array): Promise<void>
  isDirectory(path: string): Promise<boolean>
}

export const nodeTsmFs: TsmFs = {
  mkdir: async (p) => void (await mkdir(p)),
  rmdir: (p) => rmdir(p),
  readFile: async (p) => new Uint8Array(await readFile(p)),
  writeFile: (p, d) => writeFile(p, d),
  isDirectory: async (p) => {
    try {
      await access(p)
      return (await stat(p)).isDirectory()
    } catch {
      return false
    }
  },
}

export interface SevSnpCollectorOptions {
  /** configfs-tsm report directory (default /sys/kernel/config/tsm/report). */
  root?: string
  /** VMPL to request the report at (`privlevel`, 0–3); unset: the kernel default. */
  privlevel?: number
  /** Attempts when generation shows a concurrent writer (default 5). */
  maxAttempts?: number
  fs?: TsmFs
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8').trim()

function parseGeneration(b: Uint8Array): number {
  const s = text(b)
  if (!/^\d+$/.test(s)) throw new CollectorError(`configfs-tsm: unreadable generation "${s.slice(0, 20)}"`)
  return Number(s)
}

export function createSevSnpCollector(opts: SevSnpCollectorOptions = {}): Collector {
  const root = opts.root ?? DEFAULT_TSM_REPORT_ROOT
  const fs = opts.fs ?? nodeTsmFs
  const attempts = opts.maxAttempts ?? 5
  if (opts.privlevel !== undefined && !(Number.isInteger(opts.privlevel) && opts.privlevel >= 0 && opts.privlevel <= 3)) {
    throw new CollectorError('configfs-tsm: privlevel must be 0–3')
  }

  async function once(dir: string, inblob: Uint8Array): Promise<{ report: Uint8Array; aux: Uint8Array } | undefined> {
    const provider = text(await fs.readFile(join(dir, 'provider')))
    if (provider !== 'sev_guest') throw new CollectorError(`configfs-tsm: provider is "${provider}", not sev_guest`)
    if (opts.privlevel !== undefined) await fs.writeFile(join(dir, 'privlevel'), Buffer.from(`${opts.privlevel}\n`))
    const before = parseGeneration(await fs.readFile(join(dir, 'generation')))
    await fs.writeFile(join(dir, 'inblob'), inblob)
    const report = await fs.readFile(join(dir, 'outblob'))
    let aux: Uint8Array
    try {
      aux = await fs.readFile(join(dir, 'auxblob'))
    } catch (e) {
      // Kernels without extended-report support have no auxblob: certificates then come from the broker's cache.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      aux = new Uint8Array(0)
    }
    const after = parseGeneration(await fs.readFile(join(dir, 'generation')))
    if (after !== before + 1) return undefined
    if (report.length !== REPORT_SIZE) throw new CollectorError(`configfs-tsm: outblob is ${report.length} bytes, expected ${REPORT_SIZE}`)
    // A report for another writer's inblob would slip past only with a generation wrap; refuse it anyway.
    if (!Buffer.from(report.subarray(REPORT_DATA_OFF, REPORT_DATA_OFF + 64)).equals(inblob)) return undefined
    return { report, aux }
  }

  return {
    tee: 'sev-snp',
    available: () => fs.isDirectory(root),
    async collect(req: CollectRequest): Promise<Record<string, unknown>> {
      if (req.binding.length !== 32) throw new CollectorError('binding digest must be 32 bytes')
      const inblob = new Uint8Array(64)
      inblob.set(req.binding) // docs/protocol.md: REPORT_DATA = binding || 32 zero bytes
      const dir = join(root, `keyward-${process.pid}-${randomBytes(6).toString('hex')}`)
      try {
        await fs.mkdir(dir)
      } catch (e) {
        throw new CollectorError(`configfs-tsm: cannot create a report entry under ${root}`, { cause: e })
      }
      try {
        for (let i = 0; i < attempts; i++) {
          const got = await once(dir, inblob)
          if (!got) continue
          const evidence: Record<string, unknown> = { report: Buffer.from(got.report).toString('base64') }
          if (got.aux.length > 0) evidence.certTable = Buffer.from(got.aux).toString('base64')
          return evidence
        }
        throw new CollectorError(`configfs-tsm: report generation raced with another writer ${attempts} times`)
      } catch (e) {
        if (e instanceof CollectorError) throw e
        throw new CollectorError('configfs-tsm: report request failed', { cause: e })
      } finally {
        await fs.rmdir(dir).catch(() => undefined)
      }
    },
  }
}
