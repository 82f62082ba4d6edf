// Test fixtures for the SEV-SNP verifier: the manifest vectors, and a testOnly AMD-like PKI
// (RSA-PSS ARK → ASK → EC P-384 VCEK with AMD extensions) to sign reports with chosen fields.
import 'reflect-metadata'
import { readFileSync } from 'node:fs'
import { webcrypto, sign as nodeSign, createPrivateKey, type KeyObject } from 'node:crypto'
import * as px509 from '@peculiar/x509'
import { readManifest, vectorPath } from '../../helpers/vectors.js'
import { parseCertificate, type CertInfo } from '../../../src/verifiers/common/x509.js'
import { OFF, OID } from '../../../src/verifiers/sev-snp/layout.js'

export interface SnpVector {
  name: string
  expected: string
  product: string
  signer: 'VCEK' | 'VLEK'
  report: string
  vcek?: string
  vlek?: string
  chain: string[]
  verify_at: string
  report_version: number
  measurement: string
  reported_tcb: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number }
  policy_decoded: { debug: number }
  vmpl: number
  chip_id: string
  report_data: string
  checks: Record<string, boolean>
}

export const manifest = readManifest<{ vectors: SnpVector[] }>('sev-snp')
export const snpFile = (f: string): Uint8Array => new Uint8Array(readFileSync(vectorPath('sev-snp', f)))
export const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
export const certDer = (f: string): Uint8Array => {
  const raw = snpFile(f)
  return f.endsWith('.pem') ? new Uint8Array(parseCertificate(Buffer.from(raw).toString('utf8')).cert.raw) : raw
}
export const vector = (name: string): SnpVector => {
  const v = manifest.vectors.find((x) => x.name === name)
  if (!v) throw new Error(`no vector ${name}`)
  return v
}
/** The wire evidence of a manifest vector: report, leaf and chain as given there. */
export function evidenceOf(v: SnpVector): Record<string, unknown> {
  return { report: b64(snpFile(v.report)), vcek: b64(snpFile((v.vcek ?? v.vlek)!)), chain: v.chain.map((c) => b64(certDer(c))) }
}

