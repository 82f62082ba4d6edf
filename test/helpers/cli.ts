// Runs `keyward` and `keyward-client` command lines in-process (through the dispatchers in
// src/cli/main.ts and enclave-client/src/cli/main.ts) and captures what they write: no child
// process, so a CLI step costs milliseconds instead of a Node start and a tsx compile. Use a
// child process (test/enclave-client/helpers/proc.ts runBin) only where the process itself is under
// test: signals, SIGKILL at a crash point, exit codes of the bin, concurrency between processes.
import { vi } from 'vitest'
import { run } from '../../src/cli/main.js'
import { main as clientMain } from '../../enclave-client/src/cli/main.js'

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Sets `env` on process.env (an empty string sets the variable empty); returns the restorer. */
function withEnv(env: NodeJS.ProcessEnv): () => void {
  const saved = Object.keys(env).map((k) => [k, process.env[k]] as const)
  for (const [k, v] of Object.entries(env)) process.env[k] = v ?? ''
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

// One `keyward` run at a time: it captures the process's stdout/stderr and sets process.env.
let turn: Promise<unknown> = Promise.resolve()

/** `keyward ARGV…` in-process; `env` (e.g. DATABASE_URL) is set on process.env for the run only. */
export function runKeywardInProcess(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const result = turn.then(async () => {
    let stdout = ''
    let stderr = ''
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((stdout += String(c)), true))
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((stderr += String(c)), true))
    const restore = withEnv(env)
    try {
      return { code: await run(argv), stdout, stderr }
    } finally {
      restore()
      o.mockRestore()
      e.mockRestore()
    }
  })
  turn = result.catch(() => undefined)
  return result
}

/** `keyward ARGS… --data-dir DIR` in-process; its stdout, or an error with its stderr. */
export async function keywardAdminInProcess(dataDir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runKeywardInProcess([...args, '--data-dir', dataDir], env)
  if (r.code !== 0) throw new Error(`keyward ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
  return r.stdout
}

/**
 * `keyward-client ARGV…` in-process, through its own output hooks (so runs may overlap). `env`
 * (e.g. KEYWARD_ENROL_TOKEN) is seen by the command line parser, which reads it synchronously.
 */
export async function runClientInProcess(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const out: Buffer[] = []
  const err: string[] = []
  const restore = withEnv(env)
  let code: Promise<number>
  try {
    code = clientMain(argv, { stdout: (d) => void out.push(Buffer.from(d)), stderr: (l) => void err.push(`${l}\n`) })
  } finally {
    restore()
  }
  return { code: await code, stdout: Buffer.concat(out).toString('utf8'), stderr: err.join('') }
}
