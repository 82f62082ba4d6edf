// `keyward policy test` (src/cli/policy-test.ts): exit 0 allow, 3 deny, 2 invalid input.
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createHash } from 'node:crypto'
import { run as runKeyward } from '../../src/cli/main.js'
import { makeAgent } from '../helpers/allowlist-agent.js'
import { REPO_ROOT, readManifest, readVector } from '../helpers/vectors.js'

let dir: string
const path = (f: string) => join(dir, f)
const write = (f: string, v: unknown) => writeFileSync(path(f), typeof v === 'string' ? v : JSON.stringify(v))

async function run(argv: string[]): Promise<{ rc: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true))
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true))
  try {
    return { rc: await runKeyward(['policy', 'test', ...argv]), out, err }
  } finally {
    o.mockRestore()
    e.mockRestore()
  }
}

interface NitroManifest {
  vectors: Array<{ file: string; timestamp_iso?: string; pcrs?: Record<string, string> }>
}

const NITRO_POLICY = resolve(REPO_ROOT, 'policies/nitro-enclave.yaml')
const prod = readManifest<NitroManifest>('nitro').vectors.find((x) => x.file === 'evervault-20221013-085802-prod.cbor')!
const debug = readManifest<NitroManifest>('nitro').vectors.find((x) => x.file === 'evervault-20221012-135006-debug.cbor')!

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-policy-test-'))
  for (const v of [prod, debug]) {
    write(`${v.file}.json`, { tee: 'nitro', evidence: { document: Buffer.from(readVector('nitro', v.file)).toString('base64') }, at: v.timestamp_iso })
  }
  write('refs.json', { 'nitro-pcr0': [prod.pcrs!.PCR0], 'nitro-pcr1': [prod.pcrs!.PCR1], 'nitro-pcr2': [prod.pcrs!.PCR2] })
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('keyward policy test', () => {
  it('allows genuine Nitro evidence whose PCRs are in the reference sets (verified offline at its time)', async () => {
    const r = await run([NITRO_POLICY, path(`${prod.file}.json`), '--refs', path('refs.json'), '--json'])
    expect(r.err).toBe('')
    expect(r.rc).toBe(0)
    const d = JSON.parse(r.out) as { allow: boolean; grants: { secrets: string[] }; measurement: string }
    expect(d.allow).toBe(true)
    expect(d.grants.secrets).toEqual(['card-data-key'])
    expect(d.measurement).toBe(prod.pcrs!.PCR0)
  })

  it('denies a debug enclave and an unknown image, naming each failing condition', async () => {
    const r = await run([NITRO_POLICY, path(`${debug.file}.json`), '--refs', path('refs.json')])
    expect(r.rc).toBe(3)
    expect(r.out).toMatch(/^DENY policy payments-enclave for nitro /)
    for (const c of ['debug-denied', 'pcr0-known', 'pcr1-known', 'pcr2-known']) expect(r.out).toContain(`FAIL ${c}: `)
    const noRefs = await run([NITRO_POLICY, path(`${prod.file}.json`)])
    expect(noRefs.rc).toBe(3)
    expect(noRefs.out).toContain('not in reference set "nitro-pcr0" (no active values)')
  })

  it('evaluates claims JSON as keyward verify --json prints it, with reference rows and --at', async () => {
    const claims = { tee: 'sev-snp', measurement: 'ab'.repeat(48), debug: false, issuedAt: null, bindingData: '00', nonce: null, publicKey: null, details: { reportedTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 }, vmpl: 0 } }
    write('snp-claims.json', claims)
    const row = { id: 'rv_1', set: 'snp-measurements', tee: 'sev-snp', value: 'ab'.repeat(48), source: 't', createdBy: 'testOnlyAdmin', createdAt: 0, expiresAt: Date.parse('2026-01-01T00:00:00Z'), revokedAt: null, revokedBy: null, note: null }
    write('rows.json', [row])
    const policy = resolve(REPO_ROOT, 'policies/sev-snp-guest.yaml')
    const ok = await run([policy, path('snp-claims.json'), '--refs', path('rows.json'), '--at', '2025-12-31T00:00:00Z', '--json'])
    expect(ok.rc).toBe(0)
    expect(JSON.parse(ok.out)).toMatchObject({ allow: true, referenceIds: ['rv_1'] })
    // the same reference value has expired by 2026-02-01
    const late = await run([policy, path('snp-claims.json'), '--refs', path('rows.json'), '--at', '2026-02-01T00:00:00Z'])
    expect(late.rc).toBe(3)
    expect(late.out).toContain('FAIL measurement-known')
  })

  it('judges the runtime state (boot records + statement) against the quoted TPM PCR 15', async () => {
    const digest = createHash('sha256').update(Buffer.alloc(32, 7)).digest()
    const agent = makeAgent({ allowlistDigest: new Uint8Array(digest), mode: 'enforce', progTag: new Uint8Array(8).fill(1), loadTime: 5n })
    const pcr = agent.records.reduce<Buffer>((p, r) => createHash('sha256').update(p).update(createHash('sha256').update(r).digest()).digest(), Buffer.alloc(32))
    write('state.json', agent.runtimeState(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)))
    const tpmClaims = (pcr15: string) => ({ tee: 'tpm', measurement: 'cd'.repeat(32), debug: false, issuedAt: null, details: { pcrs: { sha256: { '7': '77'.repeat(32), '15': pcr15 } }, eventLog: { secureBoot: true } } })
    write('tpm-claims.json', tpmClaims(pcr.toString('hex')))
    write('tpm-refs.json', { 'tpm-sha256-pcr7': ['77'.repeat(32)], 'allowlist-digests': [digest.toString('hex')] })
    const policy = resolve(REPO_ROOT, 'policies/tpm-host.yaml')
    const ok = await run([policy, path('tpm-claims.json'), '--refs', path('tpm-refs.json'), '--allowlist', path('state.json')])
    expect(ok.out).toMatch(/^ALLOW policy build-host/)
    expect(ok.rc).toBe(0)
    // without the allowlist, every allowlist condition fails closed
    const none = await run([policy, path('tpm-claims.json'), '--refs', path('tpm-refs.json')])
    expect(none.rc).toBe(3)
    expect(none.out).toContain('FAIL allowlist-replayed')
    // a PCR the records do not replay to is invalid evidence
    write('tpm-claims-bad.json', tpmClaims('00'.repeat(32)))
    const bad = await run([policy, path('tpm-claims-bad.json'), '--refs', path('tpm-refs.json'), '--allowlist', path('state.json')])
    expect(bad.rc).toBe(2)
    expect(bad.err).toMatch(/^ERR_ALLOWLIST_REPLAY: /)
  })

  // Real SEV-SNP reports, verified offline at their recorded time through the SNP verifier.
  interface SnpManifest {
    vectors: Array<{ name: string; report: string; vcek?: string; verify_at: string; measurement: string; reported_tcb: Record<string, number> }>
  }
  const snp = (name: string) => readManifest<SnpManifest>('sev-snp').vectors.find((v) => v.name === name)!
  const writeSnp = (name: string) => {
    const v = snp(name)
    write(`${name}.json`, {
      tee: 'sev-snp',
      evidence: { report: Buffer.from(readVector('sev-snp', v.report)).toString('base64'), vcek: Buffer.from(readVector('sev-snp', v.vcek!)).toString('base64') },
      at: v.verify_at,
    })
    return path(`${name}.json`)
  }
  const SNP_POLICY = resolve(REPO_ROOT, 'policies/sev-snp-guest.yaml')

  it('SEV-SNP: admits a known VMPL 0 guest, denies the same image at VMPL 1 and a debug guest on old TCB', async () => {
    write('snp-refs.json', { 'snp-measurements': [snp('milan-v5-gcp').measurement, snp('milan-v2-gosev-debug').measurement] })
    const ok = await run([SNP_POLICY, writeSnp('milan-v5-gcp'), '--refs', path('snp-refs.json')])
    expect(ok.err).toBe('')
    expect(ok.out).toMatch(/^ALLOW policy snp-database/)
    expect(ok.rc).toBe(0)
    const vmpl1 = await run([SNP_POLICY, writeSnp('milan-v5-gcp-vmpl1'), '--refs', path('snp-refs.json'), '--json'])
    expect(vmpl1.rc).toBe(3)
    expect(JSON.parse(vmpl1.out).failures).toEqual([expect.objectContaining({ condition: 'vmpl-0', actual: 1, expected: 0 })])
    const dbg = await run([SNP_POLICY, writeSnp('milan-v2-gosev-debug'), '--refs', path('snp-refs.json'), '--json'])
    expect(dbg.rc).toBe(3)
    const failures = JSON.parse(dbg.out).failures as Array<{ condition: string; actual: unknown; expected: unknown }>
    expect(failures.map((f) => f.condition)).toEqual(['debug-denied', 'tcb-bootloader-min', 'tcb-snp-min', 'tcb-microcode-min', 'debug-off'])
    const tcb = snp('milan-v2-gosev-debug').reported_tcb
    expect(failures[1]).toMatchObject({ actual: tcb.bootloader, expected: 3 })
    expect(failures[2]).toMatchObject({ actual: tcb.snp, expected: 8 })
    expect(failures[3]).toMatchObject({ actual: tcb.microcode, expected: 115 })
  })

  it('exits 2 on invalid input', async () => {
    write('bad-policy.yaml', readFileSync(NITRO_POLICY, 'utf8').replace('claims.details.kind == "enclave"', 'claims.debug > 3'))
    const p = await run([path('bad-policy.yaml'), path(`${prod.file}.json`)])
    expect(p.rc).toBe(2)
    expect(p.err).toMatch(/^ERR_POLICY_INVALID: .*bad-policy\.yaml:\d+:\d+: condition "kind-enclave": CEL type error/)
    write('junk.json', { hello: 1 })
    expect((await run([NITRO_POLICY, path('junk.json')])).rc).toBe(2)
    // a tampered document does not verify
    const tampered = Buffer.from(readVector('nitro', prod.file))
    tampered[tampered.length - 5]! ^= 1
    write('tampered.json', { tee: 'nitro', evidence: { document: tampered.toString('base64') }, at: prod.timestamp_iso })
    const t = await run([NITRO_POLICY, path('tampered.json'), '--json'])
    expect(t.rc).toBe(2)
    expect(JSON.parse(t.out)).toMatchObject({ allow: false, error: { code: 'ERR_SIGNATURE_INVALID' } })
    expect((await run([NITRO_POLICY])).rc).toBe(2)
    expect((await run([NITRO_POLICY, path('junk.json'), '--bogus'])).rc).toBe(2)
    expect((await run([NITRO_POLICY, path(`${prod.file}.json`), '--at', 'yesterday'])).rc).toBe(2)
  })
})
