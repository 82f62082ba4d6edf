// Starts a throwaway swtpm on 127.0.0.1 the way ../shared/tools/tpm-quote.sh does: optional
// manufacturing with an EK certificate from an offline local CA (swtpm_setup + swtpm_localca),
// a random free port pair, and a stop() that kills exactly the process it started.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, writeFile, rm, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const pexec = promisify(execFile)

export interface Swtpm {
  port: number
  tcti: string
  dir: string
  /** PEM of the local CA root and intermediate that signed the EK certificate (when provisioned). */
  caRoot?: string
  caIntermediate?: string
  stop(): Promise<void>
}

async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = 20000 + Math.floor(Math.random() * 40000)
    if ((await portFree(p)) && (await portFree(p + 1))) return p
  }
  throw new Error('no free port pair')
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

export async function startSwtpm(opts: { ekCert?: boolean } = {}): Promise<Swtpm> {
  const dir = await mkdtemp(join(tmpdir(), 'kw-swtpm-'))
  const state = join(dir, 'state')
  await mkdir(state, { recursive: true })
  let caRoot: string | undefined
  let caIntermediate: string | undefined
  if (opts.ekCert) {
    const ca = join(dir, 'ca')
    await mkdir(ca)
    await writeFile(
      join(dir, 'localca.conf'),
      `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`,
    )
    const { stdout: localca } = await pexec('sh', ['-c', 'command -v swtpm_localca'])
    await writeFile(
      join(dir, 'swtpm_setup.conf'),
      `create_certs_tool = ${localca.trim()}\ncreate_certs_tool_config = ${dir}/localca.conf\ncreate_certs_tool_options = /etc/swtpm-localca.options\n`,
    )
    await pexec('swtpm_setup', [
      '--tpm2', '--tpmstate', state, '--config', join(dir, 'swtpm_setup.conf'),
      '--create-ek-cert', '--create-platform-cert', '--pcr-banks', '-', '--logfile', join(dir, 'setup.log'),
    ])
    caRoot = await readFile(join(ca, 'swtpm-localca-rootca-cert.pem'), 'utf8')
    caIntermediate = await readFile(join(ca, 'issuercert.pem'), 'utf8')
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    const port = await freePortPair()
    const child: ChildProcess = spawn(
      'swtpm',
      [
        'socket', '--tpm2', '--tpmstate', `dir=${state}`,
        '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags', 'not-need-init,startup-clear', '--log', `file=${join(dir, 'swtpm.log')}`,
      ],
      { stdio: 'ignore' },
    )
    let exited = false
    child.once('exit', () => (exited = true))
    for (let i = 0; i < 150 && !exited; i++) {
      try {
        await pexec('swtpm_ioctl', ['--tcp', `127.0.0.1:${port + 1}`, '-c'])
        const stop = async (): Promise<void> => {
          if (!exited && child.pid !== undefined) {
            const done = new Promise((r) => child.once('exit', r))
            process.kill(child.pid, 'SIGTERM')
            await done
          }
          await rm(dir, { recursive: true, force: true })
        }
        return { port, tcti: `swtpm:host=127.0.0.1,port=${port}`, dir, caRoot, caIntermediate, stop }
      } catch {
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    if (!exited && child.pid !== undefined) process.kill(child.pid, 'SIGTERM')
  }
  await rm(dir, { recursive: true, force: true })
  throw new Error('could not start swtpm')
}

/** Runs a tpm2-tools command against the given TCTI (for test-side checks such as tpm2_makecredential). */
export async function tpmTool(tcti: string, tool: string, args: string[]): Promise<string> {
  const { stdout } = await pexec(tool, args, { env: { ...process.env, TPM2TOOLS_TCTI: tcti } })
  return stdout
}
