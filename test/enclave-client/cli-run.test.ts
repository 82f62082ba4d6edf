// `keyward-client run` as a process: real swtpm quotes, a stand-in broker that checks the quote's
// qualifying data is the binding digest, and a child that must see its secrets (or never start).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSwtpm, type Swtpm } from './helpers/swtpm.js'
import { runBin, type ProcResult } from './helpers/proc.js'
import { makeAgent, serveAgent } from '../helpers/allowlist-agent.js'
import { toHex } from '../../src/util/bytes.js'
import { secrets, startBroker, type Broker } from './helpers/stand-in-broker.js'

let tpm: Swtpm
let broker: Broker
let dir: string

beforeAll(async () => {
  ;[tpm, broker] = await Promise.all([startSwtpm(), startBroker()])
  dir = await mkdtemp(join(tmpdir(), 'kw-clirun-'))
})

afterAll(async () => {
  await broker?.srv.close()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function cli(args: string[], opts: { onSpawn?: (pid: number) => void; onStdout?: (s: string) => void } = {}): Promise<ProcResult> {
  return runBin('keyward-client', args, { onStdout: opts.onStdout, onSpawn: (p) => p.pid && opts.onSpawn?.(p.pid) })
}

const globals = (): string[] => ['--broker', broker.srv.url, '--tee', 'tpm', '--tcti', tpm.tcti, '--state-dir', join(dir, 'state'), '--retries', '0']

const CHILD = `
const fs = require('fs')
const rel = process.env.KEYWARD_SECRETS_DIR + '/bin.secret'
console.log(JSON.stringify({
  db: process.env.DB,
  bin: fs.readFileSync(rel).toString('hex'),
  relMode: (fs.statSync(rel).mode & 0o777).toString(8),
  abs: fs.readFileSync(process.argv[1], 'utf8'),
  absMode: (fs.statSync(process.argv[1]).mode & 0o777).toString(8),
  dir: process.env.KEYWARD_SECRETS_DIR,
}))
process.exit(7)
`

describe('keyward-client run', () => {
  it('attests with a real quote, hands the child its secrets in env and files, exits with its code', async () => {
    const abs = join(dir, 'run', 'db.txt')
    const r = await cli([...globals(), 'run', '--secret', 'db=env:DB', '--secret', 'bin=file:bin.secret', '--secret', `db=file:${abs}`, '--renew-interval', '0', '--', process.execPath, '-e', CHILD, abs])
    expect(r.stderr).toContain('starting')
    expect(r.code).toBe(7)
    const seen = JSON.parse(r.stdout) as Record<string, string>
    expect(seen.db).toBe(new TextDecoder().decode(secrets.db))
    expect(seen.bin).toBe(Buffer.from(secrets.bin!).toString('hex'))
    expect(seen.abs).toBe(new TextDecoder().decode(secrets.db))
    expect(seen.relMode).toBe('600')
    expect(seen.absMode).toBe('600')
    // Secrets never appear on the client's own output, and the files are gone afterwards.
    expect(r.stderr).not.toContain('hunter2')
    expect(existsSync(abs)).toBe(false)
    expect(existsSync(seen.dir!)).toBe(false)
  })

  it('never starts the child when attestation is denied, and prints the reasons', async () => {
    broker.deny = { code: 'ERR_POLICY_DENIED', failures: [{ condition: 'pcr7-golden', message: 'PCR 7 is not an approved value' }] }
    const marker = join(dir, 'started')
    try {
      const r = await cli([...globals(), 'run', '--secret', 'db=env:DB', '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('not starting the command: ERR_POLICY_DENIED')
      expect(r.stderr).toContain('PCR 7 is not an approved value')
      expect(existsSync(marker)).toBe(false)
    } finally {
      broker.deny = undefined
    }
  })

  it('never starts the child when a secret is not granted', async () => {
    const marker = join(dir, 'started2')
    const r = await cli([...globals(), 'run', '--secret', 'nope=env:X', '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('ERR_NOT_GRANTED')
    expect(existsSync(marker)).toBe(false)
  })

  it('forwards SIGTERM to the child and exits 128+15 when it dies of it', async () => {
    let pid = 0
    let sent = false
    const child = "process.on('SIGTERM', () => { console.log('child got SIGTERM'); process.removeAllListeners('SIGTERM'); process.kill(process.pid, 'SIGTERM') }); console.log('ready'); setInterval(() => {}, 1000)"
    const r = await cli([...globals(), 'run', '--secret', 'db=env:DB', '--', process.execPath, '-e', child], {
      onSpawn: (p) => (pid = p),
      // Signal the client (not the child) once the child has its handler installed.
      onStdout: (s) => {
        if (!sent && s.includes('ready')) {
          sent = true
          process.kill(pid, 'SIGTERM')
        }
      },
    })
    expect(r.stdout).toContain('child got SIGTERM')
    expect(r.code).toBe(143)
  })

  it('--exit-on-renew-failure stops the child when re-attestation is denied', async () => {
    let denied = false
    try {
      const r = await cli([...globals(), 'run', '--renew-interval', '300', '--exit-on-renew-failure', '--secret', 'db=env:DB', '--', process.execPath, '-e', "console.log('ready'); setInterval(() => {}, 1000)"], {
        onStdout: (s) => {
          if (!denied && s.includes('ready')) {
            denied = true
            broker.deny = { code: 'ERR_REFERENCE_REVOKED', failures: [{ message: 'reference value revoked' }] }
          }
        },
      })
      expect(r.stderr).toContain('renewal failed: ERR_REFERENCE_REVOKED')
      expect(r.stderr).toContain('(--exit-on-renew-failure)')
      expect(r.code).toBe(143)
    } finally {
      broker.deny = undefined
    }
  })

  it('run --vault-role puts the Vault token in VAULT_TOKEN; credential prints the tool token', async () => {
    const r = await cli([...globals(), 'run', '--vault-role', 'web', '--', process.execPath, '-e', 'console.log(process.env.VAULT_TOKEN)'])
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe('hvs.test')
    const c = await cli([...globals(), 'credential', 'github'])
    expect(c.code).toBe(0)
    expect(c.stdout).toBe('eyJ.tool.cred\n')
  })

  it('binds the runtime state: the quote commits to the agent statement and the body carries the records', async () => {
    const agent = makeAgent({ allowlistDigest: new Uint8Array(32).fill(4), mode: 'enforce', progTag: new Uint8Array(8).fill(2), loadTime: 5n })
    const sock = join(dir, 'agent.sock')
    const srv = await serveAgent(agent, sock)
    const before = broker.srv.requests.length
    // The stand-in refuses the attestation unless the quote's extraData is the binding over this statement.
    const r = await cli([...globals(), '--runtime-state', sock, 'attest'])
    srv.close()
    expect(r.stderr).not.toContain('ERR_BINDING_MISMATCH')
    expect(r.code).toBe(0)
    const sent = broker.srv.requests.slice(before).find((q) => q.path === '/v1/attest')!.body as { runtimeState: { allowlist: { records: string[]; statement: string } } }
    expect(sent.runtimeState.allowlist.records).toEqual(agent.records.map(toHex))
    expect(sent.runtimeState.allowlist.statement).toMatch(/^[0-9a-f]{480}$/)
  })

  it('get writes the secret to stdout; evidence prints the body it would send', async () => {
    const g = await cli([...globals(), 'get', 'db'])
    expect(g.code).toBe(0)
    expect(g.stdout).toBe(new TextDecoder().decode(secrets.db))
    const e = await cli(['--tee', 'tpm', '--tcti', tpm.tcti, '--state-dir', join(dir, 'state'), 'evidence'])
    expect(e.code).toBe(0)
    const body = JSON.parse(e.stdout) as { tee: string; key: { kty: string }; evidence: Record<string, string> }
    expect(body.tee).toBe('tpm')
    expect(body.key.kty).toBe('EC')
    expect(Object.keys(body.evidence).sort()).toEqual(['ak', 'pcrs', 'quote', 'signature'])
  })
})
