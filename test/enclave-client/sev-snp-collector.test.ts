// The configfs-tsm SEV-SNP collector against a directory tree that behaves as
// Documentation/ABI/testing/configfs-tsm describes: mkdir populates the attributes, each write
// bumps `generation`, `outblob` is a report over the current `inblob` (here signed by a testOnly
// VCEK so the broker's verifier can check it end to end), `auxblob` is the certificate table.
import { describe, it, expect, beforeAll, afterEach } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, existsSync, readdirSync } from 'node:fs'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import type { KeyObject } from 'node:crypto'
import { KeywardError } from '../../src/errors.js'
import { createSevSnpCollector, type TsmFs } from '../../enclave-client/src/collectors/sev-snp.js'
import { createSevSnpVerifier } from '../../src/verifiers/sev-snp/index.js'
import { buildCertTable } from '../../src/verifiers/sev-snp/certs.js'
import { OFF } from '../../src/verifiers/sev-snp/layout.js'
import { TEST_NOW, signReport, snpFile, testOnlyPki, type TestOnlyPki } from '../verifiers/sev-snp/helpers.js'

interface FakeOptions {
  provider?: string
  /** Extra generation bumps (another writer) during the first N outblob reads. */
  racyReads?: number
  noAuxblob?: boolean
}

interface Fake {
  fs: TsmFs
  root: string
  stats: { mkdir: number; inblobWrites: number; rmdir: number }
}

let pki: TestOnlyPki
let vcekDer: Uint8Array
let vcekKey: KeyObject
const template = snpFile('milan-v3-oak.bin')
const roots: string[] = []

beforeAll(async () => {
  pki = await testOnlyPki('Milan')
  const { vcek, key } = await pki.issueVcek({ tcb: { bl: 4, tee: 0, snp: 24, ucode: 219 }, hwId: template.slice(OFF.CHIP_ID, OFF.CHIP_ID + 64) })
  vcekDer = new Uint8Array(vcek.cert.raw)
  vcekKey = key
})
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true })
})

function fakeConfigfs(o: FakeOptions = {}): Fake {
  const root = mkdtempSync(join(tmpdir(), 'kw-tsm-'))
  roots.push(root)
  const stats = { mkdir: 0, inblobWrites: 0, rmdir: 0 }
  let racy = o.racyReads ?? 0
  const gen = async (dir: string): Promise<number> => Number((await readFile(join(dir, 'generation'), 'utf8')).trim())
  const bump = async (dir: string): Promise<void> => writeFile(join(dir, 'generation'), `${(await gen(dir)) + 1}\n`)
  const fs: TsmFs = {
    async mkdir(p) {
      stats.mkdir++
      await mkdir(p)
      await writeFile(join(p, 'provider'), `${o.provider ?? 'sev_guest'}\n`)
      await writeFile(join(p, 'generation'), '0\n')
      await writeFile(join(p, 'inblob'), new Uint8Array(0))
    },
    async rmdir(p) {
      stats.rmdir++
      await rm(p, { recursive: true })
    },
    async writeFile(p, d) {
      const attr = basename(p)
      if (attr !== 'inblob' && attr !== 'privlevel') throw Object.assign(new Error('EACCES'), { code: 'EACCES' })
      if (attr === 'inblob') {
        if (d.length > 64) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' })
        stats.inblobWrites++
      }
      await writeFile(p, d)
      await bump(join(p, '..'))
    },
    async readFile(p) {
      const dir = join(p, '..')
      const attr = basename(p)
      if (attr === 'outblob') {
        const report = template.slice()
        report.set(new Uint8Array(await readFile(join(dir, 'inblob'))), OFF.REPORT_DATA)
        if (racy > 0) {
          racy--
          await bump(dir) // another process wrote an attribute meanwhile
        }
        return signReport(report, vcekKey)
      }
      if (attr === 'auxblob') {
        if (o.noAuxblob) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' })
        return buildCertTable({ vcek: vcekDer, ask: new Uint8Array(pki.ask.cert.raw) })
      }
      return new Uint8Array(await readFile(p))
    },
    isDirectory: async (p) => (await stat(p).catch(() => undefined))?.isDirectory() ?? false,
  }
  return { fs, root, stats }
}

