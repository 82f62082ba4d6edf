// Broker throughput on one core, against the raw node:crypto floor of the same work, in one run.
//   attest:  the floor is the public-key work an attestation cannot avoid: one ES384 verification
//            of the evidence signature and one ES256 signature of the attestation token.
//   release: one ES256 verification of the DPoP proof, one of the token, the ephemeral P-256 key
//            and its ECDH key agreement for the JWE (ECDH-ES needs a fresh key per message), and
//            one ES256 signature of the release JWS inside it (as bench/floor.ts counts a flow).
// The broker runs in-process (app.request, no socket) on SQLite in a temp dir, with the real Nitro
// verifier over testOnly documents, the policy engine, sealing and audit. Ratios are broker ops/s
// divided by floor ops/s (1.0 would be "nothing but the unavoidable crypto"). Each operation runs
// one at a time (its latency: every decision waits for its audit row's fsync, and jose's WebCrypto
// calls hop to the libuv pool) and then BENCH_INFLIGHT (16) at a time, as a server sees them (the
// audit rows of concurrent decisions share one commit). scripts/bench.sh pins the process, pool
// threads included, to one CPU with taskset, so "one core" holds for both.
import { generateKeyPairSync, sign, verify, createSign, diffieHellman } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encode } from 'cborg'
import { loadConfig } from '../src/broker/config.js'
import { buildDeps } from '../src/broker/server.js'
import { createLogger } from '../src/broker/logger.js'
import { createApp } from '../src/broker/app.js'
import * as A from '../src/broker/admin-services.js'
import { bindingDigest } from '../src/protocol/binding.js'
import { createSessionKey } from '../enclave-client/src/session-key.js'
import { testOnlyPki, testOnlyPayload, signCose } from '../test/verifiers/nitro/fixtures.js'
import { toHex } from '../src/util/bytes.js'

const N = Number(process.env.BENCH_N ?? 300)
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 16)
/** BENCH_PROFILE_DIR=<dir>: a V8 CPU profile of each ×16 run, main thread only (<dir>/<name>.cpuprofile, for DevTools or speedscope). */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR

async function profiled<T>(name: string, f: () => Promise<T>): Promise<T> {
  if (!PROFILE_DIR) return f()
  const s = new Session()
  s.connect()
  await s.post('Profiler.enable')
  await s.post('Profiler.start')
  try {
    return await f()
  } finally {
    const { profile } = await s.post('Profiler.stop')
    writeFileSync(join(PROFILE_DIR, `${name}.cpuprofile`), JSON.stringify(profile))
    s.disconnect()
  }
}

async function time(n: number, f: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < Math.min(20, n); i++) await f() // warm-up
  const t = performance.now()
  for (let i = 0; i < n; i++) await f()
  return (n * 1000) / (performance.now() - t)
}

/** CPU ms of the main thread (from /proc: Linux only, else NaN) and of the whole process (pool threads, GC). */
function cpuMs(): { main: number; process: number } {
  let main = NaN
  try {
    // Fields 14 and 15 of /proc/<pid>/task/<tid>/stat (after the parenthesized name): utime, stime in clock ticks (USER_HZ, 100 on Linux).
    const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    main = (Number(f[11]) + Number(f[12])) * 10
  } catch {
    // not Linux
  }
  const u = process.cpuUsage()
  return { main, process: (u.user + u.system) / 1000 }
}

/**
 * ops/s of n calls of f with k of them in flight at once (k loops pulling from one counter), and
 * the CPU each call cost on the main thread and in the whole process: steadier than ops/s on a
 * shared machine, and it shows whether the event loop is what limits the rate.
 */
