// End-to-end benchmark over HTTP: `npm run bench -- e2e [--full] [--save] [--compare]`.
// A real broker process (bench/e2e-serve.mjs = `keyward serve` plus benchmark-only trust roots, loaded from dist/ as
// bin/keyward.js does) on
// 127.0.0.1, driven by autocannon. Each flow is attest → release (DPoP) for one TEE:
//   nitro    testOnly P-384 root → intermediate → leaf, ES384 COSE documents (AWS's algorithms)
//   sev-snp  testOnly RSA-4096-PSS ARK → ASK, ECDSA P-384 VCEK, signed Milan reports (AMD's)
// The challenges are fetched and the evidence signed before the timed run (the workload's cost,
// not the broker's; nonce TTL is raised to cover the run); the DPoP proof is signed per release.
// Per cell (TEE × store × workers × clients): flows/s, per-request p50/p99/p99.9, the largest RSS
// of a serving process, and the node:crypto floor of the same work on as many threads as the broker
// has workers (bench/floor.ts), measured in the same run. Cold start: spawn → first release.
// The load generator runs on the same machine (it shares the cores with the broker).
//   tpm      quotes by a software TPM (swtpm, ECC P-256 AK, ../shared/tools/tpm-quote.sh) over the
//            flows' binding digests, made in one batch per cell ahead of the run; the AK is pinned
//            (keyward's admin AK pinning) before the run. Needs swtpm and tpm2-tools.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createECDH, createPrivateKey, sign, createHash, randomUUID, type KeyObject, type JsonWebKey } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync, mkdirSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { createServer } from 'node:net'
import { cpus, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { encode } from 'cborg'
import { loadConfig } from '../src/broker/config.js'
import { buildDeps } from '../src/broker/server.js'
import { createLogger } from '../src/broker/logger.js'
import * as A from '../src/broker/admin-services.js'
import { bindingDigest, jwkThumbprint, thumbprintBytes } from '../src/protocol/binding.js'
import { toHex } from '../src/util/bytes.js'
import { OFF } from '../src/verifiers/sev-snp/layout.js'
import { createLocation, type Backend, type TestLocation } from '../test/store/helpers.js'
import { REPO_ROOT, SHARED_TOOLS } from '../test/helpers/vectors.js'
import { testOnlyPki as nitroPki, testOnlyPayload, signCose, type TestOnlyPki as NitroPki } from '../test/verifiers/nitro/fixtures.js'
import { testOnlyPki as snpPki, signReport, snpFile, writeTcb } from '../test/verifiers/sev-snp/helpers.js'
import { floorFlowsPerSecond, type FloorTee } from './floor.js'
import { percentile } from '../scripts/lib/percentile.js'
import { compareResults, machineKind, measureAgainstBaseline, cellKey, TOLERANCE, type BenchResults, type E2eCell, type OpenLoopRow } from './compare.js'

const args = new Set(process.argv.slice(2))
const mode: 'quick' | 'full' = args.has('--full') ? 'full' : 'quick'
const CLIENTS = (process.env.BENCH_CLIENTS?.split(',').map(Number) ?? [1, 16, 64]).filter((c) => [1, 16, 64].includes(c))
const FLOWS: Record<number, number> = mode === 'full' ? { 1: 400, 16: 2000, 64: 4000 } : { 1: 40, 16: 200, 64: 384 }
const FLOOR_MS = mode === 'full' ? 2000 : 600
/** Seconds of scheduled arrivals per open-loop run (runOpenLoop; fewer when 4,000 flows come sooner). */
const OPEN_LOOP_S = mode === 'full' ? 10 : 3
/** BENCH_OPEN_LOOP=0 skips the open-loop runs (they follow each TEE's 64-client cell). */
const OPEN_LOOP = process.env.BENCH_OPEN_LOOP !== '0'
/** The TPM cells need swtpm and tpm2-tools (scripts/ensure-deps.sh installs them). */
const HAVE_SWTPM = ['swtpm', 'tpm2_quote'].every((bin) => {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})
const TEES: FloorTee[] = (process.env.BENCH_TEES?.split(',') as FloorTee[] | undefined) ?? ['nitro', 'sev-snp', ...(HAVE_SWTPM ? (['tpm'] as const) : [])]
// A swtpm quote costs ~75 ms of the workload's time, made before the run: fewer TPM flows.
const TPM_FLOWS: Record<number, number> = mode === 'full' ? { 1: 100, 16: 500, 64: 1000 } : { 1: 20, 16: 96, 64: 192 }
/** The TPM's PCRs after a fresh start (nothing extended): 0–7 and 23, sha256, all zero. */
const TPM_PCR_SELECTION = 'sha256:0,1,2,3,4,5,6,7,23'
/** A TPM's `measurement` is its quote's pcrDigest: SHA-256 over the selected PCR values in order. */
const TPM_MEASUREMENT = createHash('sha256').update(Buffer.alloc(9 * 32)).digest('hex')
const STORES: Backend[] = (process.env.BENCH_STORES?.split(',') as Backend[] | undefined) ?? ['sqlite', 'postgres']
const WORKERS = (process.env.BENCH_WORKERS?.split(',').map(Number) ?? [1, 2]) as number[]

interface Trust {
  nitro: NitroPki
  snp: { ask: Uint8Array; vcek: Uint8Array; vcekKey: KeyObject; report: Uint8Array; measurement: string }
  file: string
}

interface Flow {
  body: string
  key: KeyObject
  jwk: JsonWebKey
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
const b64url = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url')

async function makeTrust(dir: string): Promise<Trust> {
  const nitro = await nitroPki(new Date())
  const pki = await snpPki('Milan', 'ARK-Milan', { rsaBits: 4096 })
  const report = snpFile('milan-v3-oak.bin').slice()
  const tcb = { bl: 4, tee: 0, snp: 24, ucode: 219 }
  writeTcb(report, OFF.REPORTED_TCB, tcb)
  const { vcek, key } = await pki.issueVcek({ tcb, hwId: report.slice(OFF.CHIP_ID, OFF.CHIP_ID + 64) })
  const file = join(dir, 'trust.json')
  writeFileSync(file, JSON.stringify({ nitroRoot: b64(nitro.root.der), snpArk: b64(new Uint8Array(pki.ark.cert.raw)) }))
  const measurement = toHex(report.subarray(OFF.MEASUREMENT, OFF.MEASUREMENT + 48))
  return { nitro, snp: { ask: new Uint8Array(pki.ask.cert.raw), vcek: new Uint8Array(vcek.cert.raw), vcekKey: key, report, measurement }, file }
}

const policy = (tee: FloorTee): string => `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata: { name: bench-${tee} }
spec:
  tees: [${tee}]
  conditions:
    - { name: measurement-known, expr: 'claims.measurement in refs["bench-${tee}"]' }
  grants: { secrets: [bench-secret] }
`

/** Policies, reference values and the secret, written through the store before the broker starts. */
async function provision(dataDir: string, databaseUrl: string | undefined, trust: Trust): Promise<void> {
  const config = loadConfig({ overrides: { dataDir, ...(databaseUrl ? { databaseUrl } : {}), logLevel: 'silent' } })
  const deps = await buildDeps(config, createLogger('silent'))
  try {
    const refs: Record<FloorTee, string> = { nitro: toHex(new Uint8Array(48).fill(1)), 'sev-snp': trust.snp.measurement, tpm: TPM_MEASUREMENT }
    // Nitro always: the cold start releases through it.
    for (const tee of new Set<FloorTee>(['nitro', ...TEES])) {
      await A.applyPolicy(deps, policy(tee), 'bench')
      await A.addReferenceValue(deps, { set: `bench-${tee}`, tee, value: refs[tee], source: 'bench testOnly' }, 'bench')
    }
    await A.putSecret(deps, 'bench-secret', { text: 'bench-value' }, 'bench')
  } finally {
    await deps.store.close()
  }
}

/** Pins the AK of a batch of swtpm quotes (keyward's admin AK pinning), on the running broker's store. */
async function pinAk(dataDir: string, databaseUrl: string | undefined, akPub: Uint8Array): Promise<void> {
  const deps = await buildDeps(loadConfig({ overrides: { dataDir, ...(databaseUrl ? { databaseUrl } : {}), logLevel: 'silent' } }), createLogger('silent'))
  try {
    await A.pinAk(deps, 'bench-tpm', akPub, 'bench')
  } finally {
    await deps.store.close()
  }
}

/**
 * TPM flows: one swtpm run quotes every flow's binding digest (the workload's cost, paid before
 * the timed run), with a fresh ECC AK that is then pinned for the workload `bench-tpm`.
 */
async function makeTpmFlows(dir: string, store: { dataDir: string; databaseUrl: string | undefined }, nonces: string[]): Promise<Flow[]> {
  const keys = await Promise.all(
    nonces.map(async (nonce) => {
      const { privateKey, jwk } = sessionKey()
      const binding = bindingDigest(Buffer.from(nonce, 'base64url'), thumbprintBytes(await jwkThumbprint(jwk as Parameters<typeof jwkThumbprint>[0])))
      return { nonce, privateKey, jwk, binding: toHex(binding) }
    }),
  )
  const out = mkdtempSync(join(dir, 'tpm-quotes-'))
  execFileSync(join(SHARED_TOOLS, 'tpm-quote.sh'), ['-o', out, '-a', 'ecc', '-l', TPM_PCR_SELECTION, ...keys.flatMap((k) => ['-n', k.binding])], { stdio: 'pipe', timeout: 600_000, maxBuffer: 64 * 1024 * 1024 })
  const lines = readFileSync(join(out, 'evidence.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { nonce: string; quote: string; signature: string; pcrsTpm2ToolsBin: string; akPub: string })
  rmSync(out, { recursive: true, force: true })
  if (lines.length !== keys.length) throw new Error(`tpm-quote.sh made ${lines.length} quotes for ${keys.length} nonces`)
  await pinAk(store.dataDir, store.databaseUrl, Buffer.from(lines[0]!.akPub, 'base64'))
  return keys.map((k, i) => {
    const q = lines[i]!
    if (q.nonce !== k.binding) throw new Error('tpm-quote.sh answered out of order')
    const evidence = { ak: q.akPub, quote: q.quote, signature: q.signature, pcrs: q.pcrsTpm2ToolsBin }
    return { body: JSON.stringify({ tee: 'tpm', nonce: k.nonce, key: k.jwk, evidence }), key: k.privateKey, jwk: k.jwk }
  })
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

interface Broker {
  url: string
  proc: ChildProcess
  stop(): Promise<void>
}

function writeConfig(dir: string, o: { port: number; dataDir: string; databaseUrl?: string; workers: number }): string {
  const file = join(dir, `config-${o.port}.json`)
  const big = { ratePerSecond: 1e6, burst: 1e6 }
  // All load comes from one address and few keys, so the rate limits (and the per-address bound on
  // requests in flight) are lifted; the challenge cap stays at its default (a cell fetches at most
  // 4,000 challenges ahead, and spent ones are pruned).
  writeFileSync(
    file,
    JSON.stringify({ host: '127.0.0.1', port: o.port, dataDir: o.dataDir, ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}), workers: o.workers, logLevel: 'warn', nonceTtlSeconds: 3600, limits: { perAddress: big, perWorkload: big, maxInflightPerAddress: 1e6 } }),
  )
  return file
}

// BENCH_PROFILE_DIR=DIR: each broker process writes a V8 CPU profile there when it stops
// (summarize with scripts/cpuprofile-summary.mjs).
// The broker runs with the node flags the container image gives it (docker/Dockerfile's
// ENTRYPOINT: the heap limit), so that its memory is the shipped broker's.
// BENCH_BROKER_NODE_ARGS='--flag …' replaces them (V8 heap settings, say; '' for none), for the
// broker processes only, not for the load generator.
const dockerfile = readFileSync(join(REPO_ROOT, 'docker/Dockerfile'), 'utf8')
function imageNodeFlags(): string[] {
  const m = /^ENTRYPOINT \["node", ((?:"--[^"]+", )*)"bin\/keyward\.js"\]$/m.exec(dockerfile)
  if (!m) throw new Error('docker/Dockerfile: no ENTRYPOINT ["node", <flags>, "bin/keyward.js"] to take the node flags from')
  return [...m[1]!.matchAll(/"([^"]+)"/g)].map((f) => f[1]!)
}
const brokerNodeArgs = process.env.BENCH_BROKER_NODE_ARGS !== undefined ? process.env.BENCH_BROKER_NODE_ARGS.split(' ').filter(Boolean) : imageNodeFlags()
/** The image's glibc malloc setting (ENV MALLOC_ARENA_MAX in docker/Dockerfile); the bench's own environment wins. */
const brokerEnv: Record<string, string> = (() => {
  const m = /^ENV MALLOC_ARENA_MAX=(\d+)$/m.exec(dockerfile)
  const env: Record<string, string> = {}
  if (m && process.env.MALLOC_ARENA_MAX === undefined) env.MALLOC_ARENA_MAX = m[1]!
  return env
})()
const profileArgs = [
  ...(process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : []),
  ...brokerNodeArgs,
]

function spawnBroker(config: string, trustFile: string, port: number): Broker {
  const proc = spawn(process.execPath, [...profileArgs, join(REPO_ROOT, 'bench/e2e-serve.mjs'), config, trustFile], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...brokerEnv } })
  const killOnExit = (): void => void proc.kill('SIGTERM')
  process.once('exit', killOnExit)
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    async stop() {
      process.off('exit', killOnExit)
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGTERM')
        await exited
      }
    },
  }
}

/** Polls /healthz until the broker answers (bench only: a spawn has no other readiness signal under cluster). */
async function waitReady(b: Broker): Promise<void> {
  for (;;) {
    if (b.proc.exitCode !== null) throw new Error(`broker exited ${b.proc.exitCode}`)
    try {
      if ((await fetch(`${b.url}/healthz`)).ok) return
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function challenge(url: string): Promise<string> {
  const r = await fetch(`${url}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  if (r.status !== 200) throw new Error(`challenge ${r.status}: ${await r.text()}`)
  return ((await r.json()) as { nonce: string }).nonce
}

/**
 * A workload's P-256 session key: the private KeyObject and the public JWK. Made with createECDH
 * and imported, not with generateKeyPairSync: exporting a generateKeyPairSync key can deadlock
 * Node 20 (src/broker/jwe.ts says how), and the bench makes thousands of them.
 */
function sessionKey(): { privateKey: KeyObject; jwk: JsonWebKey } {
  const ecdh = createECDH('prime256v1')
  const point = ecdh.generateKeys()
  const jwk = { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }
  const d = ecdh.getPrivateKey() // leading zero bytes dropped: a JWK's d is the full 32
  const privateKey = createPrivateKey({ key: { ...jwk, d: Buffer.concat([Buffer.alloc(32 - d.length), d]).toString('base64url') }, format: 'jwk' })
  return { privateKey, jwk }
}

async function makeFlow(trust: Trust, tee: Exclude<FloorTee, 'tpm'>, nonce: string): Promise<Flow> {
  const { privateKey, jwk } = sessionKey()
  const jktBytes = thumbprintBytes(await jwkThumbprint(jwk as Parameters<typeof jwkThumbprint>[0]))
  const n = Buffer.from(nonce, 'base64url')
  const binding = bindingDigest(n, jktBytes)
  let evidence: Record<string, unknown>
  if (tee === 'nitro') {
    const payload = testOnlyPayload(trust.nitro, { user_data: binding, nonce: n, timestamp: Date.now() })
    evidence = { document: b64(signCose(encode(payload), trust.nitro.leaf.key)) }
  } else {
    const r = trust.snp.report.slice()
    r.fill(0, OFF.REPORT_DATA, OFF.REPORT_DATA + 64)
    r.set(binding, OFF.REPORT_DATA)
    evidence = { report: b64(signReport(r, trust.snp.vcekKey)), vcek: b64(trust.snp.vcek), chain: [b64(trust.snp.ask)] }
  }
  return { body: JSON.stringify({ tee, nonce, key: jwk, evidence }), key: privateKey, jwk }
}

/** A DPoP proof (RFC 9449) signed synchronously, as autocannon's setupRequest must be. */
function dpopProof(f: Flow, url: string, token: string): string {
  const h = b64url(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: f.jwk }))
  const p = b64url(JSON.stringify({ jti: randomUUID(), htm: 'GET', htu: url, iat: Math.floor(Date.now() / 1000), ath: createHash('sha256').update(token).digest('base64url') }))
  return `${h}.${p}.${b64url(sign('sha256', Buffer.from(`${h}.${p}`), { key: f.key, dsaEncoding: 'ieee-p1363' }))}`
}

/** The broker process and its cluster workers (from /proc; Linux only, else the process alone). */
function brokerPids(pid: number): number[] {
  const kids: number[] = []
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim()
      if (c) kids.push(...c.split(/\s+/).map(Number))
    }
  } catch {
    /* gone */
  }
  return [pid, ...kids]
}

/** RSS (MB) of the broker process and its cluster workers, read from /proc. */
function rssOf(pid: number): number[] {
  return brokerPids(pid).map((p) => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))
      return m ? Number(m[1]) / 1024 : 0
    } catch {
      return 0
    }
  })
}

/** Samples the largest RSS (MB) of the broker's processes every 100 ms; the returned function stops and gives the peak. */
function rssPeak(pid: number): () => number {
  const rss: number[] = []
  const sample = (): void => void rss.push(Math.max(...rssOf(pid)))
  const sampler = setInterval(sample, 100)
  return () => {
    clearInterval(sampler)
    sample()
    return Math.round(Math.max(...rss))
  }
}

/** Fields after the parenthesized name of /proc/<pid>/stat (field 3 is [0]); null once the process is gone. */
function procStat(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  } catch {
    return null
  }
}

/** Clock ticks to ms (USER_HZ is 100 on Linux). */
const ticksMs = (...ticks: (string | undefined)[]): number => ticks.reduce((a, t) => a + Number(t ?? 0), 0) * 10

/** CPU ms (user + system, every thread) a process has used; 0 once it is gone. */
function cpuMsOf(pid: number): number {
  const f = procStat(pid)
  return f ? ticksMs(f[11], f[12]) : 0
}

/**
 * CPU ms used by the PostgreSQL server on this machine (the bench's database is the only load on
 * it): every live postgres process, plus what the postmaster's exited children used (its cutime
 * and cstime: backends and autovacuum workers come and go during a cell).
 */
function postgresCpuMs(): number {
  const live = new Map<number, string[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== 'postgres') continue
    } catch {
      continue
    }
    const f = procStat(Number(d))
    if (f) live.set(Number(d), f)
  }
  let ms = 0
  for (const f of live.values()) {
    ms += ticksMs(f[11], f[12])
    if (!live.has(Number(f[1]))) ms += ticksMs(f[13], f[14]) // the postmaster: its parent is not a postgres process
  }
  return ms
}

/**
 * CPU ms the broker and, on PostgreSQL, its database spend from now until the returned function
 * is called: the broker's own cost per flow, apart from the load generator that shares the cores.
 */
function cpuMeter(pid: number, postgres: boolean): () => { brokerMs: number; dbMs: number } {
  const pids = brokerPids(pid)
  const brokerMs = (): number => pids.reduce((a, p) => a + cpuMsOf(p), 0)
  const dbMs = (): number => (postgres ? postgresCpuMs() : 0)
  const broker0 = brokerMs()
  const db0 = dbMs()
  return () => ({ brokerMs: brokerMs() - broker0, dbMs: dbMs() - db0 })
}

interface CellStore {
  dir: string
  dataDir: string
  databaseUrl: string | undefined
}

/** `n` challenges, 16 at a time: fetched before a timed run, like the evidence (the workload's cost). */
async function challenges(url: string, n: number): Promise<string[]> {
  const nonces: string[] = []
  for (let i = 0; i < n; i += 16) nonces.push(...(await Promise.all(Array.from({ length: Math.min(16, n - i) }, () => challenge(url)))))
  return nonces
}

/**
 * Flows run right before each timed run, on evidence made with the cell's, and not counted. Making
 * a cell's evidence leaves the broker idle (a swtpm quote takes ~75 ms: ~20 s before a 64-client
 * TPM cell), and a broker that has idled 20 s spends a fifth to a third more CPU per flow on its
 * next few hundred flows (Nitro, SQLite, alternating cells: 4.0–5.0 ms against 3.0–3.8); only the TPM
 * cells idled, so they looked dearer per flow than Nitro's although their verifier is cheaper.
 */
const warmFlows = (clients: number): number => Math.max(16, clients)

async function runCell(b: Broker, trust: Trust, at: CellStore, tee: FloorTee, clients: number, flowsWanted: number): Promise<Omit<E2eCell, 'store' | 'workers' | 'floorFlowsPerSec' | 'ratio'>> {
  const warm = warmFlows(clients)
  const nonces = await challenges(b.url, warm + flowsWanted + clients)
  const flows: Flow[] = []
  if (tee === 'tpm') flows.push(...(await makeTpmFlows(at.dir, at, nonces)))
  else for (const n of nonces) flows.push(await makeFlow(trust, tee, n))
  let next = 0
  let failure = ''
  const secretUrl = `${b.url}/v1/secrets/bench-secret`
  interface Ctx {
    flow?: Flow
    token?: string
  }
  // autocannon notices the end of an `amount` run only at its next one-second tick, so its own
  // duration rounds every run up to whole seconds (a 4.1 s run of 384 flows would read 77 flows/s
  // instead of 94): the rate is taken from the first request sent to the last answer received.
  let firstSentAt = 0
  let lastAnsweredAt = 0
  const answered = (): void => void (lastAnsweredAt = performance.now())
  const drive = (amountFlows: number) =>
    autocannon({
      url: b.url,
      connections: clients,
      amount: amountFlows * 2,
      timeout: 120, // a loaded machine: an attest timing out would turn its release into a 401
      requests: [
        {
          method: 'POST',
          path: '/v1/attest',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req, context) => {
            const f = flows[next++]
            if (!f) throw new Error('out of prepared evidence')
            if (firstSentAt === 0) firstSentAt = performance.now()
            ;(context as Ctx).flow = f
            return { ...req, body: f.body }
          },
          onResponse: (status, body, context) => {
            answered()
            if (status === 200) (context as Ctx).token = (JSON.parse(body) as { token: string }).token
            else failure ||= `attest ${status}: ${body}`
          },
        },
        {
          method: 'GET',
          path: '/v1/secrets/bench-secret',
          setupRequest: (req, context) => {
            const c = context as Ctx
            return { ...req, headers: { ...req.headers, authorization: `DPoP ${c.token ?? ''}`, dpop: dpopProof(c.flow!, secretUrl, c.token ?? '') } }
          },
          onResponse: (status, body) => {
            answered()
            if (status !== 200) failure ||= `release ${status}: ${body}`
          },
        },
      ],
    })
  const warmed = await drive(warm)
  if (warmed.errors + warmed.timeouts + warmed.non2xx > 0) throw new Error(`${tee} c=${clients}: the warm-up failed: ${failure.slice(0, 300)}`)
  firstSentAt = 0
  const rssMaxMb = rssPeak(b.proc.pid!)
  const cpu = cpuMeter(b.proc.pid!, at.databaseUrl !== undefined)
  const result = await drive(flowsWanted)
  const used = cpu()
  const peakMb = rssMaxMb()
  const errors = result.errors + result.timeouts + result.non2xx
  const flowsDone = Math.floor(result.requests.total / 2)
  if (errors > 0) console.error(`  ${tee} c=${clients}: ${errors} errors; first: ${failure.slice(0, 300)}`)
  const lat = result.latency as unknown as Record<string, number>
  return {
    tee,
    clients,
    flows: flowsDone,
    flowsPerSec: result.requests.total / 2 / ((lastAnsweredAt - firstSentAt) / 1000),
    brokerCpuMsPerFlow: used.brokerMs / flowsDone,
    dbCpuMsPerFlow: used.dbMs / flowsDone,
    p50Ms: lat['p50']!,
    p99Ms: lat['p99']!,
    p999Ms: lat['p99_9']!,
    errors,
    rssMaxMb: peakMb,
  }
}

/** One HTTP/1.1 request on `agent`; the body read whole. */
function send(agent: Agent, url: string, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * Open loop: flows (attest, then its release at once) start on a fixed schedule, `rate` per
 * second, whatever the broker answers, over at most `connections` keep-alive connections. An
 * attest's latency runs from the moment its flow was due, so a wait for a free connection or
 * behind a backlog counts: a slow broker cannot slow down the arrivals that measure it, as it
 * does a closed loop's (coordinated omission). Evidence is made before the run, as in runCell.
 */
async function runOpenLoop(b: Broker, trust: Trust, tee: Exclude<FloorTee, 'tpm'>, rate: number, connections: number): Promise<Omit<OpenLoopRow, 'store' | 'workers' | 'basis'>> {
  // At most 4,000 challenges fetched ahead, as a closed-loop cell: they all count against the
  // broker's default cap on outstanding challenges (10,000) until spent.
  const n = Math.max(20, Math.min(4000, Math.round(rate * OPEN_LOOP_S)))
  const flows: Flow[] = []
  for (const nonce of await challenges(b.url, n)) flows.push(await makeFlow(trust, tee, nonce))
  const agent = new Agent({ keepAlive: true, maxSockets: connections })
  const secretUrl = `${b.url}/v1/secrets/bench-secret`
  const latencies: number[] = []
  let errors = 0
  let failure = ''
  const rssMaxMb = rssPeak(b.proc.pid!)
  const flow = async (f: Flow, due: number): Promise<void> => {
    try {
      const a = await send(agent, `${b.url}/v1/attest`, 'POST', { 'content-type': 'application/json' }, f.body)
      const attested = performance.now()
      latencies.push(attested - due)
      if (a.status !== 200) throw new Error(`attest ${a.status}: ${a.body}`)
      const token = (JSON.parse(a.body) as { token: string }).token
      const r = await send(agent, secretUrl, 'GET', { authorization: `DPoP ${token}`, dpop: dpopProof(f, secretUrl, token) })
      latencies.push(performance.now() - attested)
      if (r.status !== 200) throw new Error(`release ${r.status}: ${r.body}`)
    } catch (e) {
      errors++
      failure ||= e instanceof Error ? e.message : String(e)
    }
  }
  const t0 = performance.now() + 20
  const running: Promise<void>[] = []
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait >= 1) await new Promise((r) => setTimeout(r, wait))
    running.push(flow(flows[i]!, due))
  }
  await Promise.all(running)
  const seconds = (performance.now() - t0) / 1000
  const peakMb = rssMaxMb()
  agent.destroy()
  if (errors > 0) console.error(`  open loop ${tee} at ${rate.toFixed(0)}/s: ${errors} errors; first: ${failure.slice(0, 300)}`)
  const sorted = latencies.sort((x, y) => x - y)
  return {
    tee,
    connections,
    offeredFlowsPerSec: rate,
    flows: n,
    flowsPerSec: n / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    errors,
    rssMaxMb: peakMb,
  }
}

/** Spawn → first successful release (Nitro), on a provisioned data dir. */
async function coldStart(trust: Trust, config: string, port: number): Promise<number> {
  const t0 = performance.now()
  const b = spawnBroker(config, trust.file, port)
  try {
    await waitReady(b)
    const f = await makeFlow(trust, 'nitro', await challenge(b.url))
    const a = await fetch(`${b.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: f.body })
    if (a.status !== 200) throw new Error(`cold attest ${a.status}: ${await a.text()}`)
    const { token } = (await a.json()) as { token: string }
    const url = `${b.url}/v1/secrets/bench-secret`
    const r = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: dpopProof(f, url, token) } })
    if (r.status !== 200) throw new Error(`cold release ${r.status}: ${await r.text()}`)
    return performance.now() - t0
  } finally {
    await b.stop()
  }
}

