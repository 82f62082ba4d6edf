// Lab scenarios 2 and 3, two boots (docs/allowlist-state.md). Boot 1 (kw.agent=enforce): the
// initramfs /init starts the agent before any workload; it loads the exec allowlist into the
// guest kernel (BPF LSM + IMA), extends LOAD and SEPARATOR into PCR 15 and serves signed
// statements. keyward-client in the guest attests through the virtio-serial relay against
// `keyward serve`, asking the agent for a fresh statement each time; root in the guest then
// forges its own agent. Boot 2 (kw.agent=none): no agent at boot (/init extends the separator
// alone), root forges. Scenario 3:
// `keyward-client run` starts its child with the secret.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fromHex, sha256, toHex } from '../../src/util/bytes.js'
import { allowlistDigest, decodeRecord, judgeAllowlistState, type AllowlistMode } from '../../src/policy/allowlist-state.js'
import { parseAkPublic, parseAttest, parsePcrsFile, parseSignature, verifyQuote } from '../../src/verifiers/tpm/index.js'
import { REPO_ROOT } from '../helpers/vectors.js'
import { checkQuoteWithTpm2Tools, runLab, type LabRun } from './lab.js'
import { buildGuest, startBroker, type LabBroker } from './broker.js'

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
}
interface LoadOut { mode: AllowlistMode; entries: number; loadRecord: string; separator: string; socket: string }

const digestsOf = (sha256sumText: string): string[] => sha256sumText.trim().split('\n').map((l) => l.slice(0, 64))

const brokers: LabBroker[] = []
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

async function broker(): Promise<LabBroker> {
  const b = await startBroker()
  brokers.push(b)
  writeFileSync(join(b.dir, 'policy.yaml'), POLICY)
  await b.admin('policy', 'apply', join(b.dir, 'policy.yaml'))
  await b.admin('secret', 'put', 'lab-secret', '--text', SECRET)
  await b.admin('reference', 'add', '--set', 'approved-allowlists', '--tee', 'tpm', '--value', approved, '--source', 'lab: host copies of the guest binaries')
  return b
}

beforeAll(async () => {
  const guest = await buildGuest()
  // The approved list, as an admin would make it: the binaries the guest runs are copies of
  // these host files (build.sh), so their SHA-256s are the guest's allowlist entries.
  const cache = process.env.KEYWARD_LAB_CACHE ?? join(REPO_ROOT, '.lab-cache')
  const bins = ['/bin/busybox', process.execPath, '/usr/bin/tpm2', join(cache, 'ebpf/keyward-allowlist')]
  approved = toHex(allowlistDigest(bins.map((f) => sha256(readFileSync(f)))))
  // One after the other: the first builds the cached swtpm template both use.
  const b1 = await broker()
  const b2 = await broker()
  lab = await runLab('exec-allowlist', { agent: 'enforce', nonce: nonce.toString('hex'), broker_port: String(b1.port) }, { relay: b1.url, guest, timeoutS: 600 })
  bare = await runLab('exec-allowlist', { agent: 'none', broker_port: String(b2.port) }, { relay: b2.url, guest, timeoutS: 600 })
}, 2_400_000) // two boots, slow under TCG on a loaded host

afterAll(async () => {
  await Promise.all(brokers.map((b) => b.stop()))
})

const out = (l: LabRun, step: string): AttestOut => JSON.parse(l.text(`${step}.out`)) as AttestOut

describe('lab: the agent started by the initramfs enforces the allowlist in the guest kernel', () => {
  it('enforce mode: exec of an unlisted binary fails with EPERM; listed binaries run', () => {
    expect(lab.text('enforce-node.txt').trim()).toBe('EPERM') // spawnSync error code: errno from execve
    expect(lab.text('enforce-sh.rc').trim()).toBe('126')
    expect(lab.text('enforce-sh.err')).toContain('Operation not permitted')
    expect(lab.text('enforce-listed.rc').trim()).toBe('0')
    expect(lab.json<AgentStatus>('status-start.json').denials).toBe(0)
    expect(lab.json<AgentStatus>('status-enforce.json')).toMatchObject({ mode: 'enforce', entries: 4, denials: 2 })
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
      toHex(q.pcrs.sha256!.get(15)!),
      { nonce, jkt: nonce },
    )
    expect(facts).toMatchObject({ present: true, replayed: true, mode: 'enforce', denials: 2n, allowlistDigest: approved })
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
    expect(o.failures!.map((f) => [f.condition, f.actual])).toEqual([['allowlist-no-denials', 2]])
  })

  it('root in the guest starts its own agent (enforce, approved, 0 denials): denied', () => {
    expect(lab.json<LoadOut>('forged-load.json')).toMatchObject({ mode: 'enforce', entries: 4 })
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
    expect(o.failures!.map((f) => f.condition)).toContain('allowlist-replayed')
  })

  it('/init closed the pre-workload phase with a separator alone', () => {
    expect(decodeRecord(fromHex(bare.json<{ separator: string }>('separator.json').separator)!)).toEqual({ kind: 'separator' })
  })

  it('its own signed statement without boot records does not replay (PCR 15 holds the separator)', () => {
    expect(bare.text('attest-norecords.rc').trim()).toBe('1')
    expect(out(bare, 'attest-norecords').code).toBe('ERR_ALLOWLIST_REPLAY')
  })

  it('its own agent (enforce, approved, 0 denials) started by the workload is denied', () => {
    expect(bare.json<LoadOut>('forged-load.json')).toMatchObject({ mode: 'enforce', entries: 4 })
    // Presented after /init's separator: untrusted.
    expect(bare.text('attest-selfload.rc').trim()).toBe('1')
    expect(out(bare, 'attest-selfload').code).toBe('ERR_ALLOWLIST_UNTRUSTED')
    // Its own records only: they do not replay to PCR 15.
    expect(out(bare, 'attest-selfload-own').code).toBe('ERR_ALLOWLIST_REPLAY')
  })
})
