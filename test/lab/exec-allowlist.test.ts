// Lab scenarios 2 and 3, two boots (docs/allowlist-state.md). Boot 1 (kw.agent=enforce): the
// initramfs /init starts the agent before any workload; it loads the exec allowlist into the
// guest kernel (BPF LSM + IMA), extends LOAD and SEPARATOR into PCR 15 and serves signed
// statements. keyward-client in the guest attests through the virtio-serial relay against
// `keyward serve`, asking the agent for a fresh statement each time; root in the guest then
// forges its own agent. The kernel side (issue 20 items 2, 4, 5) in the same boot: code run
// without an exec of an unlisted file is refused, denials are counted per cgroup (the statement
// carries the client's cgroup, which the policy judges), a root BPF program cannot reach the
// counters, tampered pins are noticed. Boot 2 (kw.agent=none, scenario no-agent): no agent at boot
// (/init extends the separator alone); scenario 1 (measured-boot.ts) runs first, then the bypass
// probes run unhindered (the control), root forges. Scenario 3: `keyward-client run` starts its
// child with the secret. Two boots for the three scenarios: boots of qemu TCG are the lab's cost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fromHex, toHex } from '../../src/util/bytes.js'
import { judgeAllowlistState } from '../../src/policy/allowlist-state.js'
import { allowlistDigest, decodeRecord, decodeStatement, type AllowlistMode } from '../../src/protocol/allowlist-state.js'
import { parseAkPublic, parseAttest, parsePcrsFile, parseSignature, verifyQuote } from '../../src/verifiers/tpm/index.js'
import { checkQuoteWithTpm2Tools, runLab, type LabRun } from './lab.js'
import { buildGuest, startBroker, type LabBroker } from './broker.js'
import { measuredBootTests, prepareMeasuredBoot } from './measured-boot.js'

const nonce = randomBytes(32)
let lab: LabRun
let bare: LabRun

interface AgentStatus {
  mode: AllowlistMode
  entries: number
  allowlistDigest: string
  progTag: string
  denials: number
  loadTime: number
  progId: number
  /** Denials per cgroup v2 id (decimal string keys), and those the kernel could not attribute. */
  denialsByCgroup: Record<string, number>
  cgroupOverflow: number
}
interface LoadOut { mode: AllowlistMode; entries: number; loadRecord: string; separator: string; socket: string }

const digestsOf = (sha256sumText: string): string[] => sha256sumText.trim().split('\n').map((l) => l.slice(0, 64))

const brokers: LabBroker[] = []
let bareBroker: LabBroker
/** The audited attestation decisions of scenario 1's half of boot 2. */
let mbAudited: Audited[] = []
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
    # The client's own cgroup (issue 20 item 5): another user's refused exec does not fail it.
    - name: allowlist-no-denials
      expr: allowlist.cgroupDenials == 0
  grants:
    secrets: [lab-secret]
