// Test-only Nitro-like PKI and document builder: a P-384 root → intermediate → leaf made with
// @peculiar/x509, and COSE_Sign1 documents signed by the leaf. Used to reach checks that come
// after the signature (chain, field rules), which genuine vectors cannot be edited to reach.
import 'reflect-metadata'
import { webcrypto, KeyObject, X509Certificate, sign as cryptoSign } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { encode } from 'cborg'
import { sigStructure1 } from '../../../src/verifiers/common/cose.js'
import { decodeCborStrict, type CborMap, type CborValue } from '../../../src/protocol/cbor.js'
import { decodeCoseSign1 } from '../../../src/verifiers/common/cose.js'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const ALG = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as const

export interface TestOnlyCert {
  der: Uint8Array
  cert: X509Certificate
  key: KeyObject
  name: string
  keys: webcrypto.CryptoKeyPair
}

let serial = 1
export async function testOnlyCert(opts: {
  name: string
  issuer?: TestOnlyCert
  ca: boolean
  notBefore: Date
  notAfter: Date
  pathLength?: number
  keyUsage?: number
}): Promise<TestOnlyCert> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const usage = opts.keyUsage ?? (opts.ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature)
  const c = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, '0'),
    subject: `CN=${opts.name}`,
    issuer: opts.issuer ? `CN=${opts.issuer.name}` : `CN=${opts.name}`,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: (opts.issuer?.keys ?? keys).privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(opts.ca, opts.pathLength, true),
      new x509.KeyUsagesExtension(usage, true),
    ],
  })
  const der = new Uint8Array(c.rawData)
  return { der, cert: new X509Certificate(der), key: KeyObject.from(keys.privateKey), name: opts.name, keys }
}

export interface TestOnlyPki {
  root: TestOnlyCert
  inter: TestOnlyCert
  leaf: TestOnlyCert
  /** The document time: inside every certificate's validity. */
  at: Date
}

export async function testOnlyPki(at = new Date('2030-01-01T00:00:00Z')): Promise<TestOnlyPki> {
  const day = 86_400_000
  const root = await testOnlyCert({ name: 'testOnly root', ca: true, notBefore: new Date(at.getTime() - 365 * day), notAfter: new Date(at.getTime() + 365 * day) })
  const inter = await testOnlyCert({ name: 'testOnly intermediate', issuer: root, ca: true, notBefore: new Date(at.getTime() - day), notAfter: new Date(at.getTime() + day) })
  const leaf = await testOnlyCert({ name: 'testOnly enclave', issuer: inter, ca: false, notBefore: new Date(at.getTime() - 60_000), notAfter: new Date(at.getTime() + 3 * 3_600_000) })
  return { root, inter, leaf, at }
}

/** A well-formed enclave payload (as the NSM writes it) for `pki`, to be edited by tests. */
export function testOnlyPayload(pki: TestOnlyPki, over: Record<string, CborValue | undefined> = {}): Map<string, CborValue> {
  const pcrs: CborMap = new Map()
  for (let i = 0; i < 16; i++) pcrs.set(i, new Uint8Array(48).fill(i === 3 ? 0 : i + 1))
  const m = new Map<string, CborValue>([
    ['module_id', 'i-0123456789abcdef0-enc0123456789abcdef'],
    ['digest', 'SHA384'],
    ['timestamp', pki.at.getTime()],
    ['pcrs', pcrs],
    ['certificate', pki.leaf.der],
    ['cabundle', [pki.root.der, pki.inter.der]],
    ['public_key', null],
    ['user_data', new Uint8Array(32).fill(0xbb)],
    ['nonce', new Uint8Array(32).fill(0xaa)],
  ])
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) m.delete(k)
    else m.set(k, v)
  }
  return m
}

export const ES384_PROTECTED = new Uint8Array([0xa1, 0x01, 0x38, 0x22])

/** Signs `payloadBytes` as an untagged COSE_Sign1 with `key` (raw r||s). */
export function signCose(payloadBytes: Uint8Array, key: KeyObject, protectedBytes = ES384_PROTECTED, hash = 'sha384'): Uint8Array {
  const sig = cryptoSign(hash, sigStructure1(protectedBytes, payloadBytes), { key, dsaEncoding: 'ieee-p1363' })
  return encode([protectedBytes, new Map(), payloadBytes, new Uint8Array(sig)])
}

export function testOnlyDocument(pki: TestOnlyPki, over: Record<string, CborValue | undefined> = {}): Uint8Array {
  return signCose(encode(testOnlyPayload(pki, over)), pki.leaf.key)
}

/** Rebuilds a document from its parts, keeping the given signature (for tampering tests). */
export function reassemble(parts: { protectedBytes: Uint8Array; payload: Uint8Array; signature: Uint8Array }): Uint8Array {
  return encode([parts.protectedBytes, new Map(), parts.payload, parts.signature])
}

/** Decodes a document's payload map for editing. */
export function payloadOf(doc: Uint8Array): Map<string, CborValue> {
  return decodeCborStrict(decodeCoseSign1(doc).payload, { allowIndefiniteMaps: true }) as Map<string, CborValue>
}
