// SEV-SNP verification cost: `npx tsx bench/sev-snp.bench.ts`. On the same genuine reports it
// times, in one process:
//   floor   raw node:crypto: ECDSA P-384 over the report + RSA-PSS VCEK←ASK + RSA-PSS ASK←ARK
//           (keys and to-be-signed bytes prepared in advance, nothing parsed in the loop)
//   ecdsa   raw node:crypto: the report signature alone (what a warm chain cache leaves)
//   keyward createSevSnpVerifier(): decode + verify from the wire JSON (base64 report, VCEK, chain)
//   peer    @lit-protocol/sev-snp-utils-sdk verify_attestation_report (Rust→WASM, built-in
//           Milan ASK/ARK only, so only Milan VCEK reports are compared)
// and prints µs per report with ratios to the floor. keyward memoizes verified certificate pairs
// (src/verifiers/common/x509.ts), so its warm path can be cheaper than the floor.
import { createRequire } from 'node:module'
import { verify, constants, type KeyObject } from 'node:crypto'
import { readManifest, readVector } from '../test/helpers/vectors.js'
import { parseCertificate } from '../src/verifiers/common/x509.js'
import { readTlv } from '../src/verifiers/sev-snp/certs.js'
import { createSevSnpVerifier } from '../src/verifiers/sev-snp/index.js'

interface V {
  name: string
  expected: string
  product: string
  signer: string
  report: string
  vcek?: string
  vlek?: string
  chain: string[]
  verify_at: string
}
const all = readManifest<{ vectors: V[] }>('sev-snp').vectors.filter((v) => v.expected === 'valid')
const milan = all.filter((v) => v.product === 'Milan' && v.signer === 'VCEK')

const der = (f: string): Uint8Array => (f.endsWith('.pem') ? new Uint8Array(parseCertificate(Buffer.from(readVector('sev-snp', f)).toString('utf8')).cert.raw) : readVector('sev-snp', f))
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

/** tbsCertificate and signature bytes of a DER certificate. */
function tbsAndSig(c: Uint8Array): { tbs: Uint8Array; sig: Uint8Array } {
  const outer = readTlv(c, 0, 'cert')
  const tbs = readTlv(c, outer.start, 'tbs')
  const alg = readTlv(c, tbs.end, 'alg')
  const sig = readTlv(c, alg.end, 'sig')
  return { tbs: c.subarray(outer.start, tbs.end), sig: c.subarray(sig.start + 1, sig.end) }
}

interface Prepared {
  v: V
  evidence: Record<string, unknown>
  now: Date
  report: Uint8Array
  p1363: Buffer
  vcekKey: KeyObject
  vcekSig: { tbs: Uint8Array; sig: Uint8Array }
  askKey: KeyObject
  askSig: { tbs: Uint8Array; sig: Uint8Array }
  arkKey: KeyObject
  reportB64: string
  leafDer: Uint8Array
}

function prepare(v: V): Prepared {
  const report = readVector('sev-snp', v.report)
  const leafDer = readVector('sev-snp', (v.vcek ?? v.vlek)!)
  const [askDer, arkDer] = v.chain.map(der) as [Uint8Array, Uint8Array]
  const le = (o: number): Buffer => Buffer.from(report.subarray(0x2a0 + o, 0x2a0 + o + 48)).reverse()
  return {
    v,
    evidence: { report: b64(report), vcek: b64(leafDer), chain: [b64(askDer), b64(arkDer)] },
    now: new Date(v.verify_at),
    report,
    p1363: Buffer.concat([le(0), le(0x48)]),
    vcekKey: parseCertificate(leafDer).cert.publicKey,
    vcekSig: tbsAndSig(leafDer),
    askKey: parseCertificate(askDer).cert.publicKey,
    askSig: tbsAndSig(askDer),
    arkKey: parseCertificate(arkDer).cert.publicKey,
    reportB64: b64(report),
    leafDer,
  }
}

const pss = (key: KeyObject) => ({ key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 })
function ecdsaOnly(p: Prepared): void {
  if (!verify('sha384', p.report.subarray(0, 0x2a0), { key: p.vcekKey, dsaEncoding: 'ieee-p1363' }, p.p1363)) throw new Error('ecdsa')
}
function floor(p: Prepared): void {
  ecdsaOnly(p)
  if (!verify('sha384', p.vcekSig.tbs, pss(p.askKey), p.vcekSig.sig)) throw new Error('vcek')
  if (!verify('sha384', p.askSig.tbs, pss(p.arkKey), p.askSig.sig)) throw new Error('ask')
}
const sevSnpVerifier = createSevSnpVerifier()
async function keyward(p: Prepared): Promise<void> {
  await sevSnpVerifier.verify(sevSnpVerifier.decode(p.evidence), { now: p.now })
}

type PeerVerify = (reportB64: string, vcek: Uint8Array) => Promise<unknown>
async function loadPeer(): Promise<{ verify: PeerVerify } | string> {
  try {
    const req = createRequire(import.meta.url)
    const sdk = req('@lit-protocol/sev-snp-utils-sdk') as { initWasmSevSnpUtilsSdk(): Promise<unknown>; verify_attestation_report: PeerVerify }
    await sdk.initWasmSevSnpUtilsSdk()
    return { verify: (r, c) => sdk.verify_attestation_report(r, c) }
  } catch (e) {
    return `@lit-protocol/sev-snp-utils-sdk unavailable (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`
  }
}

/** µs per report: runs `f` over `set` round-robin for about `ms`. */
async function time(set: Prepared[], f: (p: Prepared) => unknown, ms = 600): Promise<number> {
  for (const p of set) await f(p) // warm-up, and every report must pass
  let n = 0
  const start = performance.now()
  while (performance.now() - start < ms) {
    for (const p of set) await f(p)
    n += set.length
  }
  return ((performance.now() - start) * 1000) / n
}

const milanSet = milan.map(prepare)
const allSet = all.map(prepare)
const peer = await loadPeer()
const rows: [string, number, number][] = []
const fl = await time(milanSet, floor)
rows.push(['floor: node:crypto ECDSA + 2×RSA-PSS', fl, fl])
rows.push(['node:crypto ECDSA only', await time(milanSet, ecdsaOnly), fl])
rows.push(['keyward decode+verify', await time(milanSet, keyward), fl])
if (typeof peer === 'string') console.log(`peer: ${peer}`)
else rows.push(['peer @lit-protocol/sev-snp-utils-sdk', await time(milanSet, (p) => peer.verify(p.reportB64, p.leafDer)), fl])

console.log(`Milan VCEK reports (${milanSet.length}: ${milan.map((v) => v.name).join(', ')})`)
for (const [name, us, base] of rows) console.log(`  ${name.padEnd(40)} ${us.toFixed(1).padStart(8)} µs/report  ratio ${(us / base).toFixed(2)}`)
const flAll = await time(allSet, floor)
const kwAll = await time(allSet, keyward)
console.log(`All ${allSet.length} genuine reports (Milan, Genoa, Turin; VCEK and VLEK; the peer verifies only Milan VCEK chains)`)
console.log(`  ${'floor: node:crypto ECDSA + 2×RSA-PSS'.padEnd(40)} ${flAll.toFixed(1).padStart(8)} µs/report  ratio 1.00`)
console.log(`  ${'keyward decode+verify'.padEnd(40)} ${kwAll.toFixed(1).padStart(8)} µs/report  ratio ${(kwAll / flAll).toFixed(2)}`)
