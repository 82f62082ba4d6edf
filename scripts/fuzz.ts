// `npm run fuzz [-- SECONDS [TARGET]]`: mutation fuzzing of every parser that takes untrusted
// bytes, seeded with the genuine vectors in ../shared/vectors. A parser must return a result or
// throw a KeywardError; anything else (RangeError, TypeError, a hang) is a finding, printed with
// the input as hex and saved under .fuzz-findings/. Deterministic per seed (FUZZ_SEED).
import { readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { isKeywardError } from '../src/errors.js'
import { parseAttestationReport } from '../src/verifiers/sev-snp/parse.js'
import { parseCertTable } from '../src/verifiers/sev-snp/certs.js'
import { parseAttest, parseSignature, parseTpmPublic, parsePcrsFile, parseAkPublic } from '../src/verifiers/tpm/parse.js'
import { parseEventLog } from '../src/verifiers/tpm/eventlog.js'
import { parseNitroDocument } from '../src/verifiers/nitro/parse.js'
import { decodeCborStrict } from '../src/protocol/cbor.js'
import { decodeRecord, decodeStatement } from '../src/protocol/allowlist-state.js'
import { compilePolicy } from '../src/policy/engine.js'
import { parseCertificate } from '../src/verifiers/common/x509.js'

const ROOT = resolve(import.meta.dirname, '..')
const V = resolve(ROOT, '../shared/vectors')
const files = (dir: string, re: RegExp): Uint8Array[] =>
  readdirSync(join(V, dir), { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && re.test(d.name))
    .map((d) => new Uint8Array(readFileSync(join(d.parentPath, d.name))))

interface Target {
  name: string
  seeds: Uint8Array[]
  run(b: Uint8Array): unknown
}

const TARGETS: Target[] = [
  { name: 'sev-snp-report', seeds: files('sev-snp', /\.bin$/), run: parseAttestationReport },
  { name: 'sev-snp-cert-table', seeds: [new Uint8Array(0)], run: parseCertTable },
  { name: 'tpm-attest', seeds: files('tpm', /quote(-sha\d+)?\.msg$/), run: parseAttest },
  { name: 'tpm-signature', seeds: files('tpm', /quote(-sha\d+)?\.sig$/), run: parseSignature },
  { name: 'tpm-public', seeds: files('tpm', /\.(tpm2b|tpmt)\.pub$|^ak\.pub$/), run: parseTpmPublic },
  { name: 'tpm-ak-any', seeds: files('tpm', /^ak\.pub(\.pem)?$/), run: parseAkPublic },
  { name: 'tpm-pcrs-file', seeds: files('tpm', /\.pcrs$/), run: parsePcrsFile },
  { name: 'tpm-eventlog', seeds: files('tpm', /eventlog\.bin$|\.bin$/).filter((b) => b.length < 200_000), run: parseEventLog },
  { name: 'nitro-document', seeds: files('nitro', /\.cbor$/), run: parseNitroDocument },
  { name: 'cbor', seeds: files('nitro', /\.cbor$/), run: (b) => decodeCborStrict(b, { allowIndefiniteMaps: true }) },
  { name: 'x509', seeds: files('sev-snp', /\.der$/), run: (b) => parseCertificate(b) },
  { name: 'allowlist-record', seeds: [new Uint8Array(136)], run: (b) => decodeRecord(b) },
  { name: 'allowlist-statement', seeds: [new Uint8Array(240)], run: decodeStatement },
  {
    name: 'policy-yaml',
    seeds: readdirSync(join(ROOT, 'policies')).map((f) => new Uint8Array(readFileSync(join(ROOT, 'policies', f)))),
    run: (b) => compilePolicy(new TextDecoder().decode(b)),
  },
]

// xorshift32: deterministic mutations per seed.
let state = Number(process.env.FUZZ_SEED ?? 0x9e3779b9) >>> 0 || 1
function rnd(n: number): number {
  state ^= state << 13
  state >>>= 0
  state ^= state >>> 17
  state ^= state << 5
  state >>>= 0
  return state % n
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x40]
function mutate(seed: Uint8Array): Uint8Array {
  let b = seed.slice()
  const rounds = 1 + rnd(4)
  for (let i = 0; i < rounds; i++) {
    const op = rnd(6)
    const at = b.length === 0 ? 0 : rnd(b.length)
    if (op === 0 && b.length > 0) b[at] = b[at]! ^ (1 << rnd(8))
    else if (op === 1 && b.length > 0) b[at] = INTERESTING[rnd(INTERESTING.length)]!
    else if (op === 2) b = b.slice(0, at) // truncate
    else if (op === 3) b = Uint8Array.from([...b.slice(0, at), ...Array.from({ length: 1 + rnd(16) }, () => rnd(256)), ...b.slice(at)]) // insert
    else if (op === 4 && b.length > 2) b.copyWithin(at, rnd(b.length), rnd(b.length)) // splice within
    else if (b.length > 1) b[at] = rnd(256)
  }
  return b
}

const seconds = Number(process.argv[2] ?? 10)
const only = process.argv[3]
const targets = TARGETS.filter((t) => !only || t.name === only)
const findingsDir = join(ROOT, '.fuzz-findings')
let findings = 0
for (const t of targets) {
  if (t.seeds.length === 0) continue
  const until = performance.now() + (seconds * 1000) / targets.length
  let n = 0
  while (performance.now() < until) {
    const input = mutate(t.seeds[rnd(t.seeds.length)]!)
    n++
    try {
      t.run(input)
    } catch (e) {
      if (isKeywardError(e)) continue
      findings++
      mkdirSync(findingsDir, { recursive: true })
      const file = join(findingsDir, `${t.name}-${findings}.bin`)
      writeFileSync(file, input)
      console.log(`FINDING ${t.name}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} (input saved to ${file})`)
    }
  }
  console.log(`${t.name.padEnd(20)} ${String(n).padStart(8)} inputs, ${t.seeds.length} seeds`)
}
console.log(findings === 0 ? 'fuzz: no findings' : `fuzz: ${findings} findings`)
process.exit(findings === 0 ? 0 : 1)
