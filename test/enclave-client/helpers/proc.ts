// Runs a repository CLI (bin/keyward.js, bin/keyward-client.js) as a child process from the
// TypeScript sources (KEYWARD_DEV=1) and collects its output.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { REPO_ROOT } from '../../helpers/vectors.js'

export interface ProcResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface ProcOptions {
  env?: NodeJS.ProcessEnv
  onSpawn?: (p: ChildProcess) => void
  /** Called with the whole stderr so far after every chunk. */
  onStderr?: (all: string) => void
  /** Called with the whole stdout so far after every chunk. */
  onStdout?: (all: string) => void
}

export function runBin(bin: 'keyward' | 'keyward-client', args: string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(REPO_ROOT, 'bin', `${bin}.js`), ...args], {
      env: { ...process.env, KEYWARD_DEV: '1', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    p.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
      opts.onStdout?.(stdout)
    })
    p.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
      opts.onStderr?.(stderr)
    })
    p.once('error', reject)
    opts.onSpawn?.(p)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
