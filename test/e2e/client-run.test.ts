// End to end: a real broker (`keyward serve`, embedded SQLite in a temp data dir) and
// `keyward-client` with the TPM collector on swtpm. The AK is registered by credential
// activation (EK certificate from swtpm's local CA), a policy grants a secret on a PCR 7
// reference value, and `keyward-client run … -- node -e …` must hand the child the secret;
// an unregistered workload never starts its child; renewal re-attests; revoking the
// reference value makes the next renewal fail and the client report it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { keywardAdminInProcess } from '../helpers/cli.js'
import { startSwtpm, tpmTool, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { runBin, type ProcResult } from '../enclave-client/helpers/proc.js'

let tpm: Swtpm
let dir: string
let broker: BrokerProcess | undefined
let url: string
let referenceId: string
const SECRET = 'e2e-db-password-3f9a'
// PCR 7 after one extend from zero: SHA-256(0^32 || d), as TPM2_PCR_Extend computes it.
const EXTEND = createHash('sha256').update('keyward e2e: secure boot policy').digest()
const PCR7 = createHash('sha256').update(Buffer.alloc(32)).update(EXTEND).digest('hex')

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: e2e-web
spec:
  tees: [tpm]
  conditions:
    - name: registered-workload
      description: the AK was admitted by credential activation for this workload
      expr: claims.details.akTrust.workload == "svc-e2e" && claims.details.akTrust.via == "credential-activation"
    - name: pcr7-golden
      expr: claims.details.pcrs.sha256["7"] in refs["e2e-pcr7"]
  grants:
    secrets: [db-password]
`

const admin = (...args: string[]): Promise<string> => keywardAdminInProcess(join(dir, 'data'), args, { DATABASE_URL: '' })

function client(args: string[], opts: Parameters<typeof runBin>[2] = {}): Promise<ProcResult> {
  return runBin('keyward-client', ['--broker', url, '--tee', 'tpm', '--tcti', tpm.tcti, '--retries', '1', ...args], opts)
}

beforeAll(async () => {
  tpm = await startSwtpm({ ekCert: true })
  dir = await mkdtemp(join(tmpdir(), 'kw-e2e-client-'))
  await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`7:sha256=${EXTEND.toString('hex')}`])
  const ca = join(dir, 'ek-ca.pem')
  await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
  const config = join(dir, 'keyward.yaml')
  await writeFile(config, `host: 127.0.0.1\nport: 0\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\ntokenTtlSeconds: 30\ntpm:\n  ekCaFiles: [${ca}]\n`)

  broker = await startBrokerProcess(config)
  url = broker.url


  await writeFile(join(dir, 'policy.yaml'), POLICY)
  // The name binds with an enrolment token an admin issued for it (docs/tpm-enrolment.md).
  const enrolToken = (JSON.parse(await admin('enrol', 'token', '--workload', 'svc-e2e')) as { token: string }).token
  // Independent admin steps and the registration run side by side (the store serializes writers).
  const [, , ref, reg] = await Promise.all([
    admin('policy', 'apply', join(dir, 'policy.yaml')),
    admin('secret', 'put', 'db-password', '--text', SECRET),
    admin('reference', 'add', '--set', 'e2e-pcr7', '--tee', 'tpm', '--value', PCR7, '--source', 'e2e test'),
    client(['--state-dir', join(dir, 'state'), 'register', '--workload', 'svc-e2e'], { env: { KEYWARD_ENROL_TOKEN: enrolToken } }),
  ])
  referenceId = (JSON.parse(ref) as { id: string }).id
  if (reg.code !== 0) throw new Error(`register failed: ${reg.stderr}`)
  expect(JSON.parse(reg.stdout)).toMatchObject({ workload: 'svc-e2e', status: 'enrolled', akName: expect.stringMatching(/^000b[0-9a-f]{64}$/) })
}, 120_000)

afterAll(async () => {
  await broker?.stop()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const CHILD = `
const fs = require('fs')
console.log(JSON.stringify({ env: process.env.DB_PASSWORD, file: fs.readFileSync(process.argv[1], 'utf8') }))
const stop = process.argv[2]
const t = setInterval(() => { if (fs.existsSync(stop)) { clearInterval(t); process.exit(0) } }, 50)
`

describe('keyward-client against a real broker on swtpm', () => {
  it('attest prints an allow decision with the verified TPM claims', async () => {
    const r = await client(['--state-dir', join(dir, 'state'), 'attest'])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as { decision: string; policy: string }
    expect(out.decision).toBe('allow')
    expect(out.policy).toContain('e2e-web')
  })

  it('an unregistered AK is denied and its child never starts', async () => {
    const marker = join(dir, 'unregistered-started')
    const r = await client(['--state-dir', join(dir, 'other-state'), 'run', '--secret', 'db-password=env:DB_PASSWORD', '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('not starting the command: ERR_AK_UNTRUSTED')
    expect(existsSync(marker)).toBe(false)
  })

  it('get writes a granted secret (0600) and refuses an ungranted one with ERR_NOT_GRANTED', async () => {
    const out = join(dir, 'got', 'db')
    const g = await client(['--state-dir', join(dir, 'state'), 'get', 'db-password', '--out', out])
    expect(g.code).toBe(0)
    expect(await readFile(out, 'utf8')).toBe(SECRET)
    expect((await stat(out)).mode & 0o777).toBe(0o600)
    const denied = await client(['--state-dir', join(dir, 'state'), 'get', 'other-secret'])
    expect(denied.code).toBe(1)
    expect(denied.stderr).toContain('get failed: ERR_NOT_GRANTED')
    expect(denied.stdout).toBe('')
  })

  it('run hands the child the secret, renews, and reports the failed renewal after the reference is revoked', async () => {
    const file = join(dir, 'secrets', 'db.txt')
    const stop = join(dir, 'stop')
    let revoked = false
    let renewFailed = false
    const r = await client(
      ['--state-dir', join(dir, 'state'), 'run', '--renew-interval', '1000', '--secret', 'db-password=env:DB_PASSWORD', '--secret', `db-password=file:${file}`, '--', process.execPath, '-e', CHILD, file, stop],
      {
        onStderr: (all) => {
          if (!revoked && all.includes('re-attested')) {
            revoked = true
            void admin('reference', 'revoke', referenceId)
          }
          if (revoked && !renewFailed && all.includes('renewal failed')) {
            renewFailed = true
            void writeFile(stop, '')
          }
        },
      },
    )
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout.trim().split('\n')[0]!)).toEqual({ env: SECRET, file: SECRET })
    expect(r.stderr).toContain('re-attested, token expires')
    expect(r.stderr).toMatch(/renewal failed: ERR_(POLICY_DENIED|REFERENCE_REVOKED)/)
    expect(r.stderr).not.toContain(SECRET)
    expect(existsSync(file)).toBe(false)
  }, 60_000)
})