const binding = new Uint8Array(32).map((_, i) => i + 1)
const req = { binding, nonce: new Uint8Array(32) }
const codeOf = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: unknown) => (e instanceof KeywardError ? e.code : `non-keyward ${String(e)}`))

describe('SEV-SNP configfs-tsm collector', () => {
  it('available() follows the report directory', async () => {
    const f = fakeConfigfs()
    expect(await createSevSnpCollector({ root: f.root, fs: f.fs }).available()).toBe(true)
    expect(await createSevSnpCollector({ root: join(f.root, 'missing'), fs: f.fs }).available()).toBe(false)
  })

  it('collects report and certificate table that the broker verifies with the binding', async () => {
    const f = fakeConfigfs()
    const c = createSevSnpCollector({ root: f.root, fs: f.fs })
    const ev = await c.collect(req)
    expect(Object.keys(ev).sort()).toEqual(['certTable', 'report'])
    const sevSnpVerifier = createSevSnpVerifier()
    const claims = await sevSnpVerifier.verify(sevSnpVerifier.decode(ev), {
      now: TEST_NOW,
      expectedBinding: binding,
      trust: { snp: { arks: [new X509Certificate(pki.ark.cert.raw)] } },
    })
    expect(Buffer.from(claims.bindingData.subarray(0, 32))).toEqual(Buffer.from(binding))
    expect(f.stats).toEqual({ mkdir: 1, inblobWrites: 1, rmdir: 1 })
    expect(readdirSync(f.root)).toEqual([])
  })

  it('retries when generation shows another writer, then succeeds', async () => {
    const f = fakeConfigfs({ racyReads: 2 })
    const ev = await createSevSnpCollector({ root: f.root, fs: f.fs }).collect(req)
    expect(ev.report).toBeTypeOf('string')
    expect(f.stats.inblobWrites).toBe(3)
    expect(f.stats.mkdir).toBe(1)
  })

  it('gives up with ERR_COLLECTOR after maxAttempts races and removes its entry', async () => {
    const f = fakeConfigfs({ racyReads: 100 })
    expect(await codeOf(createSevSnpCollector({ root: f.root, fs: f.fs, maxAttempts: 3 }).collect(req))).toBe('ERR_COLLECTOR')
    expect(f.stats.inblobWrites).toBe(3)
    expect(readdirSync(f.root)).toEqual([])
  })

  it('writes privlevel before taking the generation and still succeeds', async () => {
    const f = fakeConfigfs()
    const ev = await createSevSnpCollector({ root: f.root, fs: f.fs, privlevel: 1 }).collect(req)
    expect(ev.report).toBeTypeOf('string')
    expect(() => createSevSnpCollector({ privlevel: 4 })).toThrow(KeywardError)
  })

  it('omits certTable when the kernel has no auxblob', async () => {
    const f = fakeConfigfs({ noAuxblob: true })
    const ev = await createSevSnpCollector({ root: f.root, fs: f.fs }).collect(req)
    expect(ev.certTable).toBeUndefined()
  })

  it('refuses another provider, a missing root and a bad binding with ERR_COLLECTOR', async () => {
    const tdx = fakeConfigfs({ provider: 'tdx_guest' })
    expect(await codeOf(createSevSnpCollector({ root: tdx.root, fs: tdx.fs }).collect(req))).toBe('ERR_COLLECTOR')
    expect(readdirSync(tdx.root)).toEqual([])
    const f = fakeConfigfs()
    expect(await codeOf(createSevSnpCollector({ root: join(f.root, 'nope'), fs: f.fs }).collect(req))).toBe('ERR_COLLECTOR')
    expect(await codeOf(createSevSnpCollector({ root: f.root, fs: f.fs }).collect({ ...req, binding: new Uint8Array(31) }))).toBe('ERR_COLLECTOR')
    expect(existsSync(f.root)).toBe(true)
  })
})
