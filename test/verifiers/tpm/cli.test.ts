// `keyward verify --tee tpm` through the dispatcher: exit code 0 and claims on stdout when valid,
// non-zero with the error code on stderr otherwise.
import { describe, it, expect, vi, afterEach } from 'vitest'
import { vectorPath } from '../../helpers/vectors.js'
import { run as runKeyward } from '../../../src/cli/main.js'

const d = vectorPath('tpm', 'swtpm/ecc/0001')
const base = ['--tee', 'tpm', '--ak', vectorPath('tpm', 'swtpm/ecc/ak.pub'), '--quote', `${d}/quote.msg`, '--sig', `${d}/quote.sig`, '--pcrs', `${d}/quote.pcrs`]
const nonce = '6b62732d746573742d6e6f6e63652d30303031'

async function run(argv: string[]): Promise<{ rc: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((out += String(c)), true))
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((err += String(c)), true))
  try {
    const rc = await runKeyward(['verify', ...argv])
    return { rc, out, err }
  } finally {
    o.mockRestore()
    e.mockRestore()
  }
}

afterEach(() => vi.restoreAllMocks())

describe('keyward verify --tee tpm', () => {
  it('valid evidence: exit 0, JSON claims', async () => {
    const r = await run([...base, '--nonce', nonce, '--json'])
    expect(r.rc).toBe(0)
    const j = JSON.parse(r.out)
    expect(j.tee).toBe('tpm')
    expect(j.bindingData).toBe(nonce)
    expect(j.details.sigScheme).toBe('ecdsa-sha256')
  })
  it('wrong nonce: exit 1, ERR_NONCE_MISMATCH on stderr', async () => {
    const r = await run([...base, '--nonce', '00'])
    expect(r.rc).toBe(1)
    expect(r.err).toMatch(/^ERR_NONCE_MISMATCH:/)
  })
  it.each([
    // usage errors: exit 2
    [['--tee', 'tpm', '--ak', vectorPath('tpm', 'swtpm/ecc/ak.pub')], 'ERR_USAGE', 2],
    [[...base, '--nonce', 'xyz'], 'ERR_USAGE', 2],
    [[...base, '--bogus', '1'], 'ERR_USAGE', 2],
    [[...base, '--ak', vectorPath('tpm', 'swtpm/ecc/ak.pub')], 'ERR_USAGE', 2],
    // the evidence was read but not accepted: exit 1
    [[...base.slice(0, 4), '--quote', '/nonexistent/quote.msg', ...base.slice(6)], 'ERR_BAD_REQUEST', 1],
    [[...base.slice(0, 4), '--quote', `${d}/quote.sig`, ...base.slice(6)], 'ERR_EVIDENCE_MALFORMED', 1],
    [[...base.slice(0, 6), '--sig', vectorPath('tpm', 'swtpm/ecc/0002/quote.sig'), ...base.slice(8)], 'ERR_SIGNATURE_INVALID', 1],
    [[...base, '--eventlog', `${d}/quote.msg`], 'ERR_EVIDENCE_MALFORMED', 1],
  ])('%j → %s', async (argv, code, rc) => {
    const r = await run(argv)
    expect(r.rc).toBe(rc)
    expect(r.err.replace(/^keyward: /, '').split(':')[0]).toBe(code)
  })
})
