// The demo's story, against any broker: a workload with a real software TPM (swtpm, EK certificate
// from a local CA) registers its attestation key by credential activation, attests, and starts a
// child that receives a secret; then a workload whose boot state differs is denied, with the failing
// condition named, and so is an unregistered TPM. `npm run demo` runs it against `keyward serve` on
// this host (scripts/demo.ts); `npm run test:container` against the broker image in podman
// (scripts/container/attest-release.ts). Every step is printed; everything started is stopped.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { startSwtpm, tpmTool, type Swtpm } from './swtpm.js'

export const ROOT = resolve(import.meta.dirname, '../..')
const SECRET = 'demo-db-password-6c1e'
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s)
let stepNo = 0
export const step = (s: string) => console.log(`\n${bold(`[${++stepNo}] ${s}`)}`)
export const show = (s: string) => console.log(s.replace(/^/gm, '    '))

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command; rejects on a non-zero exit unless allowFail. */
export function runCommand(cmd: string, args: string[], opts: { allowFail?: boolean } = {}): Promise<RunResult> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('error', rej)
    p.on('close', (code) => {
      if (code !== 0 && !opts.allowFail) rej(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${stderr}`))
      else res({ code: code ?? -1, stdout, stderr })
    })
  })
}

/** This checkout's `keyward` or `keyward-client`, run by the Node running this script. */
export const runBin = (bin: 'keyward' | 'keyward-client', args: string[], opts: { allowFail?: boolean } = {}) =>
  runCommand(process.execPath, [join(ROOT, 'bin', `${bin}.js`), ...args], opts)

/** A running broker: its URL and how its admin runs `keyward` commands against its store. */
export interface DemoBroker {
  url: string
  /** Runs `keyward ARGS` with the broker's store (the admin's side); resolves with stdout. */
  admin(args: string[]): Promise<string>
  stop(): Promise<void>
}

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: demo-service
  description: The demo service gets its database password on a host with the approved boot state.
spec:
  tees: [tpm]
  conditions:
    - name: ak-registered-by-activation
      expr: claims.details.akTrust.via == "credential-activation"
    - name: boot-state-approved
      expr: claims.details.pcrs.sha256["7"] in refs["demo-pcr7"]
  grants:
    secrets: [db-password]
`

/**
 * The demo against the broker startBroker returns, given the PEM of the EK CA (root and
 * intermediate) it must trust. workDir holds the workload's state and files the admin's
 * commands read (policy.yaml); startBroker must make it readable to them where they run.
 */
export async function runDemoFlow(workDir: string, startBroker: (ekCaPem: string) => Promise<DemoBroker>): Promise<void> {
  let tpm: Swtpm | undefined
  let other: Swtpm | undefined
  let broker: DemoBroker | undefined
  try {
    step('Start a software TPM (swtpm) with an EK certificate from a local CA')
    tpm = await startSwtpm({ ekCert: true })
    // The host's "secure boot" state: one measurement into PCR 7, as firmware would make.
    const measurement = createHash('sha256').update('demo host: secure boot enabled, approved keys').digest()
    await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`7:sha256=${measurement.toString('hex')}`])
    const pcr7 = createHash('sha256').update(Buffer.alloc(32)).update(measurement).digest('hex')
    show(`TPM at ${tpm.tcti}; PCR 7 = ${pcr7}`)

    broker = await startBroker(`${tpm.caIntermediate}\n${tpm.caRoot}`)
    const url = broker.url
    show(`jwks: ${JSON.stringify(await (await fetch(`${url}/.well-known/jwks.json`)).json()).slice(0, 100)}…`)

    step('Admin: create a credential, store a secret, apply a policy, approve the boot state')
    const adminToken = (await broker.admin(['credential', 'create', 'admin', 'demo-admin'])).trim()
    show(`admin credential kw.admin.demo-admin.… (shown once; only its hash is stored)`)
    show((await broker.admin(['secret', 'put', 'db-password', '--text', SECRET])).trim())
    writeFileSync(join(workDir, 'policy.yaml'), POLICY)
    show((await broker.admin(['policy', 'apply', join(workDir, 'policy.yaml')])).trim())
    show((await broker.admin(['reference', 'add', '--set', 'demo-pcr7', '--tee', 'tpm', '--value', pcr7, '--source', 'demo golden image'])).trim())
    const listed = await fetch(`${url}/v1/admin/secrets`, { headers: { authorization: `Bearer ${adminToken}` } })
    show(`GET /v1/admin/secrets → ${listed.status} ${JSON.stringify(await listed.json())} (names and versions only)`)

    const client = (t: Swtpm, state: string, args: string[], allowFail = false) =>
      runBin('keyward-client', ['--broker', url, '--tee', 'tpm', '--tcti', t.tcti, '--state-dir', join(workDir, state), ...args], { allowFail })

    step("Admin: issue a single-use enrolment token for the name demo-service (a TPM gets a name only with an admin's say)")
    const enrolToken = (JSON.parse(await broker.admin(['enrol', 'token', '--workload', 'demo-service', '--ttl', '600'])) as { token: string }).token
    const tokenFile = join(workDir, 'enrol-token')
    writeFileSync(tokenFile, enrolToken, { mode: 0o600 })

    step('Workload: register its attestation key by credential activation (TPM2_MakeCredential → ActivateCredential), enrolled by the token')
    show((await client(tpm, 'workload-state', ['register', '--workload', 'demo-service', '--enrol-token-file', tokenFile])).stdout.trim())

    step('Workload: attest (challenge → TPM quote over the binding digest → EAR attestation result)')
    show((await client(tpm, 'workload-state', ['attest'])).stdout.trim().slice(0, 600))

    step('Workload: keyward-client run — fetch the secret (DPoP + JWE to the session key) and start the service')
    const secretFile = join(workDir, 'run', 'db-password')
    mkdirSync(join(workDir, 'run'), { recursive: true, mode: 0o700 })
    const child = `const fs=require('fs');const v=process.env.DB_PASSWORD;console.log('service started: DB_PASSWORD has '+v.length+' chars, file matches env: '+(fs.readFileSync(process.argv[1],'utf8')===v))`
    const ran = await client(tpm, 'workload-state', ['run', '--secret', 'db-password=env:DB_PASSWORD', '--secret', `db-password=file:${secretFile}`, '--', process.execPath, '-e', child, secretFile])
    show(ran.stderr.trim())
    show(ran.stdout.trim())
    if (!ran.stdout.includes('file matches env: true')) throw new Error('the child did not receive the secret')

    step('The same host after its boot state changed (another PCR 7 measurement): denied with the failing condition, the command never starts')
    await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`7:sha256=${createHash('sha256').update('demo host: unapproved boot key').digest('hex')}`])
    const changed = await client(tpm, 'workload-state', ['run', '--secret', 'db-password=env:DB_PASSWORD', '--', process.execPath, '-e', 'console.log("must not run")'], true)
    show(changed.stderr.trim())
    if (changed.code === 0 || changed.stdout.includes('must not run')) throw new Error('the changed host was not denied')

    step('A TPM whose attestation key was never registered: denied')
    other = await startSwtpm({ ekCert: false })
    const denied = await client(other, 'other-state', ['run', '--secret', 'db-password=env:DB_PASSWORD', '--', process.execPath, '-e', 'console.log("must not run")'], true)
    show(denied.stderr.trim())
    if (denied.code === 0 || denied.stdout.includes('must not run')) throw new Error('the unregistered workload was not denied')

    step('Audit: every release and denial, hash-chained')
    show((await broker.admin(['audit', 'tail', '-n', '4'])).trim().split('\n').map((l) => l.slice(0, 200)).join('\n'))
    const verified = (await broker.admin(['audit', 'verify'])).trim()
    show(verified)
  } finally {
    await broker?.stop()
    await other?.stop()
    await tpm?.stop()
  }
}
