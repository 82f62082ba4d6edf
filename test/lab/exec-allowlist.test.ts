// Lab scenarios 2 and 3, one boot. Scenario 2: the eBPF exec allowlist enforced by the guest
// kernel (BPF LSM + IMA), its state measured into PCR 15 and logged by the agent, the host's
// replay of that log against a verified quote (src/policy/allowlist-state.ts, src/verifiers/tpm),
// and the broker's decisions on it: keyward-client in the guest attests after each state change
// (through the virtio-serial relay) against `keyward serve` with a policy that requires the
// approved allowlist, enforce mode and zero denials. Scenario 3: `keyward-client run` starts its
// child with the secret in env and file; with an unapproved allowlist the child never starts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { isKeywardError } from '../../src/errors.js'
import { fromHex, sha256, toHex } from '../../src/util/bytes.js'
import {
  allowlistDigest, decodeAllowlistState, encodeAllowlistState, parseAllowlistLog, replayAllowlistLog, stateDigest,
  type AllowlistMode,
} from '../../src/policy/allowlist-state.js'
import { parseAkPublic, parseAttest, parsePcrsFile, parseSignature, verifyQuote } from '../../src/verifiers/tpm/index.js'
import { REPO_ROOT } from '../helpers/vectors.js'
import { checkQuoteWithTpm2Tools, runLab, type LabRun } from './lab.js'
import { buildGuest, startBroker, type LabBroker } from './broker.js'

const run = promisify(execFile)
const nonce = randomBytes(32)
let lab: LabRun

interface AgentStatus {
  mode: AllowlistMode | 'unloaded'
  entries: number
  allowlistDigest: string
  progTag: string
  denials: number
  loadTime: number
  record: string
  stateDigest: string
  /** Denials per cgroup v2 id (decimal string keys), and those the kernel could not attribute. */
  denialsByCgroup: Record<string, number>
  cgroupOverflow: number
}

const digestsOf = (sha256sumText: string): string[] =>
  sha256sumText.trim().split('\n').map((l) => l.slice(0, 64))

let broker: LabBroker
let approved: string
const SECRET = 'testOnly-lab-allowlist-secret-7c1e'

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: lab-exec-allowlist
spec:
  tees: [tpm]
  conditions:
    - name: allowlist-replayed
      expr: allowlist.present && allowlist.replayed
    - name: allowlist-enforcing
      expr: allowlist.mode == "enforce"
    - name: allowlist-approved
      expr: allowlist.allowlistDigest in refs["approved-allowlists"]
    - name: allowlist-no-denials
      expr: allowlist.denials == 0
  grants:
    secrets: [lab-secret]
