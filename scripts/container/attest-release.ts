// `npm run test:container`, after the image is built (scripts/container/test.sh): runs the broker
// image in podman as it would run in production — non-root, read-only root filesystem, the store on
// a volume, the healthcheck — and passes the demo's attest-and-release (scripts/lib/demo-flow.ts)
// against it, with the admin's commands run inside the container (`podman exec … keyward`).
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCommand, runDemoFlow, show, step, type DemoBroker } from '../lib/demo-flow.js'

const IMAGE = process.env.KEYWARD_IMAGE ?? 'localhost/keyward:test'
const NAME = `keyward-test-${process.pid}`
const VOLUME = `${NAME}-data`
const CONF = join(import.meta.dirname, 'containers.conf')
const podman = (args: string[], allowFail = false) =>
  runCommand('env', [`CONTAINERS_CONF=${CONF}`, 'podman', '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', ...args], { allowFail })

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))))
    })
  })
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`container check failed: ${what}`)
  show(`ok: ${what}`)
}

async function startContainer(workDir: string, ekCaPem: string): Promise<DemoBroker> {
  step(`Start the broker image ${IMAGE} in podman: non-root, read-only root filesystem, store on a volume`)
  const conf = join(workDir, 'etc')
  mkdirSync(conf)
  writeFileSync(join(conf, 'tpm-ek-ca.pem'), ekCaPem)
  const port = await freePort()
  writeFileSync(join(conf, 'keyward.yaml'), `host: 127.0.0.1\nport: ${port}\ndataDir: /data\nlogLevel: warn\ntpm:\n  ekCaFiles: [/etc/keyward/tpm-ek-ca.pem]\n`)
  for (const p of [workDir, conf]) chmodSync(p, 0o755) // the container's user (uid 1000) reads them
  await podman(['volume', 'create', VOLUME])
  const remove = async () => {
    await podman(['rm', '-f', NAME], true)
    await podman(['volume', 'rm', '-f', VOLUME], true)
  }
  // Host network: the sandbox's CNI bridge is not needed, and DPoP's htu stays http://127.0.0.1:port.
  await podman(['run', '-d', '--name', NAME, '--read-only', '--network', 'host', '-v', `${VOLUME}:/data`, '-v', `${conf}:/etc/keyward:ro`, '-v', `${workDir}:${workDir}:ro`, '-e', `KEYWARD_HEALTHCHECK_URL=http://127.0.0.1:${port}/healthz`, IMAGE, 'serve', '--config', '/etc/keyward/keyward.yaml'])
  const url = `http://127.0.0.1:${port}`
  try {
    await checkContainer(url)
  } catch (e) {
    await remove() // a failed check must not leave the broker running
    throw e
  }
  return {
    url,
    admin: async (args) => (await podman(['exec', NAME, 'node', 'bin/keyward.js', ...args, '--data-dir', '/data'])).stdout,
    stop: async () => {
      const logs = await podman(['logs', NAME], true)
      if (/"level":(50|60)/.test(logs.stdout + logs.stderr)) show(`broker errors:\n${(logs.stdout + logs.stderr).slice(-2000)}`)
      await podman(['stop', '-t', '10', NAME], true)
      await remove()
    },
  }
}

/** Waits for the broker, then checks how the image runs: user, read-only root, healthcheck. */
async function checkContainer(url: string): Promise<void> {
  for (let i = 0; ; i++) {
    const r = await fetch(`${url}/healthz`).catch(() => undefined)
    if (r?.ok) break
    const state = (await podman(['inspect', '-f', '{{.State.Status}}', NAME], true)).stdout.trim()
    if (state !== 'running' || i > 600) throw new Error(`broker container ${state}: ${(await podman(['logs', NAME], true)).stderr.slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 100)) // polling a starting process; no assertion depends on the interval
  }
  show(`keyward serve in container ${NAME} listening on ${url}`)
  check((await podman(['exec', NAME, 'id', '-u'])).stdout.trim() === '1000', 'the broker runs as uid 1000 (node), not root')
  check((await podman(['inspect', '-f', '{{.HostConfig.ReadonlyRootfs}}', NAME])).stdout.trim() === 'true', 'the root filesystem is mounted read-only')
  const write = await podman(['exec', NAME, 'sh', '-c', 'touch /app/written-at-runtime'], true)
  check(write.code !== 0 && /read-only/i.test(write.stderr), `writing to /app fails: ${write.stderr.trim()}`)
  check((await podman(['healthcheck', 'run', NAME], true)).code === 0, "the image's HEALTHCHECK reports healthy")
}

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'kw-container-'))
  try {
    await runDemoFlow(workDir, (pem) => startContainer(workDir, pem))
    console.log('\ncontainer test passed: the image runs non-root on a read-only root filesystem and releases only to the attested workload')
  } finally {
    rmSync(workDir, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  console.error(`container test failed: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
