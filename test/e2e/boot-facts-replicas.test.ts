// Issue 13 item 2 (measured-boot half) across two `keyward serve` processes on one PostgreSQL: a
// host booted with `init=/bin/sh` and Secure Boot off registers its AK through replica A; after
// boot, root extends PCR 8 and PCR 7 for real and appends a golden command line and a "Secure Boot
// on" variable to the event log. Each replica refuses the evidence with 403 ERR_EVENTLOG_UNTRUSTED
// naming PCR 8, the event and the rule, under a policy written on the documented facts.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { createLocation, type TestLocation } from '../store/helpers.js'
import { startSwtpm, tpmTool, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { keywardAdminInProcess } from '../helpers/cli.js'
import { createClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import { toHex } from '../../src/util/bytes.js'
import { GOLDEN_CMDLINE, bootEvents, digestOf, encodeEventLog, goldenBootPolicy, grubCmdline, secureBootVariable, type LogEvent } from '../helpers/event-log.js'

const POLICY = goldenBootPolicy('boot-secret')

let tpm: Swtpm
let dir: string
let db: TestLocation
let dbUrl: string
const brokers: BrokerProcess[] = []
const urls: string[] = []
const log: LogEvent[] = []

const admin = (...args: string[]): Promise<string> => keywardAdminInProcess(join(dir, 'data'), args, { DATABASE_URL: dbUrl })

/** Logs and extends each event on the swtpm, as firmware does at boot or root does after it. */
async function measure(events: LogEvent[]): Promise<void> {
  for (const e of events) {
    await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`${e.pcr}:sha256=${toHex(digestOf(e))}`])
    log.push(e)
  }
  await writeFile(join(dir, 'eventlog.bin'), encodeEventLog(log))
}

beforeAll(async () => {
  db = await createLocation('postgres')
  dbUrl = db.where
  tpm = await startSwtpm({ ekCert: true })
  dir = await mkdtemp(join(tmpdir(), 'kw-bootfacts-replicas-'))
  const ca = join(dir, 'ek-ca.pem')
  await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
  const config = join(dir, 'keyward.yaml')
  await writeFile(config, `host: 127.0.0.1\nport: 0\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\n`)
  for (let i = 0; i < 2; i++) {
    const b = await startBrokerProcess(config, { DATABASE_URL: dbUrl })
    brokers.push(b)
    urls.push(b.url)
  }
  await writeFile(join(dir, 'policy.yaml'), POLICY)
  await admin('policy', 'apply', join(dir, 'policy.yaml'))
  await admin('secret', 'put', 'boot-secret', '--text', 'testOnly-boot-secret')
}, 120_000)

afterAll(async () => {
  for (const b of brokers) await b.stop()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
  await db?.cleanup()
})

describe('post-boot event appends across two broker processes', () => {
  it('each replica denies the replaying log with ERR_EVENTLOG_UNTRUSTED naming PCR 8', async () => {
    await measure(bootEvents({ secureBoot: false, kernel: new Uint8Array(32).fill(0x61), cmdline: `${GOLDEN_CMDLINE} init=/bin/sh` }))
    const collector = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state'), eventLogPath: join(dir, 'eventlog.bin'), pcrs: 'sha256:0,1,2,3,4,5,6,7,8' })
    const viaA = createClient({ broker: urls[0]!, collector, retries: 0 })
    const enrolToken = (JSON.parse(await admin('enrol', 'token', '--workload', 'booted-host')) as { token: string }).token
    expect(await viaA.register('booted-host', { enrolToken })).toMatchObject({ workload: 'booted-host', status: 'enrolled' })
    const attest = async (url: string) => {
      const body = JSON.stringify(await viaA.evidence())
      const r = await fetch(`${url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      return { status: r.status, error: ((await r.json()) as { error?: { code: string; message: string } }).error }
    }
    // As booted, the facts say what happened: denied by the policy.
    expect(await attest(urls[1]!)).toMatchObject({ status: 403, error: { code: 'ERR_POLICY_DENIED' } })

    const booted = log.length
    await measure([grubCmdline(GOLDEN_CMDLINE), secureBootVariable(true)])
    for (const url of urls) {
      const r = await attest(url)
      expect(r).toMatchObject({ status: 403, error: { code: 'ERR_EVENTLOG_UNTRUSTED' } })
      expect(r.error!.message).toContain(`event ${booted + 1} in PCR 8`)
      expect(r.error!.message).toContain('cmdline-after-exit-boot-services')
    }
    await expect(viaA.getSecret('boot-secret')).rejects.toMatchObject({ code: 'ERR_EVENTLOG_UNTRUSTED' })
    expect((JSON.parse(await admin('audit', 'verify')) as { ok: boolean }).ok).toBe(true)
    await viaA.close()
  }, 120_000)
})