const subtle = webcrypto.subtle
px509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof px509.cryptoProvider.set>[0])
const PSS = { name: 'RSA-PSS', hash: 'SHA-384', saltLength: 48 }
const rsaGen = { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-384' }
const AMD_DN = 'OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices'

const derInt = (n: number): Uint8Array => (n < 0x80 ? new Uint8Array([2, 1, n]) : new Uint8Array([2, 2, 0, n]))
const derIa5 = (s: string): Uint8Array => new Uint8Array([0x16, s.length, ...Buffer.from(s)])

export interface TestOnlyPki {
  arkKeys: webcrypto.CryptoKeyPair
  ark: CertInfo
  ask: CertInfo
  askKeys: webcrypto.CryptoKeyPair
  askSerial: string
  arkSubject: string
  /** Issues a VCEK with the given TCB/hwID; returns the cert and its private key. */
  issueVcek(o: { product?: string; tcb: { bl: number; tee: number; snp: number; ucode: number; fmc?: number }; hwId: Uint8Array }): Promise<{ vcek: CertInfo; key: KeyObject }>
  /** A CRL signed by this ARK listing `serials`. */
  crl(serials: string[], signer?: webcrypto.CryptoKey): Promise<Uint8Array>
}

const notBefore = new Date('2024-01-01T00:00:00Z')
const notAfter = new Date('2034-01-01T00:00:00Z')
export const TEST_NOW = new Date('2025-06-01T00:00:00Z')

/**
 * A testOnly ARK/ASK pair named like AMD's (`arkCn` default "ARK-Milan"). RSA-2048 keeps tests fast;
 * the benchmark asks for AMD's RSA-4096 (`rsaBits`) so verification costs what real chains cost.
 */
export async function testOnlyPki(product = 'Milan', arkCn = `ARK-${product}`, opts: { rsaBits?: 2048 | 4096 } = {}): Promise<TestOnlyPki> {
  const gen = { ...rsaGen, modulusLength: opts.rsaBits ?? rsaGen.modulusLength }
  const arkKeys = (await subtle.generateKey(gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const askKeys = (await subtle.generateKey(gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const arkSubject = `${AMD_DN}, CN=${arkCn}`
  const arkCert = await px509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: arkSubject,
    notBefore,
    notAfter,
    keys: arkKeys,
    signingAlgorithm: PSS,
    extensions: [
      new px509.BasicConstraintsExtension(true, undefined, true),
      new px509.KeyUsagesExtension(px509.KeyUsageFlags.keyCertSign | px509.KeyUsageFlags.cRLSign, true),
    ],
  })
  const askSerial = '0a11'
  const askCert = await px509.X509CertificateGenerator.create({
    serialNumber: askSerial,
    subject: `${AMD_DN}, CN=SEV-${product}`,
    issuer: arkCert.subject,
    notBefore,
    notAfter,
    publicKey: askKeys.publicKey,
    signingKey: arkKeys.privateKey,
    signingAlgorithm: PSS,
    extensions: [new px509.BasicConstraintsExtension(true, 0, true), new px509.KeyUsagesExtension(px509.KeyUsageFlags.keyCertSign, true)],
  })
  const ark = parseCertificate(new Uint8Array(arkCert.rawData), 'testOnly ARK')
  const ask = parseCertificate(new Uint8Array(askCert.rawData), 'testOnly ASK')
  return {
    arkKeys,
    askKeys,
    ark,
    ask,
    askSerial,
    arkSubject: arkCert.subject,
    async issueVcek({ product: pn = product, tcb, hwId }) {
      const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
      const ext = (oid: string, v: Uint8Array): px509.Extension => new px509.Extension(oid, false, v)
      const exts = [
        ext(OID.STRUCT_VERSION, derInt(tcb.fmc === undefined ? 0 : 1)),
        ext(OID.PRODUCT_NAME, derIa5(pn)),
        ext(OID.BL_SPL, derInt(tcb.bl)),
        ext(OID.TEE_SPL, derInt(tcb.tee)),
        ext(OID.SNP_SPL, derInt(tcb.snp)),
        ext(OID.UCODE_SPL, derInt(tcb.ucode)),
        ext(OID.HW_ID, hwId),
      ]
      if (tcb.fmc !== undefined) exts.push(ext(OID.FMC_SPL, derInt(tcb.fmc)))
      const cert = await px509.X509CertificateGenerator.create({
        serialNumber: '00',
        subject: `${AMD_DN}, CN=SEV-VCEK`,
        issuer: askCert.subject,
        notBefore,
        notAfter,
        publicKey: keys.publicKey,
        signingKey: askKeys.privateKey,
        signingAlgorithm: PSS,
        extensions: exts,
      })
      const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', keys.privateKey))
      return { vcek: parseCertificate(new Uint8Array(cert.rawData), 'testOnly VCEK'), key: createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }) }
    },
    async crl(serials, signer = arkKeys.privateKey) {
      const crl = await px509.X509CrlGenerator.create({
        issuer: arkCert.subject,
        thisUpdate: notBefore,
        nextUpdate: notAfter,
        entries: serials.map((s) => ({ serialNumber: s, revocationDate: notBefore })),
        signingKey: signer,
        signingAlgorithm: PSS,
      })
      return new Uint8Array(crl.rawData)
    },
  }
}

/** Re-signs report bytes 0x000–0x29F with `key`, writing little-endian R and S (AMD 56860). */
export function signReport(bytes: Uint8Array, key: KeyObject): Uint8Array {
  const out = bytes.slice()
  const sig = nodeSign('sha384', out.subarray(0, OFF.SIGNATURE), { key, dsaEncoding: 'ieee-p1363' })
  out.fill(0, OFF.SIGNATURE)
  out.set(Uint8Array.from(sig.subarray(0, 48)).reverse(), OFF.SIGNATURE)
  out.set(Uint8Array.from(sig.subarray(48, 96)).reverse(), OFF.SIGNATURE + 0x48)
  return out
}

/** Writes a Milan/Genoa-layout TCB u64 into `bytes` at `off`. */
export function writeTcb(bytes: Uint8Array, off: number, t: { bl: number; tee: number; snp: number; ucode: number }): void {
  bytes.fill(0, off, off + 8)
  bytes[off] = t.bl
  bytes[off + 1] = t.tee
  bytes[off + 6] = t.snp
  bytes[off + 7] = t.ucode
}
