// `keyward reference import`: reference values from the files platform tools write, stored with
// provenance and listed back; a malformed file is refused with a code and nothing is stored.
import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runKeywardInProcess } from '../helpers/cli.js'
import { vectorPath } from '../helpers/vectors.js'

const dir = mkdtempSync(join(tmpdir(), 'keyward-refimport-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// In-process through the dispatcher (test/helpers/cli.ts): the command, not a process, is under test.
async function keyward(...args: string[]) {
  return runKeywardInProcess([...args, '--data-dir', dir], { DATABASE_URL: '' })
}

describe('keyward reference import', () => {
  it('imports nitro-cli measurements and a TPM event log, with provenance; refuses malformed input', async () => {
    const pcr = (c: string) => c.repeat(96)
    const eif = join(dir, 'measurements.json')
    writeFileSync(eif, JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: pcr('a'), PCR1: pcr('b'), PCR2: pcr('c') } }))
    const n = await keyward('reference', 'import', '--format', 'nitro-cli', eif, '--source', 'payments.eif build 42')
    expect(n.code, n.stderr).toBe(0)
    expect(JSON.parse(n.stdout).sets).toEqual(['nitro-pcr0', 'nitro-pcr1', 'nitro-pcr2'])

    const t = await keyward('reference', 'import', '--format', 'tpm-eventlog', vectorPath('tpm/eventlogs/ubuntu-2404-amd-sevsnp.bin'), '--indices', '0,7')
    expect(t.code, t.stderr).toBe(0)
    expect(JSON.parse(t.stdout).sets).toEqual(expect.arrayContaining(['tpm-sha256-pcr0', 'tpm-sha256-pcr7']))

    const listed = JSON.parse((await keyward('reference', 'list', '--set', 'nitro-pcr0')).stdout) as { referenceValues: Array<{ value: string; source: string; createdBy: string }> }
    expect(listed.referenceValues).toHaveLength(1)
    expect(listed.referenceValues[0]).toMatchObject({ value: pcr('a'), source: expect.stringContaining('payments.eif build 42') })

    writeFileSync(join(dir, 'bad.json'), '{"Measurements": {"PCR0": "zz"}}')
    const bad = await keyward('reference', 'import', '--format', 'nitro-cli', join(dir, 'bad.json'))
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('ERR_BAD_REQUEST')
  })
})
