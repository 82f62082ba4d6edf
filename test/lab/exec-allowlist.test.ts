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
  mode: AllowlistMode
  entries: number
  allowlistDigest: string
  progTag: string
  denials: number
  loadTime: number
  record: string
  stateDigest: string
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
  // The approved list, as an admin would make it: the binaries the guest runs are copies of
  // these host files (build.sh), so their SHA-256s are the guest's allowlist entries.
  const cache = process.env.KEYWARD_LAB_CACHE ?? join(REPO_ROOT, '.lab-cache')
  const bins = ['/bin/busybox', process.execPath, '/usr/bin/tpm2', join(cache, 'ebpf/keyward-allowlist')]
  approved = toHex(allowlistDigest(bins.map((f) => sha256(readFileSync(f)))))
  broker = await startBroker()
  writeFileSync(join(broker.dir, 'policy.yaml'), POLICY)
  await broker.admin('policy', 'apply', join(broker.dir, 'policy.yaml'))
  await broker.admin('secret', 'put', 'lab-secret', '--text', SECRET)
  await broker.admin('reference', 'add', '--set', 'approved-allowlists', '--tee', 'tpm', '--value', approved, '--source', 'lab: host copies of the guest binaries')
  const enrolToken = (JSON.parse(await broker.admin('enrol', 'token', '--workload', 'lab-exec-allowlist')) as { token: string }).token
  lab = await runLab('exec-allowlist', { nonce: nonce.toString('hex'), enrol_token: enrolToken, broker_port: String(broker.port) }, { relay: broker.url, guest })
})

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
    expect(s.entries).toBe(4)
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
    expect(recs.map((r) => [r.mode, r.denials])).toEqual([['enforce', 0n], ['enforce', 2n], ['audit', 0n], ['audit', 2n]])
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
    for (const drop of [0, 1, 3]) {
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
    expect(recs.map((r) => [r.mode, r.denials])).toEqual([['enforce', 0n], ['enforce', 2n], ['audit', 0n], ['audit', 2n], ['enforce', 0n]])
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
