// Fresh, genuine quotes from a software TPM (../shared/tools/tpm-quote.sh: RSA and ECC AKs,
// SHA-1 and SHA-256 banks, several PCR selections): keyward and tpm2_checkquote agree on every
// quote, genuine and tampered.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SHARED_TOOLS } from '../../helpers/vectors.js'
import { KeywardError } from '../../../src/errors.js'
import { fromHex, toHex, type HashName } from '../../../src/util/bytes.js'
import { verifyTpmCommand } from '../../../src/cli/verify-tpm.js'
import { akName, extendReplay, parseTpmPublic } from '../../../src/verifiers/tpm/index.js'

const RUNS = [
  { name: 'default', sel: 'sha256:0,1,2,3,4,5,6,7,23', extra: ['-f', '__FILE__'] },
  { name: 'two-banks', sel: 'sha1:0,1,2,16+sha256:7,16,23', extra: ['-e', `16:sha1=${'a1'.repeat(20)}`, '-e', `16:sha256=${'b2'.repeat(32)}`, '-e', `16:sha256=${'c3'.repeat(32)}`] },
  { name: 'sha1-all', sel: `sha1:${[...Array(24).keys()].join(',')}`, extra: ['-e', `23:sha1=${'d4'.repeat(20)}`] },
]

interface Quote { run: string; alg: string; dir: string; akDir: string; nonce: string }
let tmp = ''
const quotes: Quote[] = []

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'kw-tpm-quote-'))
  const file = join(tmp, 'allowlist.json')
  writeFileSync(file, '{"allow":["/usr/bin/true"]}\n')
  for (const r of RUNS) {
    const out = join(tmp, r.name)
    execFileSync(join(SHARED_TOOLS, 'tpm-quote.sh'), ['-o', out, '-a', 'both', '-l', r.sel, '-N', '2', ...r.extra.map((x) => (x === '__FILE__' ? file : x))], { stdio: 'pipe', timeout: 60_000 })
    for (const alg of ['rsa', 'ecc']) {
      for (const n of ['0001', '0002']) {
        const dir = join(out, alg, n)
        quotes.push({ run: r.name, alg, dir, akDir: join(out, alg), nonce: readFileSync(join(dir, 'nonce.hex'), 'utf8').trim() })
      }
    }
  }
}, 120_000)

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

function checkquote(q: Quote, files: { msg?: string; sig?: string; pcrs?: string } = {}, nonce = q.nonce): boolean {
  const r = spawnSync('tpm2_checkquote', ['-u', join(q.akDir, 'ak.pub.pem'), '-m', files.msg ?? join(q.dir, 'quote.msg'), '-s', files.sig ?? join(q.dir, 'quote.sig'), '-f', files.pcrs ?? join(q.dir, 'quote.pcrs'), '-g', 'sha256', '-q', nonce], { stdio: 'pipe' })
  // A missing or crashing tool must fail the test, not count as "the quote was rejected".
  if (r.error) throw r.error
  if (r.status !== 0 && r.status !== 1) throw new Error(`tpm2_checkquote exited ${r.status} (signal ${r.signal}): ${r.stderr}`)
  return r.status === 0
}

async function keyward(q: Quote, files: { msg?: string; sig?: string; pcrs?: string; ak?: string } = {}, nonce = q.nonce): Promise<string> {
  try {
    await verifyTpmCommand(['--ak', files.ak ?? join(q.akDir, 'ak.pub'), '--quote', files.msg ?? join(q.dir, 'quote.msg'), '--sig', files.sig ?? join(q.dir, 'quote.sig'), '--pcrs', files.pcrs ?? join(q.dir, 'quote.pcrs'), '--nonce', nonce])
    return 'OK'
  } catch (e) {
    expect(e).toBeInstanceOf(KeywardError)
    return (e as KeywardError).code
  }
}

function flipped(src: string, at: number, dst: string): string {
  const b = readFileSync(src)
  b[at]! ^= 0x01
  writeFileSync(dst, b)
  return dst
}

