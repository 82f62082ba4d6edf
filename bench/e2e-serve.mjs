// Benchmark-only broker entry: `keyward serve --config FILE` (the same runServe, workers and all)
// with the benchmark's testOnly trust roots added to each serving process: a Nitro root, and an
// SEV-SNP ARK given to the SNP verifier as its accepted anchor. Never part of a release build:
// `keyward serve` itself has no way to trust these roots. Used by bench/e2e.bench.ts only.
// Plain JavaScript loading the modules as bin/keyward.js does (dist/ when built, else the sources
// through tsx), so that the benchmark measures the broker as it ships.
//   node bench/e2e-serve.mjs CONFIG_FILE TRUST_JSON
import { readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { load } from '../bin/launch.js'

const [configFile, trustFile] = process.argv.slice(2)
if (!configFile || !trustFile) throw new Error('usage: e2e-serve.mjs CONFIG_FILE TRUST_JSON')
const trust = JSON.parse(readFileSync(trustFile, 'utf8'))
const nitroRoot = new X509Certificate(Buffer.from(trust.nitroRoot, 'base64'))
const snpArk = new X509Certificate(Buffer.from(trust.snpArk, 'base64'))
const [{ loadConfig }, { createLogger }, { runServe }] = await Promise.all([load('src/broker/config'), load('src/broker/logger'), load('src/broker/server')])
const config = loadConfig({ file: configFile, env: process.env })

await runServe(config, createLogger(config.logLevel), {
  prepareDeps(deps) {
    deps.trust.nitroRoots = [nitroRoot]
    const snp = deps.verifiers['sev-snp']
    if (snp) {
      deps.verifiers['sev-snp'] = { ...snp, verify: (ev, ctx) => snp.verify(ev, { ...ctx, trust: { ...ctx.trust, snp: { arks: [snpArk] } } }) }
    }
  },
})

// BENCH_MEMORY=1: every 5 s, this process's memory on stderr (V8 heap apart from native and
// ArrayBuffer memory), to tell what a growing RSS is made of.
if (process.env.BENCH_MEMORY) {
  const mb = (n) => (n / 2 ** 20).toFixed(0)
  setInterval(() => {
    const m = process.memoryUsage()
    process.stderr.write(`memory pid ${process.pid}: rss ${mb(m.rss)} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)} MB\n`)
  }, 5000).unref()
}

// BENCH_HEAP_PROFILE_DIR=DIR: every broker process samples its allocations, including those the
// garbage collector has since freed, and writes them there as a .heapprofile when it exits
// (summarize with scripts/cpuprofile-summary.mjs). What a request allocates, not what stays live:
// garbage promoted past young-generation collections is what sizes the heap under load.
if (process.env.BENCH_HEAP_PROFILE_DIR) {
  const [{ Session }, { writeFileSync }, { join }] = await Promise.all([import('node:inspector'), import('node:fs'), import('node:path')])
  const session = new Session()
  session.connect()
  session.post('HeapProfiler.startSampling', { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  process.once('exit', () => {
    // A same-thread inspector session answers synchronously, so this runs to the end inside 'exit'.
    session.post('HeapProfiler.stopSampling', (err, res) => {
      if (!err) writeFileSync(join(process.env.BENCH_HEAP_PROFILE_DIR, `alloc-${process.pid}.heapprofile`), JSON.stringify(res.profile))
    })
  })
}
