// Policy evaluation throughput: `npx tsx bench/policy.bench.ts`. Prints evaluations/s of the
// example SEV-SNP policy (7 conditions, reference-set membership) and of its denial path
// (explanations computed), each as a ratio to a one-condition `true` policy evaluated in the same
// process, so the numbers compare across machines.
import { readFileSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compilePolicy, evaluatePolicy, type CompiledPolicy, type PolicyInput } from '../src/policy/engine.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const snp = compilePolicy(readFileSync(resolve(root, 'policies/sev-snp-guest.yaml'), 'utf8'))
const trivial = compilePolicy(`apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata: { name: trivial }
spec:
  tees: [sev-snp]
  conditions: [{ name: t, expr: "true" }]
  grants: { secrets: [s] }
`)

const measurement = 'ab'.repeat(48)
const refs = { 'snp-measurements': Array.from({ length: 100 }, (_, i) => i.toString(16).padStart(96, '0')).concat(measurement) }
const details = { reportedTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 }, vmpl: 0, guestSvn: 1, policy: { debug: false } }
const allow: PolicyInput = { claims: { tee: 'sev-snp', measurement, debug: false, issuedAt: null, details }, refs, now: new Date() }
const deny: PolicyInput = { ...allow, claims: { ...allow.claims, measurement: 'cd'.repeat(48), details: { ...details, vmpl: 1, reportedTcb: { ...details.reportedTcb, snp: 2 } } } }

function rate(p: CompiledPolicy, input: PolicyInput, expectAllow: boolean, ms = 400): number {
  if (evaluatePolicy(p, input).allow !== expectAllow) throw new Error(`${p.name}: unexpected decision`)
  let n = 0
  const end = performance.now() + ms
  const start = performance.now()
  while (performance.now() < end) {
    for (let i = 0; i < 200; i++) evaluatePolicy(p, input)
    n += 200
  }
  return n / ((performance.now() - start) / 1000)
}

rate(trivial, allow, true, 200) // warm-up
rate(snp, allow, true, 200)
rate(snp, deny, false, 200)
const base = rate(trivial, allow, true)
const a = rate(snp, allow, true)
const d = rate(snp, deny, false)
const fmt = (x: number) => Math.round(x).toLocaleString('en-US')
console.log(`baseline (1 condition "true"):          ${fmt(base)} evaluations/s  ratio 1.00`)
console.log(`sev-snp-guest allow (7 conditions):     ${fmt(a)} evaluations/s  ratio ${(a / base).toFixed(2)}`)
console.log(`sev-snp-guest deny (4 failures explained): ${fmt(d)} evaluations/s  ratio ${(d / base).toFixed(2)}`)
