// Starts `keyward serve --config FILE` as a child process (sources through tsx: KEYWARD_DEV=1),
// waits for the port it reports over IPC once listening, and stops exactly that process.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { REPO_ROOT } from './vectors.js'
import { runBin } from '../enclave-client/helpers/proc.js'

export interface BrokerProcess {
  url: string
  port: number
  process: ChildProcess
  stop(): Promise<void>
}

export async function startBrokerProcess(config: string, env: NodeJS.ProcessEnv = {}): Promise<BrokerProcess> {
  const p = spawn(process.execPath, [join(REPO_ROOT, 'bin/keyward.js'), 'serve', '--config', config], {
    env: { ...process.env, KEYWARD_DEV: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  })
  let stderr = ''
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  // If the test process ends without its afterAll (crash, kill), take the broker with it.
  const killOnExit = (): void => void p.kill('SIGTERM')
  process.once('exit', killOnExit)
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit)
    if (p.pid && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r))
      p.kill('SIGTERM')
      await exited
    }
  }
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`broker did not start: ${stderr}`)), 60_000)
      p.on('message', (m: { keyward?: string; port?: number }) => {
        if (m.keyward === 'listening' && m.port) {
          clearTimeout(t)
          resolve(m.port)
        }
      })
      p.once('exit', (code) => {
        clearTimeout(t)
        reject(new Error(`broker exited ${code}: ${stderr}`))
      })
    })
    return { url: `http://127.0.0.1:${port}`, port, process: p, stop }
  } catch (e) {
    await stop()
    throw e
  }
}

/** `keyward ARGS --data-dir DIR` through the real bin; its stdout, or an error with its stderr. */
export async function keywardAdmin(dataDir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runBin('keyward', [...args, '--data-dir', dataDir], { env })
  if (r.code !== 0) throw new Error(`keyward ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
  return r.stdout
}
