// npm run soak -- MINUTES [single|replicas|both]
//
// Drives the full flow at a steady rate against real `keyward serve` processes: one broker on
// SQLite ("single"), then two replicas on one PostgreSQL database ("replicas"), each for MINUTES.
// One iteration: challenge + attest on swtpm (every RE_ATTEST iterations, alternating replicas),
// release of a secret, and every WRITE_EVERY iterations a new secret version, every POLICY_EVERY
// a policy apply followed by re-attestation. Per minute it reports operations, errors, latency
// percentiles and each broker's RSS. It fails (exit 1) on any error, or when a broker's RSS grows
// more than RSS_BOUND_MIB over its level at the end of warm-up (the first third of the run,
// at most two minutes). Prints one JSON summary line last, prefixed "soak-summary ".
import { writeFile, mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLocation, type TestLocation } from '../test/store/helpers.js'
import { startSwtpm } from './lib/swtpm.js'
import { percentile } from './lib/percentile.js'
import { startBrokerProcess, type BrokerProcess } from '../test/helpers/broker-process.js'
import { runBin } from '../test/enclave-client/helpers/proc.js'
import { createClient, type KeywardClient } from '../enclave-client/src/index.js'
import { createTpmCollector } from '../enclave-client/src/collectors/tpm.js'

const RATE_PER_SECOND = 2
const RE_ATTEST = 5
const WRITE_EVERY = 10
const POLICY_EVERY = 40
const RSS_BOUND_MIB = 64

const policy = (rev: number) => `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: soak
spec:
  tees: [tpm]
  conditions:
    - name: registered-ak
      expr: claims.details.akAttributesVerified == true
  grants:
    secrets: [soak-secret]
# revision ${rev}
`

interface Minute {
  minute: number
  ops: number
  errors: number
  p50: number
  p95: number
  p99: number
  max: number
  rssMiB: number[]
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Math.round(Number(m[1]) / 1024) : 0
}

const pct = (sorted: number[], p: number): number => Math.round(percentile(sorted, p) * 10) / 10