`

interface Failure { condition: string; actual?: unknown; message: string }
interface AttestOut { decision: string; code?: string; policy?: string; failures?: Failure[] }

beforeAll(async () => {
  const guest = await buildGuest()
  // The approved list, as an admin would make it: every ELF file build.sh put in the guest
  // (executables, ld.so, shared libraries), hashed on the host as it copied them.
  approved = toHex(allowlistDigest(digestsOf(readFileSync(join(guest, 'allowlist.sha256'), 'utf8'))))
  broker = await startBroker()
  writeFileSync(join(broker.dir, 'policy.yaml'), POLICY)
  await broker.admin('policy', 'apply', join(broker.dir, 'policy.yaml'))
  await broker.admin('secret', 'put', 'lab-secret', '--text', SECRET)
  await broker.admin('reference', 'add', '--set', 'approved-allowlists', '--tee', 'tpm', '--value', approved, '--source', 'lab: host copies of the guest binaries')
  const enrolToken = (JSON.parse(await broker.admin('enrol', 'token', '--workload', 'lab-exec-allowlist')) as { token: string }).token
  // The scenario is long (allowlist, broker halves, bypass probes, tamper checks): on a loaded
  // 2-core host it took 250-300 s of guest time.
  lab = await runLab('exec-allowlist', { nonce: nonce.toString('hex'), enrol_token: enrolToken, broker_port: String(broker.port) }, { relay: broker.url, guest, timeoutS: 600 })
}, 900_000)

afterAll(async () => {
  await broker?.stop()
})

describe('lab: exec allowlist in the guest kernel', () => {
  it('before load, the unlisted binary runs', () => {
    expect(lab.text('before-node.txt').trim()).toBe('status=0')
    expect(lab.text('before-sh.rc').trim()).toBe('0')
  })

  it('enforce mode: exec of an unlisted binary fails with EPERM; listed binaries run', () => {
    expect(lab.text('enforce-node.txt').trim()).toBe('EPERM') // spawnSync error code: errno from execve
    expect(lab.text('enforce-sh.rc').trim()).toBe('126')
    expect(lab.text('enforce-sh.err')).toContain('Operation not permitted')
    expect(lab.text('enforce-listed.rc').trim()).toBe('0')
  })

  it('enforce mode counts both refusals; update-denials measures once, then reports unchanged', () => {
    const s = lab.json<AgentStatus>('status-enforce.json')
    expect(s.mode).toBe('enforce')
    expect(s.entries).toBe(new Set(digestsOf(lab.text('allowlist.txt'))).size)
    expect(s.denials).toBe(2)
    expect(lab.text('update-enforce-1.txt').trim()).toBe('measured seq=1 denials=2')
    expect(lab.text('update-enforce-2.txt').trim()).toBe('unchanged seq=1 denials=2')
  })

  it('audit mode: the unlisted binary runs and is counted', () => {
    expect(lab.text('audit-node.txt').trim()).toBe('status=0')
    expect(lab.text('audit-sh.rc').trim()).toBe('0')
    const s = lab.json<AgentStatus>('status-audit.json')
    expect(s.mode).toBe('audit')
    expect(s.denials).toBe(2)
    expect(s.loadTime).toBeGreaterThan(lab.json<AgentStatus>('load-enforce.json').loadTime)
  })

  it("the kernel map's digest equals allowlist_digest of the declared file (and not of one with the unlisted binary)", () => {
    const declared = digestsOf(lab.text('allowlist.txt'))
    const s = lab.json<AgentStatus>('status-enforce.json')
    expect(s.allowlistDigest).toBe(toHex(allowlistDigest(declared)))
    const withUnlisted = [...declared, ...digestsOf(lab.text('unlisted.txt'))]
    expect(s.allowlistDigest).not.toBe(toHex(allowlistDigest(withUnlisted)))
  })

  it('the TypeScript encoder reproduces every record and digest the agent printed (C and TS agree)', () => {
    for (const f of ['load-enforce.json', 'status-enforce.json', 'load-audit.json', 'status-audit.json']) {
      const s = lab.json<AgentStatus>(f)
      const rec = encodeAllowlistState({
        allowlistDigest: fromHex(s.allowlistDigest)!, mode: s.mode, progTag: fromHex(s.progTag)!,
        denials: BigInt(s.denials), loadTime: BigInt(s.loadTime),
      })
      expect(toHex(rec), f).toBe(s.record)
      expect(toHex(stateDigest(rec)), f).toBe(s.stateDigest)
    }
    const [recLine, digLine] = lab.text('print-state-audit.txt').trim().split('\n')
    expect(recLine).toBe(`record ${lab.json<AgentStatus>('status-audit.json').record}`)
    expect(digLine).toBe(`digest ${toHex(sha256(fromHex(recLine!.slice(7))!))}`)
  })

  it("the host build of the agent's offline encoder gives the guest's live record", async () => {
    const agent = join(REPO_ROOT, '.lab-cache/ebpf/keyward-allowlist')
    expect(existsSync(agent)).toBe(true)
    const s = lab.json<AgentStatus>('status-audit.json')
    const dir = mkdtempSync(join(tmpdir(), 'kw-allow-'))
    writeFileSync(join(dir, 'allowlist.txt'), lab.text('allowlist.txt'))
    const { stdout } = await run(agent, ['encode', '--allowlist', join(dir, 'allowlist.txt'), '--mode', s.mode,
      '--tag', s.progTag, '--denials', String(s.denials), '--load-time', String(s.loadTime), '--print-state'])
    expect(stdout).toBe(`record ${s.record}\ndigest ${s.stateDigest}\n`)
  })

  it('the log has one record per measured change, in order', () => {
    const recs = parseAllowlistLog(lab.text('allowlist.log')).map(decodeAllowlistState)
    // unload measured the live state (unchanged since update-denials) and then mode 0
    expect(recs.map((r) => [r.mode, r.denials])).toEqual([['enforce', 0n], ['enforce', 2n], ['unloaded', 2n], ['audit', 0n], ['audit', 2n]])
    expect(new Set(recs.map((r) => toHex(r.progTag))).size).toBe(1) // same program, loaded twice
  })

  it('PCR 15 from a verified quote replays from the log; an extend missing from the log is denied', async () => {
    const q = verifyQuote(
      { ak: parseAkPublic(lab.bytes('ak.pub')), attest: parseAttest(lab.bytes('quote.msg')), signature: parseSignature(lab.bytes('quote.sig')), pcrs: parsePcrsFile(lab.bytes('quote.pcrs')) },
      { value: nonce, code: 'ERR_NONCE_MISMATCH' },
    )
    expect(await checkQuoteWithTpm2Tools(lab, nonce.toString('hex'))).toBe(true)
    const pcr15 = toHex(q.pcrs.sha256!.get(15)!)
    const records = parseAllowlistLog(lab.text('allowlist.log'))
    const facts = replayAllowlistLog(records, pcr15)
    expect(facts).toMatchObject({ present: true, replayed: true, mode: 'audit', denials: 2n })
    for (const drop of [0, 1, 2, 3]) {
      const partial = records.filter((_, i) => i !== drop)
      let code = ''
      try {
        replayAllowlistLog(partial, pcr15)
      } catch (e) {
        code = isKeywardError(e) ? e.code : 'not a KeywardError'
      }
      expect(code, `record ${drop} dropped`).toBe('ERR_ALLOWLIST_REPLAY')
    }
  })
})

describe('lab: the broker on the exec allowlist (scenario 2, guest attests through the relay)', () => {
  it('the approved reference is the allowlist the guest declared', () => {
    expect(toHex(allowlistDigest(digestsOf(lab.text('allowlist.txt'))))).toBe(approved)
    expect(lab.text('register.rc').trim()).toBe('0')
  })

  it('enforce mode, approved allowlist, no denials: admitted and the secret released', () => {
    expect(lab.text('run-approved.rc').trim()).toBe('0')
    const err = lab.text('run-approved.err')
    expect(err).toContain('attested: policy lab-exec-allowlist')
    expect(err).toContain('released secret lab-secret')
    expect(err).not.toContain(SECRET)
  })

  it('after the refused exec (counted), the next attestation is denied by allowlist-no-denials only', () => {
    const out = JSON.parse(lab.text('attest-denials.out')) as AttestOut
    expect(lab.text('attest-denials.rc').trim()).toBe('1')
    expect(out.code).toBe('ERR_POLICY_DENIED')
    expect(out.failures!.map((f) => [f.condition, f.actual])).toEqual([['allowlist-no-denials', 2]])
  })

  it('audit mode is denied by allowlist-enforcing only', () => {
    const out = JSON.parse(lab.text('attest-audit.out')) as AttestOut
    expect(out.code).toBe('ERR_POLICY_DENIED')
    expect(out.failures!.map((f) => [f.condition, f.actual])).toEqual([['allowlist-enforcing', 'audit']])
  })

  it('a changed allowlist (enforcing, no denials) is denied by allowlist-approved only', async () => {
    const changed = toHex(allowlistDigest(digestsOf(lab.text('allowlist-changed.txt'))))
    expect(lab.json<AgentStatus>('load-changed.json')).toMatchObject({ mode: 'enforce', denials: 0, allowlistDigest: changed })
    expect(lab.text('run-unapproved.err')).toContain(`allowlist.allowlistDigest is "${changed}", not in reference set "approved-allowlists"`)
    // The broker's audit trail names the failing condition of every denial, in order.
    const rows = (await broker.admin('audit', 'tail', '-n', '100')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; decision: string; detail: unknown })
    const decisions = rows.filter((r) => r.type === 'attestation').map((r) => {
      const d = (typeof r.detail === 'string' ? JSON.parse(r.detail) : r.detail) as { code?: string; failures?: Failure[] }
      return r.decision === 'allow' ? 'allow' : `${d.code}:${(d.failures ?? []).map((f) => f.condition).join(',')}`
    })
    expect(decisions).toEqual([
      'allow',
      'ERR_POLICY_DENIED:allowlist-no-denials',
      'ERR_POLICY_DENIED:allowlist-enforcing',
      'ERR_POLICY_DENIED:allowlist-approved',
      'ERR_ALLOWLIST_REPLAY:',
    ])
  })

  it('an extend of PCR 15 missing from the log is denied (ERR_ALLOWLIST_REPLAY)', () => {
    const out = JSON.parse(lab.text('attest-unlogged.out')) as AttestOut
    expect(lab.text('attest-unlogged.rc').trim()).toBe('1')
    expect(out.code).toBe('ERR_ALLOWLIST_REPLAY')
    // The log itself is intact: the 5 measured states, the last the changed allowlist.
    const recs = parseAllowlistLog(lab.text('allowlist-final.log')).map(decodeAllowlistState)
    expect(recs.map((r) => [r.mode, r.denials])).toEqual([
      ['enforce', 0n], ['enforce', 2n], ['unloaded', 2n], ['audit', 0n], ['audit', 2n], ['unloaded', 2n], ['enforce', 0n],
    ])
  })
})

describe('lab: keyward-client run in the guest (scenario 3)', () => {
  it('starts its child with the secret in its environment and in a 0600 file', () => {
    expect(lab.text('child-env.txt')).toBe(SECRET)
    expect(lab.text('child-file.txt')).toBe(SECRET)
    expect(lab.text('child-file-mode.txt').trim()).toBe('600')
  })

  it('with an unapproved allowlist the child never starts and the client exits non-zero (ERR_POLICY_DENIED)', () => {
    expect(lab.text('run-unapproved.rc').trim()).toBe('1')
    expect(lab.text('run-unapproved.err')).toContain('not starting the command: ERR_POLICY_DENIED')
    expect(lab.has('unapproved-child-started')).toBe(false)
  })
})

// Issue 20 items 2, 4, 5: the same boot, after the broker halves (scenario's last phase).
const lines = (name: string): Map<string, string> =>
  new Map(lab.text(name).trim().split('\n').map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]))

describe('lab: code run without an exec of an unlisted file (issue 20 item 4)', () => {
  it('LD_PRELOAD of an unlisted library: runs without the agent, refused under enforce', () => {
    expect(lab.has('before-preload-ran')).toBe(true)
    expect(lab.has('enforce-preload-ran')).toBe(false)
    // ld.so cannot map it and goes on without it; the program itself is listed
    expect(lab.text('enforce-preload.out')).toContain('failed to map segment from shared object')
    expect(lab.text('enforce-preload.out')).toContain('hello')
  })

  it('dlopen of an unlisted library (C): loads without the agent, refused under enforce', () => {
    expect(lab.has('before-dlopen-ran')).toBe(true)
    expect(lines('before-dlopen.out').get('dlopen')).toBe('ok')
    expect(lab.has('enforce-dlopen-ran')).toBe(false)
    expect(lines('enforce-dlopen.out').get('dlopen')).toContain('failed to map segment from shared object')
  })

  it("Node's process.dlopen of an unlisted library: its constructor runs without the agent, not under enforce", () => {
    expect(lab.has('before-nodedl-ran')).toBe(true)
    expect(lab.text('before-nodedl.out')).toContain('did not self-register')
    expect(lab.has('enforce-nodedl-ran')).toBe(false)
    expect(lab.text('enforce-nodedl.out')).toContain('failed to map segment from shared object')
  })

  it('memfd + PROT_EXEC (with or without a writer) and mprotect adding PROT_EXEC to a file mapping are refused; anonymous PROT_EXEC is not', () => {
    const before = lines('before-mmap.out')
    expect([...before.values()]).toEqual(['ok', 'ok', 'ok', 'ok'])
    expect(Object.fromEntries(lines('enforce-mmap.out'))).toEqual({
      'memfd-exec': 'EPERM', 'memfd-readonly-exec': 'EPERM', 'mprotect-file-exec': 'EPERM',
      'anon-exec': 'ok', // JITs (V8) need it: residual, docs/allowlist-state.md
    })
  })

  it('exec of listed content from a 9p mount is refused (IMA cannot vouch for it); the same bytes on tmpfs run', () => {
    expect(lab.text('before-9p.rc').trim()).toBe('0') // mounted, and runs without the agent
    expect(lab.text('enforce-9p.rc').trim()).toBe('126')
    expect(lab.text('enforce-9p.err')).toContain('Operation not permitted')
    expect(lab.text('enforce-tmpfs.rc').trim()).toBe('0')
  })

  it('an interpreter given a file still runs it under enforce (residual risk: keep interpreters off the allowlist)', () => {
    expect(lab.text('enforce-sh-file.out').trim()).toBe('interpreted')
  })
})

describe('lab: denials per cgroup (issue 20 item 5)', () => {
  it("counts each cgroup's denials apart and keeps the host-wide total", () => {
    const s = lab.json<AgentStatus>('status-bypass.json')
    const kwa = lab.text('cgroup-a.id').trim()
    expect(s.mode).toBe('enforce')
    expect(s.cgroupOverflow).toBe(0)
    expect(s.denialsByCgroup['1']).toBe(1) // the one refused exec in the root cgroup
    // the bypass probes: LD_PRELOAD, dlopen, process.dlopen, 2 memfd, mprotect, 9p exec
    expect(s.denialsByCgroup[kwa]).toBe(7)
    expect(Object.values(s.denialsByCgroup).reduce((a, b) => a + b, 0)).toBe(s.denials)
    expect(Object.keys(s.denialsByCgroup).sort()).toEqual(['1', kwa].sort())
  })
})

describe("lab: the allowlist's maps against other BPF programs, and unload (issue 20 item 2)", () => {
  it('a root BPF program (socket filter via test_run) zeroes a frozen map of its own, but cannot get at the denial counter', () => {
    const out = lines('bpf-attack.out')
    expect(out.get('control-frozen-map')).toBe('ok 7->0') // the attack works on this kernel
    expect(out.get('pin-rw')).toBe('EPERM')
    expect(out.get('pin-ro')).toBe('EPERM')
    expect(out.get('by-id-refused')).toBe('4') // the four maps of the allowlist
    expect(out.get('by-id-attacked')).toBe('0')
    const before = lab.json<AgentStatus>('status-bypass.json')
    const after = lab.json<AgentStatus>('status-after-attack.json')
    expect(before.denials).toBeGreaterThan(0)
    expect(after.denials).toBe(before.denials)
    expect(after.denialsByCgroup).toEqual(before.denialsByCgroup)
  })

  it('the agent refuses to measure when a link was removed or a map pin replaced', () => {
    expect(lab.text('tamper-link.rc').trim()).toBe('1')
    expect(lab.text('tamper-link.err')).toContain('program prog-mmap is not attached')
    expect(lab.text('pin-fake.out').trim()).toBe('pin-fake ok')
    expect(lab.text('tamper-map.rc').trim()).toBe('1')
    expect(lab.text('tamper-map.err')).toContain('pinned maps are not the ones loaded')
  })

  it('unload measures the live state and then an unloaded record before removing anything', () => {
    const last = lab.json<AgentStatus>('status-after-attack.json')
    const recs = parseAllowlistLog(lab.text('allowlist-end.log')).map(decodeAllowlistState)
    expect(recs.slice(-3).map((r) => [r.mode, r.denials])).toEqual([['enforce', 0n], ['enforce', BigInt(last.denials)], ['unloaded', BigInt(last.denials)]])
    expect(toHex(recs.at(-1)!.allowlistDigest)).toBe(last.allowlistDigest)
    expect(lab.text('unload-end.txt')).toMatch(/^measured seq=\d+ denials=\d+\nunloaded\n$/)
  })
})
