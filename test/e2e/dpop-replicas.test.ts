// A captured release request (attestation token + DPoP proof), taken off the wire by a proxy
// in front of one `keyward serve`, opens nothing when replayed: not on that broker, not on a
// second `keyward serve` process on the same PostgreSQL, not on any worker of `--workers 2` on
// SQLite. The proof ids live in the shared store, consumed once.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, request, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'
import { createLocation } from '../store/helpers.js'
import { REPO_ROOT } from '../helpers/vectors.js'
import { startSwtpm, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { keywardAdminInProcess } from '../helpers/cli.js'
import { createClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'

const POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: replay
spec:
  tees: [tpm]
  conditions:
    - name: registered-ak
      expr: claims.details.akAttributesVerified == true
  grants:
    secrets: [replay-secret]
`

interface Captured {
  path: string
  headers: Record<string, string>
}

/** The network attacker's vantage point: forwards to a broker and records every release request. */
async function startCapturingProxy(): Promise<{ url: string; port: number; target(port: number): void; captured: Captured[]; close(): Promise<void> }> {
  let target = 0
  const captured: Captured[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([, v]) => typeof v === 'string')) as Record<string, string>
      if (req.url?.startsWith('/v1/secrets/')) captured.push({ path: req.url, headers: { authorization: headers.authorization!, dpop: headers.dpop! } })
      const up = request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers, agent: false }, (r) => {
        res.writeHead(r.statusCode!, r.headers)
        r.pipe(res)
      })
      up.on('error', () => res.destroy())
      up.end(Buffer.concat(chunks))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    target: (p) => (target = p),
    captured,
    close: () => new Promise((r) => server.close(() => r())),
  }
}

/** Sends a captured request on a fresh connection (so cluster workers take turns), as the attacker would. */
function replay(port: number, c: Captured): Promise<{ status: number; code?: string; message?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: c.path, headers: c.headers, agent: false }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => (text += d.toString()))
      res.on('end', () => {
        const body = JSON.parse(text) as { error?: { code: string; message: string } }
        resolve({ status: res.statusCode!, code: body.error?.code, message: body.error?.message })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

async function freePort(): Promise<number> {
  const s = createNetServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

let tpm: Swtpm
let dir: string
let ca: string
beforeAll(async () => {
  tpm = await startSwtpm({ ekCert: true })
  dir = await mkdtemp(join(tmpdir(), 'kw-dpop-replicas-'))
  ca = join(dir, 'ek-ca.pem')
  await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
  await writeFile(join(dir, 'policy.yaml'), POLICY)
}, 120_000)
afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const admin = (data: string, env: Record<string, string>, ...args: string[]): Promise<string> => keywardAdminInProcess(data, args, { DATABASE_URL: '', ...env })

/** Registers, attests and releases once through the proxy; returns the captured release request. */
async function captureRelease(proxy: Awaited<ReturnType<typeof startCapturingProxy>>, state: string, enrolToken: string): Promise<Captured> {
  const client = createClient({ broker: proxy.url, collector: createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, state) }), retries: 0 })
  try {
    expect(await client.register(`replay-svc-${state}`, { enrolToken })).toMatchObject({ status: 'enrolled' })
    expect(new TextDecoder().decode(await client.getSecret('replay-secret'))).toBe('testOnly-replay-secret')
  } finally {
    await client.close()
  }
  expect(proxy.captured).toHaveLength(1)
  return proxy.captured[0]!
}

describe('a captured release request replayed', () => {
  it('against a second `keyward serve` on the same PostgreSQL is refused with ERR_DPOP_INVALID', async () => {
    const db = await createLocation('postgres')
    const env = { DATABASE_URL: db.where }
    const proxy = await startCapturingProxy()
    const brokers: BrokerProcess[] = []
    try {
      const data = join(dir, 'pg-data')
      const config = join(dir, 'pg.yaml')
      // Both replicas serve one public origin (the address clients use: here the proxy).
      await writeFile(config, `host: 127.0.0.1\nport: 0\npublicUrl: ${proxy.url}\ndataDir: ${data}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\n`)
      brokers.push(await startBrokerProcess(config, env))
      brokers.push(await startBrokerProcess(config, env))
      await admin(data, env, 'policy', 'apply', join(dir, 'policy.yaml'))
      await admin(data, env, 'secret', 'put', 'replay-secret', '--text', 'testOnly-replay-secret')
      proxy.target(brokers[0]!.port)
      const enrolToken = (JSON.parse(await admin(data, env, 'enrol', 'token', '--workload', 'replay-svc-pg')) as { token: string }).token
      const captured = await captureRelease(proxy, 'pg', enrolToken)
      for (const b of [brokers[1]!, brokers[0]!, brokers[1]!]) {
        const r = await replay(b.port, captured)
        expect(r).toMatchObject({ status: 401, code: 'ERR_DPOP_INVALID', message: expect.stringMatching(/replayed/) })
      }
    } finally {
      for (const b of brokers) await b.stop()
      await proxy.close()
      await db.cleanup()
    }
  }, 180_000)

  it('against `keyward serve --workers 2` on SQLite is refused by every worker', async () => {
    const proxy = await startCapturingProxy()
    const port = await freePort()
    const data = join(dir, 'sqlite-data')
    const config = join(dir, 'sqlite.yaml')
    await writeFile(config, `host: 127.0.0.1\nport: ${port}\nworkers: 2\npublicUrl: ${proxy.url}\ndataDir: ${data}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\n`)
    const p: ChildProcess = spawn(process.execPath, [join(REPO_ROOT, 'bin/keyward.js'), 'serve', '--config', config], { env: { ...process.env, KEYWARD_DEV: '1', KEYWARD_WORKERS: '' }, stdio: 'ignore' })
    const exited = new Promise((r) => p.once('exit', r))
    try {
      for (let i = 0; i < 600; i++) {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok) break
        await new Promise((res) => setTimeout(res, 100))
      }
      await admin(data, {}, 'policy', 'apply', join(dir, 'policy.yaml'))
      await admin(data, {}, 'secret', 'put', 'replay-secret', '--text', 'testOnly-replay-secret')
      proxy.target(port)
      const enrolToken = (JSON.parse(await admin(data, {}, 'enrol', 'token', '--workload', 'replay-svc-sqlite')) as { token: string }).token
      const captured = await captureRelease(proxy, 'sqlite', enrolToken)
      const results = await Promise.all(Array.from({ length: 4 }, () => replay(port, captured)))
      for (const r of results) expect(r).toMatchObject({ status: 401, code: 'ERR_DPOP_INVALID', message: expect.stringMatching(/replayed/) })
    } finally {
      p.kill('SIGTERM')
      await exited
      await proxy.close()
    }
  }, 180_000)
})