async function soak(mode: 'single' | 'replicas', minutes: number) {
  const dir = await mkdtemp(join(tmpdir(), 'kw-soak-'))
  const tpm = await startSwtpm({ ekCert: true })
  const brokers: BrokerProcess[] = []
  const clients: KeywardClient[] = []
  let db: TestLocation | undefined
  const env: NodeJS.ProcessEnv = { DATABASE_URL: '' }
  try {
    if (mode === 'replicas') {
      db = await createLocation('postgres')
      env.DATABASE_URL = db.where
    }
    const dataDir = join(dir, 'data')
    const ca = join(dir, 'ek-ca.pem')
    await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
    const config = join(dir, 'keyward.yaml')
    await writeFile(config, `host: 127.0.0.1\nport: 0\nworkers: 1\ndataDir: ${dataDir}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\nlimits:\n  perAddress: { ratePerSecond: 100000, burst: 100000 }\n  perWorkload: { ratePerSecond: 100000, burst: 100000 }\n`)  // one process per broker (its RSS is what is watched); load from one address: above the per-address abuse limit
    const cred = await runBin('keyward', ['credential', 'create', 'admin', 'soak', '--data-dir', dataDir], { env })
    if (cred.code !== 0) throw new Error(cred.stderr)
    const token = cred.stdout.trim()
    for (let i = 0; i < (mode === 'replicas' ? 2 : 1); i++) brokers.push(await startBrokerProcess(config, env))
    const admin = async (method: string, path: string, body: unknown) => {
      const r = await fetch(`${brokers[0]!.url}/v1/admin${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`)
      return (await r.json()) as Record<string, unknown>
    }
    let rev = 0
    await admin('POST', '/policies', { source: policy(rev) })
    await admin('PUT', '/secrets/soak-secret', { text: 'soak-value-0' })
    const collector = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state') })
    for (const b of brokers) clients.push(createClient({ broker: b.url, collector, retries: 0 }))
    const enrol = await admin('POST', '/enrolments/tokens', { workload: 'soak-svc' })
    const registered = await clients[0]!.register('soak-svc', { enrolToken: String(enrol.token) })
    if (registered.status !== 'enrolled') throw new Error(`soak: the TPM did not enrol (${registered.status})`)

    const minutesOut: Minute[] = []
    const errors: string[] = []
    let latencies: number[] = []
    let ops = 0
    let errs = 0
    let rss: number[][] = brokers.map(() => [])
    const start = Date.now()
    const end = start + minutes * 60_000
    const minuteMs = Math.min(60_000, minutes * 60_000)
    let nextMinute = start + minuteMs
    const warmupEnd = start + Math.min(2 * 60_000, (minutes * 60_000) / 3)
    let warmRss: number[] | undefined
    let secretValue = 'soak-value-0'
    const flush = () => {
      const sorted = [...latencies].sort((a, b) => a - b)
      const m: Minute = { minute: minutesOut.length + 1, ops, errors: errs, p50: pct(sorted, 50), p95: pct(sorted, 95), p99: pct(sorted, 99), max: pct(sorted, 100), rssMiB: rss.map((r) => Math.max(0, ...r)) }
      minutesOut.push(m)
      console.log(`[soak ${mode}] minute ${m.minute}: ${m.ops} ops, ${m.errors} errors, latency ms p50 ${m.p50} p95 ${m.p95} p99 ${m.p99} max ${m.max}, RSS MiB ${m.rssMiB.join(' / ')}`)
      latencies = []
      ops = 0
      errs = 0
      rss = brokers.map(() => [])
    }
    for (let i = 0; Date.now() < end; i++) {
      const due = start + (i * 1000) / RATE_PER_SECOND
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()))
      const client = clients[Math.floor(i / RE_ATTEST) % clients.length]!
      const t0 = performance.now()
      try {
        if (i % POLICY_EVERY === POLICY_EVERY - 1) {
          await admin('POST', '/policies', { source: policy(++rev) })
          for (const c of clients) await c.attest() // tokens of the old policy version no longer release
        } else if (i % WRITE_EVERY === WRITE_EVERY - 1) {
          secretValue = `soak-value-${i}`
          await admin('PUT', '/secrets/soak-secret', { text: secretValue })
        } else {
          if (i % RE_ATTEST === 0) await client.attest()
          const got = new TextDecoder().decode(await client.getSecret('soak-secret'))
          if (got !== secretValue) throw new Error(`released ${got}, expected ${secretValue}`)
        }
        latencies.push(performance.now() - t0)
      } catch (e) {
        errs++
        if (errors.length < 20) errors.push(`${new Date().toISOString()} iteration ${i}: ${e instanceof Error ? e.message : String(e)}`)
      }
      ops++
      brokers.forEach((b, k) => rss[k]!.push(rssMiB(b.process.pid!)))
      if (!warmRss && Date.now() >= warmupEnd) warmRss = brokers.map((b) => rssMiB(b.process.pid!))
      if (Date.now() >= nextMinute) {
        flush()
        nextMinute += minuteMs
      }
    }
    if (ops > 0) flush()
    const finalRss = brokers.map((b) => rssMiB(b.process.pid!))
    const growth = finalRss.map((r, k) => r - (warmRss?.[k] ?? r))
    const totalErrors = minutesOut.reduce((a, m) => a + m.errors, 0)
    const result = {
      mode,
      minutes,
      operations: minutesOut.reduce((a, m) => a + m.ops, 0),
      errors: totalErrors,
      firstErrors: errors,
      perMinute: minutesOut,
      rssWarmMiB: warmRss ?? finalRss,
      rssFinalMiB: finalRss,
      rssGrowthMiB: growth,
      rssBoundMiB: RSS_BOUND_MIB,
      ok: totalErrors === 0 && growth.every((g) => g <= RSS_BOUND_MIB),
    }
    return result
  } finally {
    for (const c of clients) await c.close().catch(() => {})
    for (const b of brokers) await b.stop()
    await tpm.stop()
    await rm(dir, { recursive: true, force: true })
    await db?.cleanup()
  }
}

const minutes = Number(process.argv[2] ?? '2')
const which = process.argv[3] ?? 'both'
if (!(minutes > 0) || !['single', 'replicas', 'both'].includes(which)) {
  console.error('usage: npm run soak -- MINUTES [single|replicas|both]')
  process.exit(2)
}
const results = []
for (const mode of which === 'both' ? (['single', 'replicas'] as const) : [which as 'single' | 'replicas']) results.push(await soak(mode, minutes))
console.log(`soak-summary ${JSON.stringify(results)}`)
process.exit(results.every((r) => r.ok) ? 0 : 1)
