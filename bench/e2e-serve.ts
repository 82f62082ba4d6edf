// Benchmark-only broker entry: `keyward serve --config FILE` (the same runServe, workers and all)
// with the benchmark's testOnly trust roots added to each serving process: a Nitro root, and an
// SEV-SNP ARK given to the SNP verifier as its accepted anchor. Never part of a release build:
// `keyward serve` itself has no way to trust these roots. Used by bench/e2e.bench.ts only.
//   node --import tsx bench/e2e-serve.ts CONFIG_FILE TRUST_JSON
import { readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { loadConfig } from '../src/broker/config.js'
import { createLogger } from '../src/broker/logger.js'
import { runServe } from '../src/broker/server.js'
import type { Verifier } from '../src/verifiers/types.js'

const [configFile, trustFile] = process.argv.slice(2)
if (!configFile || !trustFile) throw new Error('usage: e2e-serve.ts CONFIG_FILE TRUST_JSON')
const trust = JSON.parse(readFileSync(trustFile, 'utf8')) as { nitroRoot: string; snpArk: string }
const nitroRoot = new X509Certificate(Buffer.from(trust.nitroRoot, 'base64'))
const snpArk = new X509Certificate(Buffer.from(trust.snpArk, 'base64'))
const config = loadConfig({ file: configFile, env: process.env })

await runServe(config, createLogger(config.logLevel), {
  prepareDeps(deps) {
    deps.trust.nitroRoots = [nitroRoot]
    const snp = deps.verifiers['sev-snp']
    if (snp) {
      const wrapped: Verifier = { ...snp, verify: (ev, ctx) => snp.verify(ev, { ...ctx, trust: { ...ctx.trust, snp: { arks: [snpArk] } } }) }
      deps.verifiers['sev-snp'] = wrapped
    }
  },
})
