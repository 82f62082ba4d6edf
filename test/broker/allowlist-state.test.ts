// The exec-allowlist state through the broker's HTTP API, on swtpm, SQLite and PostgreSQL
// (docs/allowlist-state.md). The agent's boot records (LOAD, SEPARATOR) are extended into the
// allowlist PCR as the agent does before any workload; then the workload (the test) attacks:
// records extended after the separator, a statement without a load record, statements signed by
// another key, made for another nonce, replayed, or describing another program. Each is refused
// with a stable code; an honest statement is admitted with its facts. The allowlist PCR is 16
// here only because swtpm lets the test reset it between cases (production default: 15).
import { issueEnrolmentToken } from '../../src/broker/enrolment.js'
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { startHarness, testOnlyNitroCollector, type Harness } from './harness.js'
import * as A from '../../src/broker/admin-services.js'
import { startSwtpm, tpmTool, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { createClient, type KeywardClient } from '../../enclave-client/src/client.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import type { RuntimeState, StatementRequest } from '../../enclave-client/src/runtime-state.js'
import { allowlistDigest, encodeRecord, type Statement } from '../../src/protocol/allowlist-state.js'
import { sha256, toHex } from '../../src/util/bytes.js'
import { makeAgent, type TestAgent } from '../helpers/allowlist-agent.js'

const PCR = 16
const APPROVED = allowlistDigest([randomBytes(32), randomBytes(32)])
const PROGRAM = { allowlistDigest: APPROVED, mode: 'enforce' as const, progTag: new Uint8Array(randomBytes(8)), loadTime: 4_000_000n }

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: allowlist-tpm
spec:
  tees: [tpm]
  conditions:
    - name: registered
      expr: claims.details.akTrust.workload == "svc-allowlist"
    - name: allowlist-present
      expr: allowlist.present && allowlist.replayed
    - name: allowlist-enforcing
      expr: allowlist.mode == "enforce"
    - name: allowlist-approved
      expr: allowlist.allowlistDigest in refs["allowlist-digests"]
    - name: allowlist-no-denials
      expr: allowlist.denials == 0
  grants:
    secrets: [db-password]
`

/** The fixed messages of ERR_ALLOWLIST_UNTRUSTED, one per reason (src/policy/allowlist-state.ts). */
const WHY = {
  'after-separator': /record 2 was extended after the separator/,
  'no-agent': /no agent measured this boot/,
  'no-load-record': /first allowlist record is not a load record/,
  'second-load': /record 1 is a second load record/,
  'no-separator': /no separator/,
  'statement-signature': /not signed by the agent key/,
  'statement-binding': /another challenge or key/,
  'statement-program': /another program/,
} as const

interface Case {
  /** Records extended into the allowlist PCR, in order. */
  extended: Uint8Array[]
  /** What the workload presents for the challenge it is given (undefined: nothing). */
  present: (req: StatementRequest) => RuntimeState | undefined
}

describe.each(['sqlite', 'postgres'] as const)('exec-allowlist state through /v1/attest on %s', (backend) => {
  let h: Harness
  let tpm: Swtpm
  let dir: string
  let agent: TestAgent
  let current: Case
  let client: KeywardClient

  /** The failures of the newest denied attestation, as the audit keeps them. */
  const lastDenial = async (): Promise<string> => JSON.stringify((await A.allAuditRows(h.deps)).filter((r) => r.type === 'attestation' && r.decision === 'deny').at(-1)?.detail.failures ?? null)

  beforeAll(async () => {
    tpm = await startSwtpm({ ekCert: true })
    dir = await mkdtemp(join(tmpdir(), 'kw-allowlist-http-'))
    const ca = join(dir, 'ek-ca.pem')
    await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
    h = await startHarness(backend, { tpm: { ekCaFiles: [ca], allowlistPcr: PCR } })
    await A.applyPolicy(h.deps, POLICY, 'test')
    await A.addReferenceValue(h.deps, { set: 'allowlist-digests', tee: 'tpm', value: toHex(APPROVED), source: 'test' }, 'test')
    client = createClient({
      broker: h.url,
      collector: createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state'), pcrs: `sha256:7,${PCR}` }),
      runtimeState: async (req) => current.present(req),
      retries: 0,
    })
    const { token: enrolToken } = await issueEnrolmentToken(h.deps, 'svc-allowlist', 600, 'test')
    expect(await client.register('svc-allowlist', { enrolToken })).toMatchObject({ status: 'enrolled' })
  }, 120_000)

  afterAll(async () => {
    await client?.close()
    await h?.stop()
    await tpm?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  beforeEach(() => {
    agent = makeAgent(PROGRAM)
  })

  /** Resets the PCR (a reboot, for this PCR), extends the case's records, attests over HTTP. */
  async function attest(c: Case): Promise<{ status: number; body: { code?: string; message?: string } }> {
    current = c
    await tpmTool(tpm.tcti, 'tpm2_pcrreset', [String(PCR)])
    for (const r of c.extended) await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`${PCR}:sha256=${toHex(sha256(r))}`])
    const body = await client.evidence()
    const res = await fetch(`${h.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const j = (await res.json()) as { error?: { code: string; message: string } }
    return { status: res.status, body: j.error ?? {} }
  }

  const honest = (over: Partial<Statement> = {}): Case => ({ extended: agent.records, present: (q) => agent.runtimeState(q.nonce, q.jkt, over) })

  it('admits the agent statement for this challenge, with the facts it signed', async () => {
    const r = await attest(honest())
    expect(r.body.code).toBeUndefined()
    expect(r.status).toBe(200)
  }, 60_000)

  it('a denial the kernel counted reaches the very next attestation (fresh statement), and is denied', async () => {
    const r = await attest(honest({ denials: 1n }))
    expect(r.status).toBe(403)
    expect(r.body.code).toBe('ERR_POLICY_DENIED')
    // The workload gets a summary (denialDetail: summary); the audit names the failing condition.
    expect(await lastDenial()).toContain('allowlist-no-denials')
  }, 60_000)

  it('a forged "enforce, approved, 0 denials" load record extended after the separator is ERR_ALLOWLIST_UNTRUSTED', async () => {
    // The workload (root) builds its own agent: extends its load record, and signs its own statement.
    const forger = makeAgent(PROGRAM)
    const r = await attest({
      extended: [...agent.records, forger.load, forger.separator],
      present: (q) => ({ allowlist: { records: [...agent.records, forger.load, forger.separator].map(toHex), statement: toHex(forger.statement(q.nonce, q.jkt)) } }),
    })
    expect(r.status).toBe(403)
    expect(r.body.code).toBe('ERR_ALLOWLIST_UNTRUSTED')
    expect(r.body.message).toMatch(WHY['after-separator'])
    // Leaving its records out of the log does not help: the replay fails.
    const hidden = await attest({ extended: [...agent.records, forger.load], present: (q) => forger.runtimeState(q.nonce, q.jkt) })
    expect(hidden.body.code).toBe('ERR_ALLOWLIST_REPLAY')
  }, 60_000)

  it('no agent: a statement without a load record is refused, and presenting nothing fails every allowlist condition', async () => {
    const forger = makeAgent(PROGRAM)
    const r = await attest({ extended: [], present: (q) => ({ allowlist: { records: [], statement: toHex(forger.statement(q.nonce, q.jkt)) } }) })
    expect(r.body.code).toBe('ERR_ALLOWLIST_UNTRUSTED')
    expect(r.body.message).toMatch(WHY['no-agent'])
    const none = await attest({ extended: [], present: () => undefined })
    expect(none.body.code).toBe('ERR_POLICY_DENIED')
    expect(await lastDenial()).toContain('allowlist-present')
  }, 60_000)

  it('no agent, the boot chain extended a separator alone: a workload that loads its own agent is refused', async () => {
    const forger = makeAgent(PROGRAM)
    const records = [agent.separator, forger.load, forger.separator]
    const r = await attest({ extended: records, present: (q) => ({ allowlist: { records: records.map(toHex), statement: toHex(forger.statement(q.nonce, q.jkt)) } }) })
    expect(r.body).toMatchObject({ code: 'ERR_ALLOWLIST_UNTRUSTED', message: expect.stringMatching(WHY['no-load-record']) })
  }, 60_000)

  it('a second load record, or a missing separator, is refused', async () => {
    const second = encodeRecord({ kind: 'load', ...PROGRAM, mode: 'audit', agentKey: agent.publicPoint })
    const r = await attest({ extended: [agent.load, second, agent.separator], present: (q) => ({ allowlist: { records: [agent.load, second, agent.separator].map(toHex), statement: toHex(agent.statement(q.nonce, q.jkt)) } }) })
    expect(r.body).toMatchObject({ code: 'ERR_ALLOWLIST_UNTRUSTED', message: expect.stringMatching(WHY['second-load']) })
    const noSep = await attest({ extended: [agent.load], present: (q) => ({ allowlist: { records: [toHex(agent.load)], statement: toHex(agent.statement(q.nonce, q.jkt)) } }) })
    expect(noSep.body).toMatchObject({ code: 'ERR_ALLOWLIST_UNTRUSTED', message: expect.stringMatching(WHY['no-separator']) })
  }, 60_000)

  it('a statement signed by another key, made for another nonce or key, or about another program is refused', async () => {
    const other = makeAgent(PROGRAM)
    const byOther = await attest({ extended: agent.records, present: (q) => ({ allowlist: { records: agent.records.map(toHex), statement: toHex(other.statement(q.nonce, q.jkt)) } }) })
    expect(byOther.body).toMatchObject({ code: 'ERR_ALLOWLIST_UNTRUSTED', message: expect.stringMatching(WHY['statement-signature']) })
    const otherNonce = await attest(honest({ nonce: new Uint8Array(randomBytes(32)) }))
    expect(otherNonce.body).toMatchObject({ code: 'ERR_ALLOWLIST_UNTRUSTED', message: expect.stringMatching(WHY['statement-binding']) })
    const otherKey = await attest(honest({ jkt: new Uint8Array(randomBytes(32)) }))
    expect(otherKey.body).toMatchObject({ code: 'ERR_ALLOWLIST_UNTRUSTED', message: expect.stringMatching(WHY['statement-binding']) })
    const otherProgram = await attest(honest({ mode: 'audit' }))
    expect(otherProgram.body).toMatchObject({ code: 'ERR_ALLOWLIST_UNTRUSTED', message: expect.stringMatching(WHY['statement-program']) })
  }, 120_000)

  it('on Nitro (and SEV-SNP) allowlist state is refused: no register the agent writes before the workload', async () => {
    const nitro = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), runtimeState: async (q) => agent.runtimeState(q.nonce, q.jkt), retries: 0 })
    const body = await nitro.evidence()
    await nitro.close()
    const res = await fetch(`${h.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    expect(res.status).toBe(403)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_ALLOWLIST_UNATTESTED')
  }, 60_000)

  it('a captured request with its statement cannot be replayed', async () => {
    current = honest()
    await tpmTool(tpm.tcti, 'tpm2_pcrreset', [String(PCR)])
    for (const r of agent.records) await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`${PCR}:sha256=${toHex(sha256(r))}`])
    const body = JSON.stringify(await client.evidence())
    const post = () => fetch(`${h.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect((await post()).status).toBe(200)
    const again = await post()
    expect(again.status).toBe(403)
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('ERR_NONCE_USED')
  }, 60_000)
})
