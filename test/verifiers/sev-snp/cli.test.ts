// `keyward verify --tee sev-snp` called exactly as ../shared/tools/conformance.sh calls it.
import { describe, it, expect } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { errorCodeOf } from '../../helpers/errors.js'
import { verifySevSnpCommand } from '../../../src/cli/verify-sev-snp.js'
import { vectorPath } from '../../helpers/vectors.js'
import { certDer, manifest, vector } from './helpers.js'

const p = (f: string): string => vectorPath('sev-snp', f)
const argsOf = (v: (typeof manifest.vectors)[number]): string[] => [
  p(v.report),
  '--vcek',
  p((v.vcek ?? v.vlek)!),
  ...v.chain.flatMap((c) => ['--chain', p(c)]),
  '--at',
  v.verify_at,
]
async function outcome(argv: string[]): Promise<string> {
  const code = await errorCodeOf(() => verifySevSnpCommand(argv))
  return code === 'OK' ? 'valid' : code
}

describe('verify --tee sev-snp', () => {
  it.each(manifest.vectors.map((v) => [v.name, v] as const))('%s: outcome as the manifest says', async (_n, v) => {
    const got = await outcome(argsOf(v))
    if (v.expected === 'valid') expect(got).toBe('valid')
    else expect(got).toMatch(/^ERR_/)
  })

  it('reads DER chain files and checks --report-data (32-byte binding or all 64 bytes)', async () => {
    const v = vector('turin-v5-oak')
    const dir = mkdtempSync(join(tmpdir(), 'kw-snp-cli-'))
    try {
      writeFileSync(join(dir, 'ask.der'), certDer('turin-ask.pem'))
      const base = [p(v.report), '--vcek', p(v.vcek!), '--chain', join(dir, 'ask.der'), '--at', v.verify_at]
      expect(await outcome(base)).toBe('valid')
      expect(await outcome([...base, '--report-data', v.report_data])).toBe('valid')
      expect(await outcome([...base, '--report-data', v.report_data.slice(0, 64)])).toBe('valid')
      expect(await outcome([...base, '--report-data', 'ff' + v.report_data.slice(2, 64)])).toBe('ERR_BINDING_MISMATCH')
      expect(await outcome([...base, '--report-data', 'ff' + v.report_data.slice(2)])).toBe('ERR_BINDING_MISMATCH')
      expect(await outcome([...base, '--report-data', 'zz'])).toBe('ERR_USAGE')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a bad command line with ERR_USAGE and an unreadable file with ERR_BAD_REQUEST', async () => {
    const v = vector('milan-v2-virtee')
    expect(await outcome([])).toBe('ERR_USAGE')
    expect(await outcome([p(v.report), '--bogus', 'x'])).toBe('ERR_USAGE')
    expect(await outcome([p(v.report), '--at', 'yesterday'])).toBe('ERR_USAGE')
    expect(await outcome([p(v.report), '--vcek', '/nonexistent/vcek.der'])).toBe('ERR_BAD_REQUEST')
    expect(await outcome([p(v.report), '--at', v.verify_at, '--at', v.verify_at])).toBe('ERR_USAGE')
  })
})
