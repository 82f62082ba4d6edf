// keyward-client as a real process, attacked from outside: SIGUSR1 must not open Node's
// inspector (for every subcommand), core dumps are off, and the `cmd:` TCTI (which runs a
// program) is refused before anything runs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runBin } from './helpers/proc.js'
import { startServer, type TestServer } from './helpers/http-server.js'

let srv: TestServer
let dir: string

beforeAll(async () => {
  // A broker that accepts every request and never answers: the client stays alive, mid-request.
  srv = await startServer(() => 'hang')
  dir = await mkdtemp(join(tmpdir(), 'kw-harden-'))
})

afterAll(async () => {
  await srv?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** TCP sockets a process listens on, from ss(8) (which names the owning pid). */
function listeningSockets(pid: number): string[] {
  const out = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' })
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`))
}

/** Starts keyward-client and resolves once it is waiting on the broker (its request arrived). */
async function startHanging(args: string[]): Promise<{ p: ChildProcess; pid: number; stderr: () => string; line: (re: RegExp) => Promise<void> }> {
  const before = srv.requests.length
  let err = ''
  const waiters: { re: RegExp; done: () => void }[] = []
  let arrived: () => void = () => undefined
  const requested = new Promise<void>((r) => (arrived = r))
  let p!: ChildProcess
  const exited = runBin('keyward-client', ['--broker', srv.url, '--tee', 'tpm', '--tcti', 'swtpm:host=127.0.0.1,port=9', '--retries', '0', '--timeout', '600000', ...args], {
    onSpawn: (c) => (p = c),
    onStderr: (all) => {
      err = all
      for (const w of waiters.filter((x) => x.re.test(all))) w.done()
    },
  })
  void exited
  const poll = setInterval(() => srv.requests.length > before && arrived(), 5)
  await requested
  clearInterval(poll)
  return {
    p,
    pid: p.pid!,
    stderr: () => err,
    line: (re) => new Promise<void>((done) => (re.test(err) ? done() : waiters.push({ re, done }))),
  }
}

describe('keyward-client process hardening', () => {
  for (const cmd of [['get', 'db'], ['credential', 'gh'], ['attest'], ['run', '--secret', 'db=env:DB', '--', 'true']]) {
    it(`SIGUSR1 does not open the inspector (${cmd[0]}), and the process lives on`, async () => {
      const c = await startHanging(cmd)
      try {
        expect(listeningSockets(c.pid)).toEqual([])
        c.p.kill('SIGUSR1')
        // Either the client's "ignored" line, or Node's own announcement of an open inspector.
        await c.line(/SIGUSR1 ignored|Debugger listening/)
        expect(c.stderr()).not.toContain('Debugger listening')
        expect(listeningSockets(c.pid)).toEqual([])
        expect(c.p.exitCode).toBeNull()
        expect(c.p.signalCode).toBeNull()
      } finally {
        c.p.kill('SIGKILL')
      }
    })
  }

  it('runs with RLIMIT_CORE 0 (soft and hard)', async () => {
    const c = await startHanging(['attest'])
    try {
      const limits = await readFile(`/proc/${c.pid}/limits`, 'utf8')
      expect(limits).toMatch(/^Max core file size\s+0\s+0\s+bytes\s*$/m)
    } finally {
      c.p.kill('SIGKILL')
    }
  })

  it('refuses the cmd: TCTI before it runs anything', async () => {
    const marker = join(dir, 'ran')
    const prog = join(dir, 'evil.sh')
    await writeFile(prog, `#!/bin/sh\ntouch ${marker}\n`)
    await chmod(prog, 0o755)
    const r = await runBin('keyward-client', ['--tee', 'tpm', '--tcti', `cmd:${prog}`, 'evidence'])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('ERR_CONFIG')
    expect(existsSync(marker)).toBe(false)
  })
})