const fmt = (x: number, w = 7, d = 0): string => x.toFixed(d).padStart(w)
/**
 * CPU per flow: the broker's processes, PostgreSQL's, and the floor's (its threads are busy the
 * whole time: threads × 1000 / flows per second); their ratio is the broker's efficiency over
 * HTTP whatever the load generator takes of the shared cores.
 */
function cpuColumns(c: E2eCell): string {
  const floorMs = (c.workers * 1000) / c.floorFlowsPerSec
  const spent = (c.brokerCpuMsPerFlow ?? NaN) + (c.dbCpuMsPerFlow ?? 0)
  return `${fmt(c.brokerCpuMsPerFlow ?? NaN, 20, 2)} ${fmt(c.dbCpuMsPerFlow ?? 0, 4, 2)} ${fmt(floorMs, 6, 2)} ${fmt(floorMs / spent, 6, 3)}`
}
/** What the broker processes ran: bin/launch.js picks dist/ when built (scripts/ensure-deps.sh builds it). */
const builtOrSources = (): string => (!process.env.KEYWARD_DEV && existsSync(join(REPO_ROOT, 'dist/src/broker/server.js')) ? 'built dist/' : 'sources through tsx')

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-e2e-bench-'))
  const locations: TestLocation[] = []
  const cells: E2eCell[] = []
  const openLoop: OpenLoopRow[] = []
  let coldStartMs = NaN
  try {
    const kind = machineKind()
    const resultsDir = join(REPO_ROOT, 'bench/results')
    const committed = join(resultsDir, `${kind}.json`)
    // --compare: the committed ratios, so that a cell below its own is measured again at once.
    let baseline: BenchResults | undefined
    if (args.has('--compare')) {
      if (!existsSync(committed)) throw new Error(`no committed results for machine kind ${kind} (${committed}); run with --save first`)
      baseline = JSON.parse(readFileSync(committed, 'utf8')) as BenchResults
    }
    const baseRatio = new Map(baseline?.cells.map((c) => [cellKey(c), c.ratio]))
    const trust = await makeTrust(dir)
    // Measured right after each cell, so that both see the same load on a shared machine.
    const floor = (tee: FloorTee, threads: number): Promise<number> => floorFlowsPerSecond(tee, threads, FLOOR_MS)
    console.log(`keyward e2e over HTTP (${mode}): node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}; flows = attest + release; latency per request; broker node flags: ${brokerNodeArgs.join(' ') || '(none)'}${brokerEnv.MALLOC_ARENA_MAX ? `, MALLOC_ARENA_MAX=${brokerEnv.MALLOC_ARENA_MAX}` : ''}`)
    console.log('tee      store     workers clients   flows/s  floor/s  ratio   p50ms   p99ms p99.9ms  rssMB errors  cpu ms/flow: broker   db  floor  ratio')
    for (const store of STORES) {
      const loc = await createLocation(store)
      locations.push(loc)
      const dataDir = store === 'sqlite' ? loc.where : mkdtempSync(join(dir, 'pg-data-'))
      const databaseUrl = store === 'postgres' ? loc.where : undefined
      await provision(dataDir, databaseUrl, trust)
      for (const workers of WORKERS) {
        const port = await freePort()
        const config = writeConfig(dir, { port, dataDir, ...(databaseUrl ? { databaseUrl } : {}), workers })
        if (store === 'sqlite' && workers === 1) coldStartMs = await coldStart(trust, config, port)
        const b = spawnBroker(config, trust.file, port)
        try {
          await waitReady(b)
          for (const tee of TEES) {
            const at: CellStore = { dir, dataDir, databaseUrl }
            await runCell(b, trust, at, tee, 4, 20) // warm-up: JIT, caches, connection pools
            for (const clients of CLIENTS) {
              const measure = async (): Promise<E2eCell> => {
                const r = await runCell(b, trust, at, tee, clients, (tee === 'tpm' ? TPM_FLOWS : FLOWS)[clients]!)
                const fl = await floor(tee, workers)
                return { ...r, store, workers, floorFlowsPerSec: fl, ratio: r.flowsPerSec / fl }
              }
              const { cell, attempts } = await measureAgainstBaseline(measure, baseRatio.get(cellKey({ tee, store, workers, clients })))
              cells.push(cell)
              console.log(
                `${tee.padEnd(8)} ${store.padEnd(9)} ${String(workers).padStart(7)} ${String(clients).padStart(7)} ${fmt(cell.flowsPerSec, 9)} ${fmt(cell.floorFlowsPerSec, 8)} ${fmt(cell.ratio, 6, 3)} ${fmt(cell.p50Ms, 7, 1)} ${fmt(cell.p99Ms, 7, 1)} ${fmt(cell.p999Ms, 7, 1)} ${fmt(cell.rssMaxMb, 6)} ${String(cell.errors).padStart(6)} ${cpuColumns(cell)}${attempts > 1 ? `  (best of ${attempts})` : ''}`,
              )
            }
            // TPM quotes cost the workload ~75 ms each, too many to make ahead at these rates.
            const busiest = cells.at(-1)
            if (OPEN_LOOP && tee !== 'tpm' && busiest?.clients === 64) {
              const bases = [['goal', busiest.floorFlowsPerSec / 2], ['half-capacity', busiest.flowsPerSec / 2]] as const
              for (const [basis, rate] of bases) openLoop.push({ ...(await runOpenLoop(b, trust, tee, rate, 64)), store, workers, basis })
            }
          }
        } finally {
          await b.stop()
        }
      }
    }
    if (openLoop.length > 0) {
      console.log(`open loop: flows due at a fixed rate for ${OPEN_LOOP_S} s (at most 4,000 flows) over ≤ 64 connections; latency per request, an attest's from when its flow was due`)
      console.log('tee      store     workers basis          offered/s  done/s   p50ms   p99ms p99.9ms  rssMB errors')
      for (const o of openLoop) {
        console.log(`${o.tee.padEnd(8)} ${o.store.padEnd(9)} ${String(o.workers).padStart(7)} ${o.basis.padEnd(14)} ${fmt(o.offeredFlowsPerSec, 9)} ${fmt(o.flowsPerSec, 7)} ${fmt(o.p50Ms, 7, 1)} ${fmt(o.p99Ms, 7, 1)} ${fmt(o.p999Ms, 7, 1)} ${fmt(o.rssMaxMb, 6)} ${String(o.errors).padStart(6)}`)
      }
    }
    // Measured only in the SQLite one-worker configuration (the embedded default the goal names).
    if (!Number.isNaN(coldStartMs)) console.log(`cold start (spawn → first release, SQLite, 1 worker, ${builtOrSources()}): ${coldStartMs.toFixed(0)} ms`)
    const results: BenchResults = {
      machineKind: kind,
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memGb: Math.round(totalmem() / 2 ** 30), node: process.version, note: process.env.BENCH_NOTE ?? '' },
      date: new Date().toISOString(),
      mode,
      coldStartMs: Math.round(coldStartMs),
      cells,
      openLoop,
    }
    writeFileSync(join(dir, 'latest.json'), JSON.stringify(results, null, 2))
    if (args.has('--save')) {
      mkdirSync(resultsDir, { recursive: true })
      writeFileSync(committed, JSON.stringify(results, null, 2) + '\n')
      console.log(`saved ${committed}`)
    }
    if (openLoop.some((o) => o.errors > 0)) process.exitCode = 1
    if (baseline) {
      const { regressions, compared } = compareResults(baseline, results)
      console.log(`compared ${compared} ratios with ${committed} (a cell below its own was measured up to 3 times)`)
      for (const r of regressions) console.log(`REGRESSION ${r.key}: ratio ${r.current.toFixed(3)} < ${r.baseline.toFixed(3)} × ${1 - TOLERANCE}`)
      if (regressions.length > 0 || cells.some((c) => c.errors > 0)) process.exitCode = 1
    } else if (cells.some((c) => c.errors > 0)) process.exitCode = 1
  } finally {
    for (const l of locations) await l.cleanup()
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
