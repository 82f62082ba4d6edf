// Issue 13 item 2 (measured-boot half), through the broker's HTTP API on a software TPM: a host
// booted an unapproved kernel command line (`init=/bin/sh`) with Secure Boot off; root then
// extends PCR 8 and PCR 7 for real and appends a golden command line and a "Secure Boot on"
// variable to the event log, so the log replays to the quote. A policy written on the documented
// facts (claims.details.eventLog.kernelCmdline / secureBoot) must not read the host as golden:
// /v1/attest answers 403 ERR_EVENTLOG_UNTRUSTED naming the PCR, event and rule, on SQLite and
// PostgreSQL. A host that booted golden is admitted by the same policy (the control).
import { issueEnrolmentToken } from '../../src/broker/enrolment.js'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHarness, type Harness } from './harness.js'
import * as A from '../../src/broker/admin-services.js'
import { toHex } from '../../src/util/bytes.js'
import { EV } from '../../src/verifiers/tpm/layout.js'
import { startSwtpm, tpmTool, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { createClient, type KeywardClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import { GOLDEN_CMDLINE, bootEvents, digestOf, encodeEventLog, goldenBootPolicy, grubCmdline, secureBootVariable, type LogEvent } from '../helpers/event-log.js'
import { parseCertificate } from '../../src/verifiers/common/x509.js'

const POLICY = goldenBootPolicy('db-password')
const GOLDEN_KERNEL = new Uint8Array(32).fill(0x60)

interface Host {
  tpm: Swtpm
  client: KeywardClient
  log: LogEvent[]
  logFile: string
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kw-bootfacts-'))
})
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** Logs each event and extends its digest into the swtpm, as firmware (or root, after boot) does. */
async function measure(host: Host, events: LogEvent[]): Promise<void> {
  for (const e of events) {
    await tpmTool(host.tpm.tcti, 'tpm2_pcrextend', [`${e.pcr}:sha256=${toHex(digestOf(e))}`])
    host.log.push(e)
  }
  await writeFile(host.logFile, encodeEventLog(host.log))
}

async function post(h: Harness, body: unknown): Promise<{ status: number; code?: string; message?: string }> {
  const r = await fetch(`${h.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const j = (await r.json()) as { error?: { code: string; message: string } }
  return { status: r.status, code: j.error?.code, message: j.error?.message }
}

/** The audited reasons of the last denied attestation (admins see the conditions; callers may see a summary). */
async function lastDenial(h: Harness): Promise<{ code?: string; message?: string; failures?: { condition: string }[] }> {
  const rows = (await A.allAuditRows(h.deps)).filter((a) => a.type === 'attestation' && a.decision === 'deny')
  return rows[rows.length - 1]!.detail as { code?: string; message?: string; failures?: { condition: string }[] }
}

describe.each(['sqlite', 'postgres'] as const)('post-boot event appends on swtpm, through /v1/attest (%s)', (backend) => {
  let h: Harness
  const hosts: Host[] = []

  async function bootHost(name: string, boot: { secureBoot: boolean; cmdline: string }): Promise<Host> {
    const tpm = await startSwtpm({ ekCert: true })
    // Each swtpm has its own local CA: trust it as the configured manufacturer CA (tpm.ekCaFiles).
    h.deps.trust.ekRoots.push(parseCertificate(tpm.caRoot!, 'swtpm root'))
    h.deps.trust.ekIntermediates.push(parseCertificate(tpm.caIntermediate!, 'swtpm intermediate'))
    const host: Host = {
      tpm,
      log: [],
      logFile: join(dir, `${backend}-${name}.bin`),
      client: undefined as unknown as KeywardClient,
    }
    hosts.push(host)
    await measure(host, bootEvents({ ...boot, kernel: GOLDEN_KERNEL }))
    const collector = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, `${backend}-${name}-state`), eventLogPath: host.logFile, pcrs: 'sha256:0,1,2,3,4,5,6,7,8' })
    host.client = createClient({ broker: h.url, collector, retries: 0 })
    const { token: enrolToken } = await issueEnrolmentToken(h.deps, `${name}-${backend}`, 600, 'test')
    expect(await host.client.register(`${name}-${backend}`, { enrolToken })).toMatchObject({ workload: `${name}-${backend}`, status: 'enrolled' })
    return host
  }

  beforeAll(async () => {
    h = await startHarness(backend)
    await A.applyPolicy(h.deps, POLICY, 'test')
  }, 120_000)

  afterAll(async () => {
    for (const host of hosts) {
      await host.client?.close()
      await host.tpm.stop()
    }
    await h?.stop()
  })

  it('a golden boot is admitted by the facts policy; an init=/bin/sh boot with Secure Boot off is denied on both conditions', async () => {
    const golden = await bootHost('golden', { secureBoot: true, cmdline: GOLDEN_CMDLINE })
    expect(await post(h, await golden.client.evidence())).toMatchObject({ status: 200 })
    const rogue = await bootHost('rogue', { secureBoot: false, cmdline: `${GOLDEN_CMDLINE} init=/bin/sh` })
    const r = await post(h, await rogue.client.evidence())
    expect([r.status, r.code]).toEqual([403, 'ERR_POLICY_DENIED'])
    const audited = await lastDenial(h)
    expect(audited.code).toBe('ERR_POLICY_DENIED')
    expect(audited.failures?.map((f) => f.condition).sort()).toEqual(['kernel-cmdline-golden', 'secure-boot-on'])
  }, 120_000)

  it('root extends PCR 8 and 7 after boot and appends golden events: the log replays, and is denied ERR_EVENTLOG_UNTRUSTED naming PCR, event and rule', async () => {
    const host = await bootHost('attacker', { secureBoot: false, cmdline: `${GOLDEN_CMDLINE} init=/bin/sh` })
    const bootCount = host.log.length
    await measure(host, [grubCmdline(GOLDEN_CMDLINE), secureBootVariable(true)])
    const r = await post(h, await host.client.evidence())
    expect([r.status, r.code]).toEqual([403, 'ERR_EVENTLOG_UNTRUSTED'])
    // Event indices count the Spec ID header: the first appended event is at bootCount + 1.
    expect(r.message).toContain(`event ${bootCount + 1} in PCR 8`)
    expect(r.message).toContain('cmdline-after-exit-boot-services')
    expect(await lastDenial(h)).toMatchObject({ code: 'ERR_EVENTLOG_UNTRUSTED', message: r.message })

    // The same extends with the ExitBootServices events moved behind the appended ones (order
    // between PCRs is not covered by any digest): still denied, by the one-command-line rule.
    const ebs = (e: LogEvent) => e.pcr === 5 && e.type === EV.EFI_ACTION
    await writeFile(host.logFile, encodeEventLog([...host.log.filter((e) => !ebs(e)), ...host.log.filter(ebs)]))
    const r2 = await post(h, await host.client.evidence())
    expect([r2.status, r2.code]).toEqual([403, 'ERR_EVENTLOG_UNTRUSTED'])
    expect(r2.message).toContain('in PCR 8')
    expect(r2.message).toContain('cmdline-twice')
  }, 120_000)
})
