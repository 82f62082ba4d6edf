// A real broker for the lab (`keyward serve`, SQLite in a temp data dir, on 127.0.0.1), trusting
// the lab swtpm's EK CA, administered with the `keyward` CLI on its data dir (in-process:
// test/helpers/cli.ts), and the guest build the scenarios will boot (built first, so the
// approved allowlist can be hashed from it).
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { keywardAdminInProcess } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/vectors.js'

const run = promisify(execFile)

export interface LabBroker {
  /** http://127.0.0.1:PORT — give it to runLab as `relay` and PORT to the guest as `broker_port`. */
  url: string
  port: number
  dir: string
  /** `keyward ARGS… --data-dir DIR`; stdout, or throws with stderr. */
  admin(...args: string[]): Promise<string>
  /** POST a JSON body; the parsed answer and status. */
  post(path: string, body: unknown): Promise<{ status: number; json: unknown }>
  stop(): Promise<void>
}

/** scripts/lab/build.sh: the guest build dir (cached). */
export async function buildGuest(): Promise<string> {
  const { stdout } = await run(join(REPO_ROOT, 'scripts/lab/build.sh'), [], { cwd: REPO_ROOT, timeout: 600_000, maxBuffer: 16 << 20 })
  return stdout.trim().split('\n').at(-1)!
}

/** scripts/lab/tpm-template.sh: the EK CA chain (intermediate + root PEM) of the lab's swtpm. */
export async function labEkCaBundle(): Promise<string> {
  const { stdout } = await run(join(REPO_ROOT, 'scripts/lab/tpm-template.sh'), [], { cwd: REPO_ROOT, timeout: 120_000 })
  const tpl = stdout.trim().split('\n').at(-1)!
  return `${readFileSync(join(tpl, 'ca/issuercert.pem'), 'utf8')}\n${readFileSync(join(tpl, 'ca/swtpm-localca-rootca-cert.pem'), 'utf8')}`
}

export async function startBroker(): Promise<LabBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-lab-broker-'))
  const ca = join(dir, 'ek-ca.pem')
  writeFileSync(ca, await labEkCaBundle())
  const config = join(dir, 'keyward.yaml')
  // Guest crypto under TCG is slow: a generous nonce lifetime for register → quote → attest.
  writeFileSync(config, `host: 127.0.0.1\nport: 0\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\nnonceTtlSeconds: 300\ntpm:\n  ekCaFiles: [${ca}]\n`)
  let broker: BrokerProcess
  try {
    broker = await startBrokerProcess(config)
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const { port } = broker
  const stop = async (): Promise<void> => {
    await broker.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    port,
    dir,
    admin: (...args) => keywardAdminInProcess(join(dir, 'data'), args, { DATABASE_URL: '' }),
    async post(path, body) {
      const res = await fetch(new URL(path, url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      return { status: res.status, json: (await res.json()) as unknown }
    },
    stop,
  }
}
