// Runs one `keyward` command line in-process (through the dispatcher in src/cli/main.ts) and
// captures what it writes: no child process, so a CLI test costs milliseconds.
import { vi } from 'vitest'
import { run } from '../../src/cli/main.js'

export async function runKeywardInProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((stdout += String(c)), true))
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((stderr += String(c)), true))
  try {
    return { code: await run(argv), stdout, stderr }
  } finally {
    o.mockRestore()
    e.mockRestore()
  }
}