describe('fresh swtpm quotes', () => {
  it('generated 12 quotes (3 selections × RSA/ECC × 2 nonces)', () => {
    expect(quotes.length).toBe(12)
  })

  it('every genuine quote verifies in keyward and in tpm2_checkquote, with claims matching the tool output', async () => {
    for (const q of quotes) {
      expect(checkquote(q), `${q.dir} checkquote`).toBe(true)
      const claims = await verifyTpmCommand(['--ak', join(q.akDir, 'ak.pub'), '--quote', join(q.dir, 'quote.msg'), '--sig', join(q.dir, 'quote.sig'), '--pcrs', join(q.dir, 'quote.pcrs'), '--nonce', q.nonce])
      expect(toHex(claims.bindingData)).toBe(q.nonce)
      expect(claims.details.pcrs).toEqual(JSON.parse(readFileSync(join(q.dir, 'pcrs.json'), 'utf8')))
      expect(claims.details.akName).toBe(toHex(readFileSync(join(q.akDir, 'ak.name'))))
      expect(claims.details.sigScheme).toBe(q.alg === 'rsa' ? 'rsassa-sha256' : 'ecdsa-sha256')
      expect(claims.details.akAttributesVerified).toBe(true)
    }
  })

  it('the AK name recomputes from ak.pub for both key types', () => {
    for (const q of quotes.filter((x) => x.dir.endsWith('0001'))) {
      expect(toHex(akName(parseTpmPublic(new Uint8Array(readFileSync(join(q.akDir, 'ak.pub'))))))).toBe(toHex(readFileSync(join(q.akDir, 'ak.name'))))
    }
  })

  it('extendReplay reproduces the extended PCRs from extends.json', () => {
    for (const q of quotes) {
      const ext = JSON.parse(readFileSync(join(q.akDir, 'extends.json'), 'utf8')) as { pcr: number; bank: HashName; digest: string }[]
      const pcrs = JSON.parse(readFileSync(join(q.dir, 'pcrs.json'), 'utf8')) as Record<string, Record<string, string>>
      const groups = new Map<string, Uint8Array[]>()
      for (const e of ext) groups.set(`${e.bank}:${e.pcr}`, [...(groups.get(`${e.bank}:${e.pcr}`) ?? []), fromHex(e.digest)!])
      let checked = 0
      for (const [k, ds] of groups) {
        const [bank, pcr] = k.split(':') as [HashName, string]
        const quoted = pcrs[bank]?.[pcr]
        if (!quoted) continue
        expect(toHex(extendReplay(bank, new Uint8Array(ds[0]!.length), ds))).toBe(quoted)
        checked++
      }
      expect(checked).toBeGreaterThan(0)
    }
  })

  it('tampered quotes: keyward and tpm2_checkquote both reject, keyward with a specific code', async () => {
    const work = join(tmp, 'tamper')
    execFileSync('mkdir', ['-p', work])
    for (const q of quotes) {
      const msgLen = readFileSync(join(q.dir, 'quote.msg')).length
      const sigLen = readFileSync(join(q.dir, 'quote.sig')).length
      const pcrsBuf = readFileSync(join(q.dir, 'quote.pcrs'))
      const mutations: { label: string; files: { msg?: string; sig?: string; pcrs?: string }; nonce?: string; codes: string[] }[] = [
        // TPMS_ATTEST: magic(4) type(2) qualifiedSigner(2+34) extraData(2+n) ...
        { label: 'qualifiedSigner byte', files: { msg: flipped(join(q.dir, 'quote.msg'), 12, join(work, 'm1')) }, codes: ['ERR_SIGNATURE_INVALID'] },
        { label: 'extraData byte', files: { msg: flipped(join(q.dir, 'quote.msg'), 44, join(work, 'm0')) }, codes: ['ERR_SIGNATURE_INVALID'] },
        { label: 'clock byte', files: { msg: flipped(join(q.dir, 'quote.msg'), msgLen - 60, join(work, 'm2')) }, codes: ['ERR_SIGNATURE_INVALID'] },
        { label: 'pcrDigest byte', files: { msg: flipped(join(q.dir, 'quote.msg'), msgLen - 1, join(work, 'm3')) }, codes: ['ERR_SIGNATURE_INVALID'] },
        { label: 'signature byte', files: { sig: flipped(join(q.dir, 'quote.sig'), sigLen - 5, join(work, 's1')) }, codes: ['ERR_SIGNATURE_INVALID'] },
        // first digest value of the first TPML_DIGEST (offset 132 + 4 + 4 + 2)
        { label: 'PCR value', files: { pcrs: flipped(join(q.dir, 'quote.pcrs'), 142, join(work, 'p1')) }, codes: ['ERR_PCR_DIGEST_MISMATCH'] },
        { label: 'wrong nonce', files: {}, nonce: (q.nonce[0] === '0' ? '1' : '0') + q.nonce.slice(1), codes: ['ERR_NONCE_MISMATCH'] },
      ]
      expect(pcrsBuf.length).toBeGreaterThan(142)
      for (const m of mutations) {
        expect(checkquote(q, m.files, m.nonce), `${q.dir} ${m.label}: checkquote`).toBe(false)
        expect(m.codes, `${q.dir} ${m.label}`).toContain(await keyward(q, m.files, m.nonce))
      }
    }
  })

  it('a quote checked against the other AK fails in both', async () => {
    const q = quotes.find((x) => x.alg === 'rsa')!
    const other = quotes.find((x) => x.alg === 'ecc' && x.run === q.run)!
    const r = spawnSync('tpm2_checkquote', ['-u', join(other.akDir, 'ak.pub.pem'), '-m', join(q.dir, 'quote.msg'), '-s', join(q.dir, 'quote.sig'), '-f', join(q.dir, 'quote.pcrs'), '-g', 'sha256', '-q', q.nonce], { stdio: 'pipe' })
    expect(r.status).not.toBe(0)
    expect(await keyward(q, { ak: join(other.akDir, 'ak.pub') })).toBe('ERR_SIGNATURE_INVALID')
    expect(existsSync(join(q.akDir, 'ak.pub.pem'))).toBe(true)
  })
})
