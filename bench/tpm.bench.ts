// TPM verifier throughput: verifyQuote (RSA-2048 RSASSA and ECC P-256 ECDSA swtpm vectors) against
// the floor of one raw node:crypto signature verification over the same bytes, and event-log
// parse + replay throughput. Ratios come from one process run: `npx tsx bench/tpm.bench.ts`.
import { verify as cryptoVerify, constants } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  parseAkPublic, parseAttest, parseEventLog, parsePcrsFile, parseSignature, replayEventLog, verifyQuote, extractFacts,
} from '../src/verifiers/tpm/index.js'
import { leftPad } from '../src/verifiers/tpm/parse.js'

const V = resolve(dirname(fileURLToPath(import.meta.url)), '../../shared/vectors/tpm')
const read = (p: string): Uint8Array => new Uint8Array(readFileSync(resolve(V, p)))

// The machine is shared: each measurement runs in ROUNDS interleaved rounds and reports the
// fastest, so a ratio compares like with like.
const ROUNDS = 5
function measure(n: number, fns: Record<string, () => void>): Record<string, number> {
  const best: Record<string, number> = {}
  for (const f of Object.values(fns)) for (let i = 0; i < Math.min(300, n); i++) f()
  for (let r = 0; r < ROUNDS; r++) {
    for (const [label, f] of Object.entries(fns)) {
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < n; i++) f()
      const ns = Number(process.hrtime.bigint() - t0) / n
      best[label] = Math.min(best[label] ?? Infinity, ns)
    }
  }
  for (const [label, ns] of Object.entries(best)) console.log(`${label.padEnd(44)} ${(ns / 1000).toFixed(1).padStart(9)} µs/op`)
  return best
}

for (const alg of ['rsa', 'ecc'] as const) {
  const d = `swtpm/${alg}/0001`
  const akBytes = read(`swtpm/${alg}/ak.pub`)
  const msg = read(`${d}/quote.msg`)
  const sigBytes = read(`${d}/quote.sig`)
  const pcrsBytes = read(`${d}/quote.pcrs`)
  const ak = parseAkPublic(akBytes)
  const sig = parseSignature(sigBytes)
  const raw = sig.sigAlg === 'ecdsa' ? Buffer.concat([leftPad(sig.r, 32), leftPad(sig.s, 32)]) : Buffer.from(sig.sig)
  const n = alg === 'rsa' ? 1000 : 500
  const parsed = { ak, attest: parseAttest(msg), signature: sig, pcrs: parsePcrsFile(pcrsBytes) }
  const m = measure(n, {
    [`${alg}: node:crypto verify (floor)`]: () => {
      const ok = alg === 'rsa'
        ? cryptoVerify('sha256', msg, { key: ak.key, padding: constants.RSA_PKCS1_PADDING }, raw)
        : cryptoVerify('sha256', msg, { key: ak.key, dsaEncoding: 'ieee-p1363' }, raw)
      if (!ok) throw new Error('floor verify failed')
    },
    [`${alg}: verifyQuote (parsed evidence)`]: () => void verifyQuote(parsed),
    [`${alg}: parse AK/quote/sig/pcrs + verifyQuote`]: () => {
      void verifyQuote({ ak: parseAkPublic(akBytes), attest: parseAttest(msg), signature: parseSignature(sigBytes), pcrs: parsePcrsFile(pcrsBytes) })
    },
  })
  const [floor, vq, full] = Object.values(m) as [number, number, number]
  console.log(`${alg}: ratio verifyQuote/floor = ${(vq / floor).toFixed(2)}, parse+verify/floor = ${(full / floor).toFixed(2)}`)
}

// Event log: parse + replay (all banks present in the quote) + facts, GCE COS 85 (44 events, 3 banks).
const logBytes = read('gce-cos85-vtpm/nonce9009/eventlog.bin')
const quoted = parsePcrsFile(read('gce-cos85-vtpm/nonce9009/quote-sha256.pcrs')).banks
const events = parseEventLog(logBytes).events.length
const perLog = measure(1000, {
  'eventlog: parse + replay + facts (GCE, sha256)': () => {
    const log = parseEventLog(logBytes)
    extractFacts(log, replayEventLog(log, quoted))
  },
})['eventlog: parse + replay + facts (GCE, sha256)']!
console.log(`eventlog: ${(1e9 / perLog).toFixed(0)} logs/s, ${((events * 1e9) / perLog / 1e6).toFixed(2)} M events/s, ${((logBytes.length * 1e9) / perLog / 2 ** 20).toFixed(1)} MiB/s`)
