// `npm run demo`: the broker on the embedded default (SQLite in .data/demo) and a workload with a
// real software TPM (swtpm, EK certificate from a local CA) that registers its attestation key by
// credential activation, attests, and starts a child process that receives a secret. Then a
// workload whose boot state differs is denied, with the failing condition named. Every step is
// printed; everything started is stopped.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { startSwtpm, tpmTool, type Swtpm } from './lib/swtpm.js'

const ROOT = resolve(import.meta.dirname, '..')
const DATA = join(ROOT, '.data/demo')
const SECRET = 'demo-db-password-6c1e'
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s)
let stepNo = 0
const step = (s: string) => console.log(`\n${bold(`[${++stepNo}] ${s}`)}`)
const show = (s: string) => console.log(s.replace(/^/gm, '    '))

function run(bin: 'keyward' | 'keyward-client', args: string[], opts: { allowFail?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [join(ROOT, 'bin', `${bin}.js`), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('error', rej)
    p.on('close', (code) => {
      if (code !== 0 && !opts.allowFail) rej(new Error(`${bin} ${args.join(' ')} failed (${code}):\n${stderr}`))
      else res({ code: code ?? -1, stdout, stderr })
    })
  })
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

async function main(): Promise<void> {
  let tpm: Swtpm | undefined
  let other: Swtpm | undefined
  let broker: ChildProcess | undefined
  try {
    rmSync(DATA, { recursive: true, force: true })
    mkdirSync(DATA, { recursive: true, mode: 0o700 })

    step('Start a software TPM (swtpm) with an EK certificate from a local CA')
    tpm = await startSwtpm({ ekCert: true })
    // The host's "secure boot" state: one measurement into PCR 7, as firmware would make.
    const measurement = createHash('sha256').update('demo host: secure boot enabled, approved keys').digest()
    await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`7:sha256=${measurement.toString('hex')}`])
    const pcr7 = createHash('sha256').update(Buffer.alloc(32)).update(measurement).digest('hex')
    show(`TPM at ${tpm.tcti}; PCR 7 = ${pcr7}`)

    step('Start the broker on the embedded default (SQLite in .data/demo)')
    const ca = join(DATA, 'tpm-ek-ca.pem')
    writeFileSync(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
    const config = join(DATA, 'keyward.yaml')
    writeFileSync(config, `host: 127.0.0.1\nport: 0\ndataDir: ${DATA}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\n`)
    broker = spawn(process.execPath, [join(ROOT, 'bin/keyward.js'), 'serve', '--config', config], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const port = await new Promise<number>((res, rej) => {
      const t = setTimeout(() => rej(new Error('broker did not start in 60 s')), 60_000)
      broker!.on('message', (m: { keyward?: string; port?: number }) => {
        if (m.keyward === 'listening' && m.port) (clearTimeout(t), res(m.port))
      })
      broker!.once('exit', (code) => rej(new Error(`broker exited with ${code}`)))
    })
    const url = `http://127.0.0.1:${port}`
    show(`keyward serve listening on ${url}`)
    show(`jwks: ${JSON.stringify(await (await fetch(`${url}/.well-known/jwks.json`)).json()).slice(0, 100)}…`)

    step('Admin: create a credential, store a secret, apply a policy, approve the boot state')
    const adminToken = (await run('keyward', ['credential', 'create', 'admin', 'demo-admin', '--data-dir', DATA])).stdout.trim()
    show(`admin credential kw.admin.demo-admin.… (shown once; only its scrypt hash is stored)`)
    show((await run('keyward', ['secret', 'put', 'db-password', '--text', SECRET, '--data-dir', DATA])).stdout.trim())
    writeFileSync(join(DATA, 'policy.yaml'), POLICY)
    show((await run('keyward', ['policy', 'apply', join(DATA, 'policy.yaml'), '--data-dir', DATA])).stdout.trim())
    show((await run('keyward', ['reference', 'add', '--set', 'demo-pcr7', '--tee', 'tpm', '--value', pcr7, '--source', 'demo golden image', '--data-dir', DATA])).stdout.trim())
    const listed = await fetch(`${url}/v1/admin/secrets`, { headers: { authorization: `Bearer ${adminToken}` } })
    show(`GET /v1/admin/secrets → ${listed.status} ${JSON.stringify(await listed.json())} (names and versions only)`)

    const client = (t: Swtpm, state: string, args: string[], allowFail = false) =>
      run('keyward-client', ['--broker', url, '--tee', 'tpm', '--tcti', t.tcti, '--state-dir', join(DATA, state), ...args], { allowFail })

    step('Admin: issue a single-use enrolment token for the name demo-service (a TPM gets a name only with an admin\'s say)')
    const enrolToken = (JSON.parse((await run('keyward', ['enrol', 'token', '--workload', 'demo-service', '--ttl', '600', '--data-dir', DATA])).stdout) as { token: string }).token
    const tokenFile = join(DATA, 'enrol-token')
    writeFileSync(tokenFile, enrolToken, { mode: 0o600 })

    step('Workload: register its attestation key by credential activation (TPM2_MakeCredential → ActivateCredential), enrolled by the token')
    const reg = await client(tpm, 'workload-state', ['register', '--workload', 'demo-service', '--enrol-token-file', tokenFile])
    show(reg.stdout.trim())

    step('Workload: attest (challenge → TPM quote over the binding digest → EAR attestation result)')
    const att = await client(tpm, 'workload-state', ['attest'])
    show(att.stdout.trim().slice(0, 600))

    step('Workload: keyward-client run — fetch the secret (DPoP + JWE to the session key) and start the service')
    const secretFile = join(DATA, 'run', 'db-password')
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
    show((await run('keyward', ['audit', 'tail', '-n', '4', '--data-dir', DATA])).stdout.trim().split('\n').map((l) => l.slice(0, 200)).join('\n'))
    show((await run('keyward', ['audit', 'verify', '--data-dir', DATA])).stdout.trim())

    console.log(`\n${bold('Demo complete.')} The broker's data is in ${DATA}.`)
  } finally {
    if (broker?.pid && broker.exitCode === null) {
      const exited = new Promise((r) => broker!.once('exit', r))
      broker.kill('SIGTERM')
      await exited
    }
    await other?.stop()
    await tpm?.stop()
  }
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
