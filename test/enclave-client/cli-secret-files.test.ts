// Secret files under attack, with real signals and real files: a SIGTERM mid-flow or a SIGKILL
// of a real keyward-client process must leave nothing behind for long, and a directory another
// user prepared (owned by another uid, a symlink, world-writable, an existing name) is refused
// before the broker is asked for anything (those command lines run in-process: no signal or
// process is involved). Runs as root here: "another user" is a chown.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { existsSync, readdirSync } from 'node:fs'
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { startSwtpm, type Swtpm } from './helpers/swtpm.js'
import { runBin, type ProcResult } from './helpers/proc.js'
import { runClientInProcess } from '../helpers/cli.js'
import { startBroker, type Broker } from './helpers/stand-in-broker.js'
import { createSecretWriter, processStartTime } from '../../enclave-client/src/cli/secret-files.js'
import { UnsafePathError } from '../../enclave-client/src/errors.js'

let tpm: Swtpm
let broker: Broker
let dir: string
const OTHER_UID = 1234

beforeAll(async () => {
  ;[tpm, broker] = await Promise.all([startSwtpm(), startBroker()])
  dir = await mkdtemp(join(tmpdir(), 'kw-sf-attack-'))
})

afterAll(async () => {
  await broker?.srv.close()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const globals = (): string[] => ['--broker', broker.srv.url, '--tee', 'tpm', '--tcti', tpm.tcti, '--state-dir', join(dir, 'state'), '--retries', '0', '--renew-interval', '0']
const WAIT = "process.on('SIGTERM', () => { console.log('child got SIGTERM'); process.exit(0) }); console.log('ready ' + process.pid); setInterval(() => {}, 1000)"

/** Runs the client; `on` sees stderr and stdout as they grow and gets the client's pid. */
function cli(args: string[], on: (out: { stderr: string; stdout: string; pid: number }) => void = () => undefined): Promise<ProcResult> {
  let pid = 0
  let stderr = ''
  let stdout = ''
  return runBin('keyward-client', args, {
    onSpawn: (p) => (pid = p.pid!),
    onStderr: (s) => on({ stderr: (stderr = s), stdout, pid }),
    onStdout: (s) => on({ stderr, stdout: (stdout = s), pid }),
  })
}

/** The same command line in this process (the path checks need no process of their own). */
const inProcess = (args: string[]) => runClientInProcess(args)

const releases = (): number => broker.srv.requests.filter((r) => r.path.startsWith('/v1/secrets/') || r.path === '/v1/attest').length

describe('keyward-client run: nothing left behind', () => {
  it('a SIGTERM between writing two secrets removes the file already written and the private dir', async () => {
    const abs = join(dir, 'term', 'db.txt')
    let pid = 0
    let written: string | undefined
    let sent = false
    // Once the second secret is requested, the first is on disk: SIGTERM the client right then.
    broker.hold = {
      path: '/v1/secrets/bin',
      arrived: () => {
        const own = readdirSync('/dev/shm').find((n) => n.startsWith(`keyward-secrets-${pid}-`))
        written = own && join('/dev/shm', own, 'db.secret')
        expect(written && existsSync(written) && existsSync(abs)).toBe(true)
        sent = true
        process.kill(pid, 'SIGTERM')
      },
    }
    try {
      const r = await cli([...globals(), '--timeout', '600000', 'run', '--secret', 'db=file:db.secret', '--secret', `db=file:${abs}`, '--secret', 'bin=file:bin.secret', '--', 'true'], (o) => {
        pid = o.pid
      })
      expect(sent).toBe(true)
      expect(r.code).toBeNull() // ended by the signal itself, after cleaning up
      expect(existsSync(written!)).toBe(false)
      expect(existsSync(dirname(written!))).toBe(false)
      expect(existsSync(abs)).toBe(false)
      expect(await readdir(dirname(abs))).toEqual([]) // no temp file either
    } finally {
      broker.hold = undefined
    }
  })

  it('after a SIGKILL the child gets SIGTERM, and the next run removes the dead client’s directory (only that one)', async () => {
    let secretsDir: string | undefined
    const r = await cli([...globals(), 'run', '--secret', 'db=file:db.secret', '--', process.execPath, '-e', WAIT], (o) => {
      const m = /secret db -> file (\S+)\/db\.secret/.exec(o.stderr)
      if (!secretsDir && m?.[1] && o.stdout.includes('ready')) {
        secretsDir = m[1]
        process.kill(o.pid, 'SIGKILL')
      }
    })
    // runBin resolves when the pipes close: the child, which holds them too, has exited.
    expect(r.code).toBeNull()
    expect(r.stdout).toContain('child got SIGTERM')
    expect(existsSync(join(secretsDir!, 'db.secret'))).toBe(true) // SIGKILL runs no code in the client

    const base = dirname(secretsDir!)
    const live = join(base, `keyward-secrets-${process.pid}-${processStartTime('self')}-Live01`)
    const foreign = join(base, 'keyward-secrets-2147483646-1-Frgn01')
    const decoyTarget = join(dir, 'decoy')
    const decoy = join(base, 'keyward-secrets-2147483646-1-Link01')
    await mkdir(live, { mode: 0o700 })
    await mkdir(foreign, { mode: 0o700 })
    await chown(foreign, OTHER_UID, OTHER_UID)
    await mkdir(decoyTarget)
    await writeFile(join(decoyTarget, 'keep'), 'x')
    await symlink(decoyTarget, decoy)
    try {
      const again = await cli([...globals(), 'run', '--secret', 'db=env:DB', '--', 'true'])
      expect(again.code).toBe(0)
      // The sweep's base is the machine's /dev/shm: a keyward run in another test file may have
      // swept the dead directory first. Then this run has nothing to say about it, but the
      // directory must be gone either way.
      if (existsSync(secretsDir!) || again.stderr.includes('left by a client that is gone')) {
        expect(again.stderr).toContain(`removed ${secretsDir}, left by a client that is gone`)
      }
      expect(existsSync(secretsDir!)).toBe(false)
      expect(existsSync(live)).toBe(true) // its owner (this test) is alive
      expect(existsSync(foreign)).toBe(true) // not ours
      expect(await readlink(decoy)).toBe(decoyTarget) // a symlink is not a directory: not followed, not removed
      expect(existsSync(join(decoyTarget, 'keep'))).toBe(true)
    } finally {
      await rm(live, { recursive: true, force: true })
      await rm(foreign, { recursive: true, force: true })
      await rm(decoy, { force: true })
    }
  })

  it('refuses file targets that name no file (file:., a trailing /, empty components)', async () => {
    for (const t of ['.', 'dir/', `${dir}//x`]) {
      const r = await inProcess([...globals(), 'run', '--secret', `db=file:${t}`, '--', 'true'])
      expect(r.code, t).toBe(2)
      expect(r.stderr).toContain('ERR_CONFIG')
    }
  })

  it('a failed link (the name appeared) leaves no temp file and keeps the other file intact', async () => {
    const d = join(dir, 'raced')
    await mkdir(d, { mode: 0o700 })
    await writeFile(join(d, 's'), 'theirs')
    const w = createSecretWriter()
    await expect(w.write(join(d, 's'), new TextEncoder().encode('ours'))).rejects.toBeInstanceOf(UnsafePathError)
    expect(await readdir(d)).toEqual(['s'])
    expect(await readFile(join(d, 's'), 'utf8')).toBe('theirs')
  })
})

describe('keyward-client: paths another user prepared', () => {
  async function refused(target: string, what: string): Promise<void> {
    const before = releases()
    const r = await inProcess([...globals(), 'run', '--secret', `db=file:${target}`, '--', 'touch', join(dir, 'child-ran')])
    expect(r.code, what).toBe(1)
    expect(r.stderr, what).toContain('ERR_UNSAFE_PATH')
    expect(releases(), `${what}: nothing was requested`).toBe(before)
    expect(existsSync(join(dir, 'child-ran'))).toBe(false)
  }

  it('refuses a directory owned by another uid', async () => {
    const d = join(dir, 'theirs')
    await mkdir(d, { mode: 0o755 })
    await chown(d, OTHER_UID, OTHER_UID)
    await refused(join(d, 'db.txt'), 'foreign dir')
    await refused(join(d, 'sub', 'db.txt'), 'below a foreign dir')
    expect(await readdir(d)).toEqual([])
  })

  it('refuses a symlinked component and a symlink at the name, and writes nothing through them', async () => {
    const real = join(dir, 'real')
    await mkdir(real, { mode: 0o700 })
    await symlink(real, join(dir, 'via'))
    await refused(join(dir, 'via', 'db.txt'), 'symlinked dir')
    await symlink(join(real, 'planted'), join(real, 'db.txt'))
    await refused(join(real, 'db.txt'), 'dangling symlink at the name')
    expect(existsSync(join(real, 'planted'))).toBe(false)
    expect((await lstat(join(real, 'db.txt'))).isSymbolicLink()).toBe(true)
  })

  it('refuses a group- or world-writable directory unless it is root-owned and sticky', async () => {
    const open = join(dir, 'open')
    await mkdir(open)
    await chmod(open, 0o777)
    await refused(join(open, 'db.txt'), 'world-writable')
    const group = join(dir, 'group')
    await mkdir(group)
    await chmod(group, 0o770)
    await refused(join(group, 'db.txt'), 'group-writable')
    const sticky = join(dir, 'sticky')
    await mkdir(sticky)
    await chmod(sticky, 0o1777)
    const out = join(dir, 'seen')
    const r = await inProcess([...globals(), 'run', '--secret', `db=file:${join(sticky, 'db.txt')}`, '--', 'cp', join(sticky, 'db.txt'), out])
    expect(r.code).toBe(0)
    expect(await readFile(out, 'utf8')).toBe('hunter2\n')
    expect(existsSync(join(sticky, 'db.txt'))).toBe(false) // removed after the child exited
  })

  it('refuses an existing target, leaving it as it was', async () => {
    const d = join(dir, 'existing')
    await mkdir(d, { mode: 0o700 })
    await writeFile(join(d, 'db.txt'), 'app config')
    await refused(join(d, 'db.txt'), 'existing file')
    expect(await readFile(join(d, 'db.txt'), 'utf8')).toBe('app config')
    expect(await readdir(d)).toEqual(['db.txt'])
  })

  it('get --out: refuses a symlinked directory and an existing file', async () => {
    const real = join(dir, 'get-real')
    await mkdir(real, { mode: 0o700 })
    await symlink(real, join(dir, 'get-via'))
    const viaLink = await inProcess([...globals(), 'get', 'db', '--out', join(dir, 'get-via', 'db.txt')])
    expect(viaLink.code).toBe(1)
    expect(viaLink.stderr).toContain('ERR_UNSAFE_PATH')
    expect(await readdir(real)).toEqual([])
    await writeFile(join(real, 'db.txt'), 'keep')
    const existing = await inProcess([...globals(), 'get', 'db', '--out', join(real, 'db.txt')])
    expect(existing.code).toBe(1)
    expect(existing.stderr).toContain('ERR_UNSAFE_PATH')
    expect(await readFile(join(real, 'db.txt'), 'utf8')).toBe('keep')
    expect(await readdir(real)).toEqual(['db.txt'])
    const ok = await inProcess([...globals(), 'get', 'db', '--out', join(real, 'new.txt')])
    expect(ok.code).toBe(0)
    expect(((await lstat(join(real, 'new.txt'))).mode & 0o777).toString(8)).toBe('600')
  })
})
