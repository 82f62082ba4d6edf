// The node:crypto floor of one attest+release flow, per TEE, in a pool of worker threads (one per
// broker worker), measured in the same run as the broker. Per flow, the public-key operations the
// broker cannot avoid:
//   evidence  nitro:   ES384 verification of the document (AWS: P-384 leaf)
//             sev-snp: ES384 verification of the report + RSA-4096-PSS VCEK←ASK and ASK←ARK (AMD)
//             tpm:     ES256 verification of the quote (an ECC P-256 AK, as swtpm's in the bench)
//   attest    ES256 signature of the attestation token
//   release   ES256 verification of the DPoP proof and of the token, an ephemeral P-256 key and
//             its ECDH for the JWE (ECDH-ES: a fresh key per message), ES256 signature of the JWS inside it
// Keys and messages are made before timing; the loop does nothing but those operations.
import { Worker } from 'node:worker_threads'

export type FloorTee = 'nitro' | 'sev-snp' | 'tpm'

// Plain JavaScript so the worker needs no TypeScript loader.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const c = require('node:crypto')
const msg = Buffer.alloc(1200, 7)
const p384 = c.generateKeyPairSync('ec', { namedCurve: 'P-384' })
const p256 = c.generateKeyPairSync('ec', { namedCurve: 'P-256' })
const rsa = c.generateKeyPairSync('rsa', { modulusLength: 4096 })
const pss = { key: rsa.publicKey, padding: c.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }
const sig384 = c.sign('sha384', msg, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' })
const sig256 = c.sign('sha256', msg, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' })
const sigPss = c.sign('sha384', msg, { key: rsa.privateKey, padding: c.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 })
function flow(tee) {
  let ok = tee === 'tpm'
    ? c.verify('sha256', msg, { key: p256.publicKey, dsaEncoding: 'ieee-p1363' }, sig256)
    : c.verify('sha384', msg, { key: p384.publicKey, dsaEncoding: 'ieee-p1363' }, sig384)
  if (tee === 'sev-snp') ok = c.verify('sha384', msg, pss, sigPss) && c.verify('sha384', msg, pss, sigPss) && ok
  c.sign('sha256', msg, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' })
  ok = c.verify('sha256', msg, { key: p256.publicKey, dsaEncoding: 'ieee-p1363' }, sig256) && ok
  ok = c.verify('sha256', msg, { key: p256.publicKey, dsaEncoding: 'ieee-p1363' }, sig256) && ok
  c.diffieHellman({ privateKey: c.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, publicKey: p256.publicKey })
  c.sign('sha256', msg, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' })
  if (!ok) throw new Error('floor verification failed')
}
for (let i = 0; i < 30; i++) flow(workerData.tee)
parentPort.postMessage('ready')
parentPort.once('message', () => {
  let n = 0
  const t0 = performance.now()
  const end = t0 + workerData.ms
  while (performance.now() < end) { flow(workerData.tee); n++ }
  parentPort.postMessage(n / ((performance.now() - t0) / 1000))
})
`

/** Flows per second of the bare crypto on `threads` threads at once (their sum). */
export async function floorFlowsPerSecond(tee: FloorTee, threads: number, ms: number): Promise<number> {
  const workers = Array.from({ length: threads }, () => new Worker(WORKER, { eval: true, workerData: { tee, ms } }))
  try {
    await Promise.all(workers.map((w) => new Promise((r, j) => (w.once('message', r), w.once('error', j)))))
    const rates = await Promise.all(
      workers.map(
        (w) =>
          new Promise<number>((r, j) => {
            w.once('message', (x: number) => r(x))
            w.once('error', j)
            w.postMessage('go')
          }),
      ),
    )
    return rates.reduce((a, b) => a + b, 0)
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}
