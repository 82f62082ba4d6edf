// `keyward-client run` and its child under real signals: a terminal's Ctrl-C reaches the child
// exactly once (not again through the client), a SIGINT sent to the client alone is forwarded
// once, --exit-on-renew-failure escalates to SIGKILL when the child ignores SIGTERM, and a POST
// that mints something is not sent again after a timeout.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSwtpm, type Swtpm } from './helpers/swtpm.js'
import { runBin } from './helpers/proc.js'
import { startBroker, type Broker } from './helpers/stand-in-broker.js'
import { REPO_ROOT } from '../helpers/vectors.js'

let tpm: Swtpm
let broker: Broker
let dir: string

beforeAll(async () => {
  ;[tpm, broker] = await Promise.all([startSwtpm(), startBroker()])
  dir = await mkdtemp(join(tmpdir(), 'kw-run-signals-'))
})

afterAll(async () => {
  await broker?.srv.close()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const globals = (): string[] => ['--broker', broker.srv.url, '--tee', 'tpm', '--tcti', tpm.tcti, '--state-dir', join(dir, 'state'), '--retries', '0']

// Counts SIGINTs; after the first it asks its parent (the client) for a SIGUSR2, which the client
// forwards. Signals from one sender arrive in order, so by then any forwarded SIGINT has arrived.
const COUNT_SIGINT = `
let n = 0
process.on('SIGINT', () => { if (++n === 1) process.kill(process.ppid, 'SIGUSR2') })
process.on('SIGUSR2', () => { console.log('SIGINT x' + n); process.exit(0) })
console.log('ready')
setInterval(() => {}, 1000)
`

describe('keyward-client run: signals', () => {
  it('Ctrl-C on a terminal reaches the child once, not a second time through the client', async () => {
    const cmd = [process.execPath, join(REPO_ROOT, 'bin', 'keyward-client.js'), ...globals(), '--renew-interval', '0', 'run', '--secret', 'db=env:DB', '--', process.execPath, '-e', COUNT_SIGINT]
    const quoted = cmd.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
    // script(1) gives the client a pseudo-terminal; ^C typed into it makes the line discipline
    // send SIGINT to the foreground process group (the client and its child).
    const p = spawn('script', ['-q', '-e', '-c', `exec ${quoted}`, '/dev/null'], { env: { ...process.env, KEYWARD_DEV: '1', SHELL: '/bin/sh' }, stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let typed = false
    const code = await new Promise<number | null>((resolve) => {
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        if (!typed && out.includes('ready')) {
          typed = true
          p.stdin.write('\x03')
        }
      })
      p.on('close', (c) => resolve(c))
    })
    // The kernel merges a second SIGINT that arrives while the first is pending, so the child's
    // count alone can miss a double delivery: the client's own account is checked too.
    expect(out).toContain('SIGINT x1')
    expect(out).not.toContain('forwarded SIGINT')
    expect(out).toContain('forwarded SIGUSR2')
    expect(code).toBe(0)
  })

  it('a SIGINT sent to the client alone (no terminal) is forwarded to the child once', async () => {
    let sent = false
    let pid = 0
    const r = await runBin('keyward-client', [...globals(), '--renew-interval', '0', 'run', '--secret', 'db=env:DB', '--', process.execPath, '-e', COUNT_SIGINT], {
      onSpawn: (c) => (pid = c.pid!),
      onStdout: (s) => {
        if (!sent && s.includes('ready')) {
          sent = true
          process.kill(pid, 'SIGINT')
        }
      },
    })
    expect(r.stdout).toContain('SIGINT x1')
    expect(r.stderr).toContain('forwarded SIGINT')
    expect(r.code).toBe(0)
  })

  it('--exit-on-renew-failure sends SIGKILL when the child outlives SIGTERM by the grace period', async () => {
    let denied = false
    const stubborn = "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000)"
    try {
      const r = await runBin('keyward-client', [...globals(), 'run', '--renew-interval', '300', '--exit-on-renew-failure', '--kill-grace', '200', '--secret', 'db=env:DB', '--', process.execPath, '-e', stubborn], {
        onStdout: (s) => {
          if (!denied && s.includes('ready')) {
            denied = true
            broker.deny = { code: 'ERR_REFERENCE_REVOKED', failures: [] }
          }
        },
      })
      expect(r.stdout).toContain('ignoring SIGTERM')
      expect(r.stderr).toContain('SIGKILL after 200 ms')
      expect(r.stderr).toContain('outlived SIGTERM by 200 ms: SIGKILL')
      expect(r.code).toBe(128 + 9)
    } finally {
      broker.deny = undefined
    }
  })

  it('a credential POST that timed out is not sent again (it may have minted one); a GET is retried', async () => {
    const count = (path: string): number => broker.srv.requests.filter((q) => q.path === path).length
    const before = { cred: count('/v1/credentials/gh'), get: count('/v1/secrets/db') }
    broker.hold = { path: '/v1/credentials/gh' }
    try {
      const r = await runBin('keyward-client', [...globals().slice(0, -2), '--retries', '2', '--timeout', '1500', 'credential', 'gh'])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('ERR_UPSTREAM_UNAVAILABLE')
      expect(count('/v1/credentials/gh') - before.cred).toBe(1)
      broker.hold = { path: '/v1/secrets/db' }
      const g = await runBin('keyward-client', [...globals().slice(0, -2), '--retries', '2', '--timeout', '1500', 'get', 'db'])
      expect(g.code).toBe(1)
      expect(count('/v1/secrets/db') - before.get, g.stderr).toBe(3)
    } finally {
      broker.hold = undefined
    }
  })
})
