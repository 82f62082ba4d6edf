// Issue 13 items 1 and 3 across two `keyward serve` processes on one PostgreSQL, driven only by
// the `keyward` and `keyward-client` command lines (run in-process: test/helpers/cli.ts) with two
// swtpm TPMs: a TPM registering under another workload's name stays pending on every replica, an
// enrolment token is consumed exactly once across replicas, and `ak revoke --deny-ek` stops the
// TPM until `ek undeny`.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { createLocation, type TestLocation } from '../store/helpers.js'
import { startSwtpm, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { runClientInProcess, runKeywardInProcess, type CliResult } from '../helpers/cli.js'

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: payments
spec:
  tees: [tpm]
  conditions:
    - name: enrolled-as-payments
      expr: claims.details.akTrust.workload == "svc-payments"
  grants:
    secrets: [payments-secret]
`

let victim: Swtpm
let attacker: Swtpm
let dir: string
let db: TestLocation | undefined
let dbUrl: string
const brokers: BrokerProcess[] = []
let n = 0

const keyward = (...args: string[]): Promise<CliResult> => runKeywardInProcess([...args, '--data-dir', join(dir, 'data')], { DATABASE_URL: dbUrl })
async function admin(...args: string[]): Promise<string> {
  const r = await keyward(...args)
  if (r.code !== 0) throw new Error(`keyward ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
  return r.stdout
}
const token = async (workload: string): Promise<string> => (JSON.parse(await admin('enrol', 'token', '--workload', workload)) as { token: string }).token
/** keyward-client on a TPM through replica `b`, with its own state dir (its own AK) unless given. */
function client(tpm: Swtpm, b: number, state: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runClientInProcess(['--broker', brokers[b]!.url, '--tee', 'tpm', '--tcti', tpm.tcti, '--retries', '0', '--state-dir', join(dir, state), ...args], { KEYWARD_ENROL_TOKEN: '', ...env })
}
const fresh = (): string => `state-${n++}`

beforeAll(async () => {
  db = await createLocation('postgres')
  dbUrl = db.where
  ;[victim, attacker] = await Promise.all([startSwtpm({ ekCert: true }), startSwtpm({ ekCert: true })])
  dir = await mkdtemp(join(tmpdir(), 'kw-enrol-replicas-'))
  const ca = join(dir, 'ek-cas.pem')
  await writeFile(ca, [victim, attacker].map((t) => `${t.caIntermediate}\n${t.caRoot}`).join('\n'))
  const config = join(dir, 'keyward.yaml')
  await writeFile(config, `host: 127.0.0.1\nport: 0\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\n`)
  brokers.push(await startBrokerProcess(config, { DATABASE_URL: dbUrl }), await startBrokerProcess(config, { DATABASE_URL: dbUrl }))
  await writeFile(join(dir, 'policy.yaml'), POLICY)
  await admin('policy', 'apply', join(dir, 'policy.yaml'))
  await admin('secret', 'put', 'payments-secret', '--text', 'testOnly-payments-replicated')
}, 180_000)

afterAll(async () => {
  for (const b of brokers) await b.stop()
  await Promise.all([victim?.stop(), attacker?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
  await db?.cleanup()
})

describe('TPM enrolment across two broker processes', () => {
  it('a squatting TPM is pending on both replicas; a token enrols exactly once across them; an admin rejects the squatter', async () => {
    const squat = fresh()
    const reg = await client(attacker, 0, squat, ['register', '--workload', 'svc-payments'])
    expect(reg.code).toBe(0)
    expect(JSON.parse(reg.stdout)).toMatchObject({ workload: 'svc-payments', status: 'pending' })
    expect(reg.stderr).toContain('pending approval')
    const akName = (JSON.parse(reg.stdout) as { akName: string }).akName
    for (const b of [0, 1]) {
      const a = await client(attacker, b, squat, ['get', 'payments-secret'])
      expect(a.code).toBe(1)
      expect(a.stderr).toContain('ERR_ENROLMENT_PENDING')
    }

    // One token, two TPMs registering through both replicas at once: exactly one is enrolled.
    const t = await token('svc-payments')
    const tokenFile = join(dir, 'enrol-token')
    await writeFile(tokenFile, `${t}\n`, { mode: 0o600 })
    const [v, s] = await Promise.all([
      client(victim, 1, 'victim', ['register', '--workload', 'svc-payments', '--enrol-token-file', tokenFile]),
      client(attacker, 0, fresh(), ['register', '--workload', 'svc-payments'], { KEYWARD_ENROL_TOKEN: t }),
    ])
    const statuses = [v, s].map((r) => (JSON.parse(r.stdout) as { status: string }).status).sort()
    expect(statuses).toEqual(['enrolled', 'pending'])

    const list = JSON.parse(await admin('enrol', 'list')) as { enrolments: Array<{ name: string }> }
    expect(list.enrolments.map((e) => e.name)).toContain(akName)
    await admin('enrol', 'reject', akName)
    const after = await client(attacker, 1, squat, ['attest'])
    expect(after.code).toBe(1)
    expect(after.stdout).toContain('ERR_AK_UNTRUSTED')
  }, 180_000)

  it('ak revoke --deny-ek stops the TPM on every replica until ek undeny', async () => {
    const st = fresh()
    // Without a token the registration is pending; an admin approves it by CLI.
    const r = await client(victim, 0, st, ['register', '--workload', 'svc-payments'])
    const akName = (JSON.parse(r.stdout) as { akName: string; status: string }).akName
    expect((JSON.parse(r.stdout) as { status: string }).status).toBe('pending')
    await admin('enrol', 'approve', akName)
    expect((await client(victim, 1, st, ['get', 'payments-secret'])).stdout).toBe('testOnly-payments-replicated')

    const revoked = JSON.parse(await admin('ak', 'revoke', akName, '--deny-ek')) as { deniedEks: string[] }
    expect(revoked.deniedEks.length).toBeGreaterThanOrEqual(1)
    for (const b of [0, 1]) {
      const g = await client(victim, b, st, ['get', 'payments-secret'])
      expect(g.code).toBe(1)
      expect(g.stderr).toContain('ERR_EK_DENIED')
    }
    const again = await client(victim, 1, fresh(), ['register', '--workload', 'svc-payments'], { KEYWARD_ENROL_TOKEN: await token('svc-payments') })
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('ERR_EK_DENIED')

    await admin('ek', 'undeny', revoked.deniedEks[0]!)
    const st2 = fresh()
    const back = await client(victim, 0, st2, ['register', '--workload', 'svc-payments'], { KEYWARD_ENROL_TOKEN: await token('svc-payments') })
    expect(JSON.parse(back.stdout)).toMatchObject({ status: 'enrolled' })
    expect((await client(victim, 1, st2, ['get', 'payments-secret'])).stdout).toBe('testOnly-payments-replicated')
  }, 180_000)

  it('the CLI answers --help with usage (exit 0) and usage errors with exit 2', async () => {
    for (const group of ['enrol', 'ek']) {
      const h = await keyward(group, '--help')
      expect(h.code).toBe(0)
      expect(h.stdout).toContain(`keyward ${group}`)
      expect((await keyward(group, 'bogus')).code).toBe(2)
    }
    expect((await keyward('enrol', 'token')).code).toBe(2)
    expect((await keyward('enrol', 'token', '--workload', 'nitro:ab')).code).toBe(2)
    expect((await keyward('ek', 'allow', '--workload', 'svc-x')).code).toBe(2)
  }, 180_000)
})