`

interface Failure { condition: string; actual?: unknown; message: string }
interface AttestOut { decision: string; code?: string; policy?: string; failures?: Failure[] }
interface Audited { decision: string; code?: string; failures: Failure[] }
/** Attestation decisions in the broker's audit, in order: the client gets a summary only
 * (denialDetail: summary), the audit names the failed conditions and their values. */
async function audited(b: LabBroker): Promise<Audited[]> {
  const rows = (await b.admin('audit', 'tail', '-n', '100')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; decision: string; detail: unknown })
  return rows.filter((r) => r.type === 'attestation').map((r) => {
    const d = (typeof r.detail === 'string' ? JSON.parse(r.detail) : r.detail) as { code?: string; failures?: Failure[] }
    return { decision: r.decision, code: d?.code, failures: d?.failures ?? [] }
  })
}
const audit = new Map<LabRun, Audited[]>()
/** The audited decision of a client step (run/attest steps in $OUT/steps.txt, in order). */
function decided(l: LabRun, step: string): Audited {
  const steps = l.text('steps.txt').trim().split('\n').map((x) => x.split(' ')[0]).filter((n) => n !== 'register')
  const rows = audit.get(l)!
  expect(rows.length).toBe(steps.length)
  return rows[steps.indexOf(step)]!
}
const failed = (l: LabRun, step: string): Array<[string, unknown]> => decided(l, step).failures.map((f) => [f.condition, f.actual])

async function broker(): Promise<{ b: LabBroker; enrolToken: string }> {
  const b = await startBroker()
  brokers.push(b)
  writeFileSync(join(b.dir, 'policy.yaml'), POLICY)
  await b.admin('policy', 'apply', join(b.dir, 'policy.yaml'))
  await b.admin('secret', 'put', 'lab-secret', '--text', SECRET)
  await b.admin('reference', 'add', '--set', 'approved-allowlists', '--tee', 'tpm', '--value', approved, '--source', 'lab: host copies of the guest binaries')
  // The host's admin issues a single-use enrolment token for the name (kw.enrol_token).
  const enrolToken = (JSON.parse(await b.admin('enrol', 'token', '--workload', 'lab-exec-allowlist')) as { token: string }).token
  return { b, enrolToken }
}

beforeAll(async () => {
  const guest = await buildGuest()
  // The approved list, as an admin would make it: every ELF file build.sh put in the guest
  // (executables, ld.so, shared libraries), hashed on the host as it copied them.
  approved = toHex(allowlistDigest(digestsOf(readFileSync(join(guest, 'allowlist.sha256'), 'utf8'))))
  // One after the other: the first builds the cached swtpm template both use.
  const b1 = await broker()
  const b2 = await broker()
  bareBroker = b2.b
  const mbArgs = await prepareMeasuredBoot(b2.b)
  // The two boots at once: each VM is one TCG vCPU (-smp 1), so on two cores they take about
  // the wall time of one; each has its own TPM copy, relay, broker and output directory.
  ;[lab, bare] = await Promise.all([
    runLab('exec-allowlist', { agent: 'enforce', nonce: nonce.toString('hex'), enrol_token: b1.enrolToken, broker_port: String(b1.b.port) }, { relay: b1.b.url, guest, timeoutS: 900 }),
    runLab('no-agent', { agent: 'none', ...mbArgs, enrol_token: b2.enrolToken, broker_port: String(b2.b.port) }, { relay: b2.b.url, guest, timeoutS: 900 }),
  ])
  audit.set(lab, await audited(b1.b))
  // Scenario 1 ran first in boot 2: its attestation decisions (one per attest step in mb-steps.txt) come first.
  const mbAttests = bare.text('mb-steps.txt').trim().split('\n').filter((l) => l.startsWith('attest ')).length
  const rows2 = await audited(b2.b)
  mbAudited = rows2.slice(0, mbAttests)
  audit.set(bare, rows2.slice(mbAttests))
}, 2_700_000) // two boots, slow under TCG on a loaded host (boot 1: the agent's allowlist of every ELF file, the bypass probes, 9 client steps; boot 2: scenario 1, then the control)

afterAll(async () => {
  await Promise.all(brokers.map((b) => b.stop()))
})

const out = (l: LabRun, step: string): AttestOut => JSON.parse(l.text(`${step}.out`)) as AttestOut

measuredBootTests(() => ({ lab: bare, broker: bareBroker }))

describe('lab: boot 2 runs scenario 1, then the control', () => {
  it('scenario 1 attested once, admitted, before any step of the control', () => {
    expect(bare.text('mb-rc').trim()).toBe('0')
    expect(mbAudited.map((r) => r.decision)).toEqual(['allow'])
  })
})

describe('lab: the agent started by the initramfs enforces the allowlist in the guest kernel', () => {
  it('enforce mode: exec of an unlisted binary fails with EPERM; listed binaries run', () => {
    expect(lab.text('enforce-node.txt').trim()).toBe('EPERM') // spawnSync error code: errno from execve
    expect(lab.text('enforce-sh.rc').trim()).toBe('126')
    expect(lab.text('enforce-sh.err')).toContain('Operation not permitted')
    expect(lab.text('enforce-listed.rc').trim()).toBe('0')
    expect(lab.json<AgentStatus>('status-start.json').denials).toBe(0)
    expect(lab.json<AgentStatus>('status-enforce.json')).toMatchObject({ mode: 'enforce', entries: new Set(digestsOf(lab.text('allowlist.txt'))).size, denials: 2 })
  })

  it("root in the guest cannot open the agent's memory (the key), while other processes' open", () => {
    for (const f of ['mem', 'maps']) {
      expect(lab.text(`agent-${f}.rc`).trim(), f).not.toBe('0')
      expect(lab.text(`agent-${f}.err`), f).toMatch(/can't open|Permission denied|not permitted/)
      expect(lab.text(`other-${f}.rc`).trim(), f).toBe('0')
    }
  })

  it("the load record carries the kernel's program and the declared allowlist; the separator follows", () => {
    const load = lab.json<LoadOut>('load.json')
    const rec = decodeRecord(fromHex(load.loadRecord)!)
    const s = lab.json<AgentStatus>('status-start.json')
    expect(rec).toMatchObject({ kind: 'load', mode: 'enforce', loadTime: BigInt(s.loadTime) })
    expect(toHex((rec as { allowlistDigest: Uint8Array }).allowlistDigest)).toBe(toHex(allowlistDigest(digestsOf(lab.text('allowlist.txt')))))
    expect(toHex((rec as { progTag: Uint8Array }).progTag)).toBe(s.progTag)
    expect(decodeRecord(fromHex(load.separator)!)).toEqual({ kind: 'separator' })
  })

  it('PCR 15 from a verified quote replays the two boot records; the statement verifies under the load key', async () => {
    const q = verifyQuote(
      { ak: parseAkPublic(lab.bytes('ak.pub')), attest: parseAttest(lab.bytes('quote.msg')), signature: parseSignature(lab.bytes('quote.sig')), pcrs: parsePcrsFile(lab.bytes('quote.pcrs')) },
      { value: nonce, code: 'ERR_NONCE_MISMATCH' },
    )
    expect(await checkQuoteWithTpm2Tools(lab, nonce.toString('hex'))).toBe(true)
    const st = lab.json<{ records: string[]; statement: string }>('statement.json')
    const facts = judgeAllowlistState(
      { records: st.records.map((r) => fromHex(r)!), statement: fromHex(st.statement)! },
      q.pcrs.sha256!.get(15)!,
      { nonce, jkt: nonce },
    )
    // host-wide 2; the statement was asked for from the root cgroup, where both were refused
    expect(facts).toMatchObject({ present: true, replayed: true, mode: 'enforce', denials: 2n, cgroupDenials: 2n, allowlistDigest: approved })
  })
})

describe('lab: the broker on the exec allowlist (the guest attests through the relay)', () => {
  it('enforce mode, approved allowlist, no denials: admitted and the secret released (scenario 3)', () => {
    expect(lab.text('register.rc').trim()).toBe('0')
    expect(lab.text('run-approved.rc').trim()).toBe('0')
    const err = lab.text('run-approved.err')
    expect(err).toContain('attested: policy lab-exec-allowlist')
    expect(err).toContain('released secret lab-secret')
    expect(err).not.toContain(SECRET)
    expect(lab.text('child-env.txt')).toBe(SECRET)
    expect(lab.text('child-file.txt')).toBe(SECRET)
    expect(lab.text('child-file-mode.txt').trim()).toBe('600')
  })

  it('the refused execs reach the very next attestation, with no manual measurement step', () => {
    const o = out(lab, 'attest-denials')
    expect(lab.text('attest-denials.rc').trim()).toBe('1')
    expect(o.code).toBe('ERR_POLICY_DENIED')
    expect(failed(lab, 'attest-denials')).toEqual([['allowlist-no-denials', 2]])
  })

  it("a client in a clean cgroup is admitted while other cgroups' refusals raise the host-wide count; one in the refused cgroup is not", () => {
    const kwa = lab.text('cgroup-a.id').trim()
    const kwb = lab.text('cgroup-b.id').trim()
    const s = lab.json<AgentStatus>('status-bypass.json')
    expect(s.denials).toBe(9) // 2 in the root cgroup, 7 bypass probes in kwa
    expect(s.denialsByCgroup[kwa]).toBe(7)
    expect(s.denialsByCgroup[kwb]).toBeUndefined()
    expect(lab.text('attest-cgroup-a.rc').trim()).toBe('1')
    expect(out(lab, 'attest-cgroup-a').code).toBe('ERR_POLICY_DENIED')
    expect(failed(lab, 'attest-cgroup-a')).toEqual([['allowlist-no-denials', 7]])
    expect(lab.text('attest-cgroup-b.rc').trim()).toBe('0')
    expect(out(lab, 'attest-cgroup-b').decision).toBe('allow')
    expect(decided(lab, 'attest-cgroup-b').decision).toBe('allow')
  })

  it('root in the guest starts its own agent (enforce, approved, 0 denials): denied', () => {
    expect(lab.json<LoadOut>('forged-load.json')).toMatchObject({ mode: 'enforce', entries: new Set(digestsOf(lab.text('allowlist.txt'))).size })
    // Its records after the real separator: untrusted whatever they say.
    expect(lab.text('attest-forged.rc').trim()).toBe('1')
    expect(out(lab, 'attest-forged').code).toBe('ERR_ALLOWLIST_UNTRUSTED')
    // Leaving the real records out: the replay against the quoted PCR 15 fails.
    expect(out(lab, 'attest-forged-own').code).toBe('ERR_ALLOWLIST_REPLAY')
  })

  it('an extend of PCR 15 nobody logged is denied (ERR_ALLOWLIST_REPLAY)', () => {
    expect(lab.text('attest-unlogged.rc').trim()).toBe('1')
    expect(out(lab, 'attest-unlogged').code).toBe('ERR_ALLOWLIST_REPLAY')
  })
})

describe('lab: no agent at boot, root in the guest forges', () => {
  it('the unlisted binary runs (nothing enforces)', () => {
    expect(bare.text('noagent-node.txt').trim()).toBe('status=0')
  })

  it('presenting no state fails the allowlist conditions', () => {
    const o = out(bare, 'attest-nothing')
    expect(o.code).toBe('ERR_POLICY_DENIED')
    expect(failed(bare, 'attest-nothing').map(([c]) => c)).toContain('allowlist-replayed')
  })

  it('/init closed the pre-workload phase with a separator alone', () => {
    expect(decodeRecord(fromHex(bare.json<{ separator: string }>('separator.json').separator)!)).toEqual({ kind: 'separator' })
  })

  it('its own signed statement without boot records does not replay (PCR 15 holds the separator)', () => {
    expect(bare.text('attest-norecords.rc').trim()).toBe('1')
    expect(out(bare, 'attest-norecords').code).toBe('ERR_ALLOWLIST_REPLAY')
  })

  it('its own agent (enforce, approved, 0 denials) started by the workload is denied', () => {
    expect(bare.json<LoadOut>('forged-load.json')).toMatchObject({ mode: 'enforce', entries: lab.json<LoadOut>('load.json').entries })
    // Presented after /init's separator: untrusted.
    expect(bare.text('attest-selfload.rc').trim()).toBe('1')
    expect(out(bare, 'attest-selfload').code).toBe('ERR_ALLOWLIST_UNTRUSTED')
    // Its own records only: they do not replay to PCR 15.
    expect(out(bare, 'attest-selfload-own').code).toBe('ERR_ALLOWLIST_REPLAY')
  })
})

// Issue 20 items 2, 4, 5: "before" results come from the boot without an agent (the control),
// "enforce" ones from the agent's boot.
const lines = (l: LabRun, name: string): Map<string, string> =>
  new Map(l.text(name).trim().split('\n').map((x) => [x.slice(0, x.indexOf(' ')), x.slice(x.indexOf(' ') + 1)]))

describe('lab: code run without an exec of an unlisted file (issue 20 item 4)', () => {
  it('LD_PRELOAD of an unlisted library: runs without the agent, refused under enforce', () => {
    expect(bare.has('before-preload-ran')).toBe(true)
    expect(lab.has('enforce-preload-ran')).toBe(false)
    // ld.so cannot map it and goes on without it; the program itself is listed
    expect(lab.text('enforce-preload.out')).toContain('failed to map segment from shared object')
    expect(lab.text('enforce-preload.out')).toContain('hello')
  })

  it('dlopen of an unlisted library (C): loads without the agent, refused under enforce', () => {
    expect(bare.has('before-dlopen-ran')).toBe(true)
    expect(lines(bare, 'before-dlopen.out').get('dlopen')).toBe('ok')
    expect(lab.has('enforce-dlopen-ran')).toBe(false)
    expect(lines(lab, 'enforce-dlopen.out').get('dlopen')).toContain('failed to map segment from shared object')
  })

  it("Node's process.dlopen of an unlisted library: its constructor runs without the agent, not under enforce", () => {
    expect(bare.has('before-nodedl-ran')).toBe(true)
    expect(bare.text('before-nodedl.out')).toContain('did not self-register')
    expect(lab.has('enforce-nodedl-ran')).toBe(false)
    expect(lab.text('enforce-nodedl.out')).toContain('failed to map segment from shared object')
  })

  it('memfd + PROT_EXEC (with or without a writer) and mprotect adding PROT_EXEC to a file mapping are refused; anonymous PROT_EXEC is not', () => {
    expect([...lines(bare, 'before-mmap.out').values()]).toEqual(['ok', 'ok', 'ok', 'ok'])
    expect(Object.fromEntries(lines(lab, 'enforce-mmap.out'))).toEqual({
      'memfd-exec': 'EPERM', 'memfd-readonly-exec': 'EPERM', 'mprotect-file-exec': 'EPERM',
      'anon-exec': 'ok', // JITs (V8) need it: residual, docs/allowlist-state.md
    })
  })

  it('exec of listed content from a 9p mount is refused (IMA cannot vouch for it); the same bytes on tmpfs run', () => {
    expect(bare.text('before-9p.rc').trim()).toBe('0') // mounted, and runs without the agent
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
    expect(s.denialsByCgroup['1']).toBe(2) // the two refused execs in the root cgroup
    // the bypass probes: LD_PRELOAD, dlopen, process.dlopen, 2 memfd, mprotect, 9p exec
    expect(s.denialsByCgroup[kwa]).toBe(7)
    expect(Object.values(s.denialsByCgroup).reduce((a, b) => a + b, 0)).toBe(s.denials)
    expect(Object.keys(s.denialsByCgroup).sort()).toEqual(['1', kwa].sort())
  })
})

describe("lab: the allowlist's maps against other BPF programs, and tampered pins (issue 20 item 2)", () => {
  it('a root BPF program (socket filter via test_run) zeroes a frozen map of its own, but cannot get at the denial counter', () => {
    const o = lines(lab, 'bpf-attack.out')
    expect(o.get('control-frozen-map')).toBe('ok 7->0') // the attack works on this kernel
    expect(o.get('pin-rw')).toBe('EPERM')
    expect(o.get('pin-ro')).toBe('EPERM')
    expect(o.get('by-id-refused')).toBe('4') // the four maps of the allowlist
    expect(o.get('by-id-attacked')).toBe('0')
    const before = lab.json<AgentStatus>('status-bypass.json')
    const after = lab.json<AgentStatus>('status-after-attack.json')
    expect(before.denials).toBeGreaterThan(0)
    expect(after.denials).toBe(before.denials)
    expect(after.denialsByCgroup).toEqual(before.denialsByCgroup)
  })

  it('status refuses when a link pin was removed or a map pin replaced; the agent, reading through its own descriptors, still states the true count and the programs still enforce', () => {
    expect(lab.text('tamper-link.rc').trim()).toBe('1')
    expect(lab.text('tamper-link.err')).toContain('program prog-mmap is not attached')
    expect(lab.text('pin-fake.out').trim()).toBe('pin-fake ok')
    expect(lab.text('tamper-map.rc').trim()).toBe('1')
    expect(lab.text('tamper-map.err')).toContain('pinned maps are not the ones loaded')
    const st = lab.json<{ statement: string }>('statement-after-tamper.json')
    const last = lab.json<AgentStatus>('status-after-attack.json')
    // asked for from the root cgroup (id 1): the requester's cgroup slot comes from its peer credentials
    expect(decodeStatement(fromHex(st.statement)!).body).toMatchObject({ denials: BigInt(last.denials), cgroupId: 1n, cgroupDenials: 2n })
    expect(lab.text('after-tamper-sh.rc').trim()).toBe('126')
  })
})
