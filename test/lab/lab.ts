// Runs one lab scenario (scripts/lab/run.sh) and gives typed access to what the guest returned.
import { execFile } from 'node:child_process'
import { readFileSync, existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { REPO_ROOT } from '../helpers/vectors.js'

const run = promisify(execFile)

export interface LabTiming {
  scenario: string
  guestRc: string
  buildMs: number
  vmMs: number
  totalMs: number
  guestUptimeS: string
}

export interface LabRun {
  dir: string
  timing: LabTiming
  /** Wall time of the whole run as seen by the test (build check + swtpm + boot + scenario). */
  wallMs: number
  /** The path of a file the guest returned. */
  file(name: string): string
  has(name: string): boolean
  bytes(name: string): Uint8Array
  text(name: string): string
  json<T>(name: string): T
  /** Files of the host side: tpm/ca-root.pem, tpm/ca-intermediate.pem, serial.log. */
  hostText(name: string): string
}

/**
 * `relay`: an http://127.0.0.1:PORT origin the guest's virtio-serial port is relayed to;
 * `guest`: a build dir from buildGuest() (broker.ts), so run.sh skips its build check.
 */
export async function runLab(scenario: string, args: Record<string, string> = {}, opts: { relay?: string; timeoutS?: number; guest?: string } = {}): Promise<LabRun> {
  const timeoutS = opts.timeoutS ?? 300
  const dir = mkdtempSync(join(tmpdir(), `keyward-lab-${scenario}-`))
  const argv = [scenario, '--out', dir, '--timeout', String(timeoutS)]
  for (const [k, v] of Object.entries(args)) argv.push('--arg', `${k}=${v}`)
  if (opts.relay) argv.push('--relay', opts.relay)
  if (opts.guest) argv.push('--guest', opts.guest)
  const t0 = Date.now()
  try {
    await run(join(REPO_ROOT, 'scripts/lab/run.sh'), argv, { cwd: REPO_ROOT, timeout: (timeoutS + 240) * 1000, maxBuffer: 16 << 20 })
  } catch (e) {
    const serial = existsSync(join(dir, 'serial.log')) ? readFileSync(join(dir, 'serial.log'), 'utf8').slice(-3000) : ''
    throw new Error(`lab scenario ${scenario} failed (outputs in ${dir}): ${(e as Error).message}\n--- serial tail ---\n${serial}`, { cause: e })
  }
  const wallMs = Date.now() - t0
  const file = (name: string): string => join(dir, 'files', name)
  const timing = JSON.parse(readFileSync(join(dir, 'timing.json'), 'utf8')) as LabTiming
  console.info(`lab ${scenario}: wall ${wallMs} ms, vm ${timing.vmMs} ms, guest uptime ${timing.guestUptimeS} s`)
  return {
    dir,
    timing,
    wallMs,
    file,
    has: (name) => existsSync(file(name)),
    bytes: (name) => new Uint8Array(readFileSync(file(name))),
    text: (name) => readFileSync(file(name), 'utf8'),
    json: <T>(name: string) => JSON.parse(readFileSync(file(name), 'utf8')) as T,
    hostText: (name) => readFileSync(join(dir, name), 'utf8'),
  }
}

/** tpm2_checkquote as an independent check of the quote (tpm2-tools, not our verifier). */
export async function checkQuoteWithTpm2Tools(lab: LabRun, nonceHex: string): Promise<boolean> {
  const f = (n: string): string => lab.file(n)
  try {
    await run('tpm2_checkquote', ['-u', f('ak.pub.pem'), '-m', f('quote.msg'), '-s', f('quote.sig'), '-f', f('quote.pcrs'), '-g', 'sha256', '-q', nonceHex])
    return true
  } catch {
    return false
  }
}