async function timeConcurrent(n: number, k: number, f: () => Promise<unknown>): Promise<{ opsPerSec: number; mainMsPerOp: number; processMsPerOp: number }> {
  let left = n
  const loop = async (): Promise<void> => {
    while (left-- > 0) await f()
  }
  const c0 = cpuMs()
  const t = performance.now()
  await Promise.all(Array.from({ length: k }, loop))
  const ms = performance.now() - t
  const c1 = cpuMs()
  return { opsPerSec: (n * 1000) / ms, mainMsPerOp: (c1.main - c0.main) / n, processMsPerOp: (c1.process - c0.process) / n }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-'))
  try {
    const pki = await testOnlyPki(new Date())
    // Abuse limits off: every request comes from one address and one key, which is the point here.
    const unlimited = { ratePerSecond: 1e9, burst: 1e9 }
    const config = loadConfig({ overrides: { dataDir: dir, logLevel: 'silent', limits: { perAddress: unlimited, perWorkload: unlimited } } })
    const deps = await buildDeps(config, createLogger('silent'))
    deps.trust.nitroRoots = [pki.root.cert]
    const app = createApp(deps)
    await A.applyPolicy(deps, `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata: { name: bench }
spec:
  tees: [nitro]
  conditions:
    - { name: pcr0-known, expr: 'claims.details.pcrs["0"] in refs["nitro-pcr0"]' }
  grants: { secrets: [bench-secret] }
`, 'bench')
    await A.addReferenceValue(deps, { set: 'nitro-pcr0', tee: 'nitro', value: toHex(new Uint8Array(48).fill(1)), source: 'bench' }, 'bench')
    await A.putSecret(deps, 'bench-secret', { text: 'bench-value' }, 'bench')
    const key = await createSessionKey('ES256')
    const post = (path: string, body: unknown) => app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

    // Evidence is prepared outside the timed loop (the workload's cost, not the broker's).
    const bodies: unknown[] = []
    for (let i = 0; i < 2 * N + 20; i++) {
      const { nonce } = (await (await post('/v1/challenge', {})).json()) as { nonce: string }
      const n = Buffer.from(nonce, 'base64url')
      const payload = testOnlyPayload(pki, { user_data: bindingDigest(n, key.jktBytes), nonce: n, timestamp: Date.now() })
      bodies.push({ tee: 'nitro', nonce, key: key.publicJwk, evidence: { document: Buffer.from(signCose(encode(payload), pki.leaf.key)).toString('base64') } })
    }
    // The floor: the same public-key operations with node:crypto, nothing else.
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const msg = Buffer.alloc(1500, 7)
    const sig384 = sign('sha384', msg, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' })
    const sig256 = sign('sha256', msg, p256.privateKey)
    const attestFloorOp = () => {
      verify('sha384', msg, { key: p384.publicKey, dsaEncoding: 'ieee-p1363' }, sig384)
      createSign('sha256').update(msg).sign(p256.privateKey)
    }
    const releaseFloorOp = () => {
      verify('sha256', msg, p256.publicKey, sig256)
      verify('sha256', msg, p256.publicKey, sig256)
      diffieHellman({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, publicKey: p256.publicKey })
      createSign('sha256').update(msg).sign(p256.privateKey)
    }

    let token = ''
    let next = 0 // each body carries a single-use nonce
    const attestOnce = async (): Promise<void> => {
      const r = await post('/v1/attest', bodies[next++])
      if (r.status !== 200) throw new Error(`attest ${r.status}: ${await r.text()}`)
      token = ((await r.json()) as { token: string }).token
    }
    const attestFloor1 = await time(N, attestFloorOp)
    const attest = await time(N, attestOnce)
    const attestInflight = await profiled('attest', () => timeConcurrent(N, INFLIGHT, attestOnce))
    // The machine may be shared: the floor is measured just before and just after, and averaged.
    const attestFloor = (attestFloor1 + (await time(N, attestFloorOp))) / 2
    const url = 'http://localhost/v1/secrets/bench-secret'
    // DPoP proofs are the workload's work: made ahead, like the evidence (each has its own jti).
    const proofs: string[] = []
    for (let i = 0; i < 2 * N + 20; i++) proofs.push(await key.dpopProof('GET', url, token))
    let proof = 0
    const releaseOnce = async (): Promise<void> => {
      const r = await app.request(url, { headers: { authorization: `DPoP ${token}`, dpop: proofs[proof++]! } })
      if (r.status !== 200) throw new Error(`release ${r.status}: ${await r.text()}`)
    }
    const releaseFloor1 = await time(N, releaseFloorOp)
    const release = await time(N, releaseOnce)
    const releaseInflight = await profiled('release', () => timeConcurrent(N, INFLIGHT, releaseOnce))
    const releaseFloor = (releaseFloor1 + (await time(N, releaseFloorOp))) / 2

    const row = (name: string, ops: number, floor: number, cpu?: { mainMsPerOp: number; processMsPerOp: number }) =>
      console.log(
        `${name.padEnd(12)} ${ops.toFixed(0).padStart(6)} ops/s   floor ${floor.toFixed(0).padStart(6)} ops/s   ratio ${(ops / floor).toFixed(2)}` +
          (cpu ? `   CPU/op: main thread ${cpu.mainMsPerOp.toFixed(2)} ms, process ${cpu.processMsPerOp.toFixed(2)} ms` : ''),
      )
    console.log(`keyward broker, one core, SQLite, ${N} operations each (evidence and DPoP proofs prepared outside the loop)`)
    row('attest', attest, attestFloor)
    row(`attest ×${INFLIGHT}`, attestInflight.opsPerSec, attestFloor, attestInflight)
    row('release', release, releaseFloor)
    row(`release ×${INFLIGHT}`, releaseInflight.opsPerSec, releaseFloor, releaseInflight)
    await deps.store.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
