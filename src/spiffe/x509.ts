// X.509 for SPIFFE (spiffe/spiffe standards/X509-SVID.md): the keyward root and intermediate
// signing certificates, the check of a workload's CSR, and the leaf X509-SVID. Certificates are
// built with @peculiar/x509 and signed by node:crypto's WebCrypto; nothing here reads a clock or
// a store: times, keys and the SPIFFE ID come in as arguments.
import 'reflect-metadata'
import { createPublicKey, randomBytes, webcrypto, type JsonWebKey as NodeJwk } from 'node:crypto'
import * as px509 from '@peculiar/x509'
import type { JWK } from 'jose'
import { KeywardError } from '../errors.js'
import { jwkThumbprint } from '../protocol/binding.js'
import { constantTimeEqual, fromB64url } from '../util/bytes.js'
import { trustDomainId } from '../protocol/spiffe-id.js'

const crypto = webcrypto as unknown as Parameters<typeof px509.cryptoProvider.set>[0]
export const CA_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

/** Workload CSRs: the key algorithms keyward's session keys use (enclave-client/src/session-key.ts). */
const CSR_KEYS: Record<string, true> = { 'P-256': true, 'P-384': true, RSA: true }

export interface CaKey {
  cert: px509.X509Certificate
  privateKey: webcrypto.CryptoKey
}

/** RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; 16 random bytes, top bit clear. */
function serial(): string {
  const b = randomBytes(16)
  b[0] = b[0]! & 0x7f
  return b.toString('hex')
}

function caExtensions(trustDomain: string, pathLength: number) {
  return [
    // X509-SVID.md §4.1 cA=true; §4.3 keyCertSign (and cRLSign), critical; §3.2 the trust domain's ID, no path.
    new px509.BasicConstraintsExtension(true, pathLength, true),
    new px509.KeyUsagesExtension(px509.KeyUsageFlags.keyCertSign | px509.KeyUsageFlags.cRLSign, true),
    new px509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain) }], false),
  ]
}

/** A self-signed root for the trust domain (X509-SVID.md §6.1: bundle entries SHOULD be self-signed). */
export async function createRootCa(o: { trustDomain: string; keys: webcrypto.CryptoKeyPair; name: string; notBefore: Date; notAfter: Date }): Promise<px509.X509Certificate> {
  return px509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `O=keyward, OU=${o.trustDomain}, CN=${o.name}`,
      issuer: `O=keyward, OU=${o.trustDomain}, CN=${o.name}`,
      notBefore: o.notBefore,
      notAfter: o.notAfter,
      signingAlgorithm: CA_ALG,
      publicKey: o.keys.publicKey,
      signingKey: o.keys.privateKey,
      extensions: [...caExtensions(o.trustDomain, 1), await px509.SubjectKeyIdentifierExtension.create(o.keys.publicKey, false, crypto)],
    },
    crypto,
  )
}

/** The intermediate that signs X509-SVIDs, issued by `root` (pathLen 0: it signs only leaves). */
export async function createIntermediateCa(o: { trustDomain: string; publicKey: webcrypto.CryptoKey; name: string; root: CaKey; notBefore: Date; notAfter: Date }): Promise<px509.X509Certificate> {
  return px509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `O=keyward, OU=${o.trustDomain}, CN=${o.name}`,
      issuer: o.root.cert.subjectName,
      notBefore: o.notBefore,
      notAfter: o.notAfter,
      signingAlgorithm: CA_ALG,
      publicKey: o.publicKey,
      signingKey: o.root.privateKey,
      extensions: [
        ...caExtensions(o.trustDomain, 0),
        await px509.SubjectKeyIdentifierExtension.create(o.publicKey, false, crypto),
        await px509.AuthorityKeyIdentifierExtension.create(o.root.cert, false, crypto),
      ],
    },
    crypto,
  )
}

export interface CheckedCsr {
  /** The CSR's public key as SPKI DER. */
  spki: Uint8Array
  /** Its RFC 7638 thumbprint. */
  jkt: string
}

const badCsr = (why: string, cause?: unknown) => new KeywardError('ERR_BAD_REQUEST', `invalid CSR: ${why}`, cause === undefined ? {} : { cause })

/**
 * Parses a PKCS#10 CSR (DER), verifies its self-signature (proof of possession of its key) and
 * requires its key to be `expectedJkt`, the key the attestation bound (ERR_BINDING_MISMATCH).
 * Nothing else in the CSR counts: subject, SANs and requested extensions are ignored, since the
 * SPIFFE ID comes from the policy grant and the extensions from X509-SVID.md.
 */
export async function checkCsr(der: Uint8Array, expectedJkt: string): Promise<CheckedCsr> {
  let csr: px509.Pkcs10CertificateRequest
  try {
    csr = new px509.Pkcs10CertificateRequest(der)
  } catch (e) {
    return Promise.reject(badCsr('not a DER PKCS#10 certification request', e))
  }
  let jwk: NodeJwk
  const spki = new Uint8Array(csr.publicKey.rawData)
  try {
    jwk = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'jwk' })
  } catch (e) {
    throw badCsr('unsupported public key', e)
  }
  if (!CSR_KEYS[jwk.kty === 'RSA' ? 'RSA' : (jwk.crv ?? '')]) throw badCsr('the key must be EC P-256, P-384 or RSA')
  let ok: boolean
  try {
    ok = await csr.verify(crypto)
  } catch (e) {
    throw new KeywardError('ERR_SIGNATURE_INVALID', 'CSR signature verification failed', { cause: e })
  }
  if (!ok) throw new KeywardError('ERR_SIGNATURE_INVALID', 'CSR signature verification failed')
  const jkt = await jwkThumbprint(jwk as JWK)
  const a = fromB64url(jkt)!
  const b = fromB64url(expectedJkt)
  if (!b || !constantTimeEqual(a, b)) throw new KeywardError('ERR_BINDING_MISMATCH', 'the CSR key is not the attested key')
  return { spki, jkt }
}

/**
 * The X509-SVID for `spki`: X509-SVID.md §2 exactly one URI SAN (the SPIFFE ID), critical since
 * the subject is empty (§3.1, RFC 5280 §4.1.2.6); §4.1 cA=false; §4.3 keyUsage digitalSignature
 * only, critical; §4.4 EKU serverAuth and clientAuth. The caller has checked the ID and the key.
 */
export async function issueX509Svid(o: { spki: Uint8Array; spiffeId: string; issuer: CaKey; notBefore: Date; notAfter: Date }): Promise<px509.X509Certificate> {
  const publicKey = await px509.PublicKey.create(o.spki, crypto)
  return px509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: '',
      issuer: o.issuer.cert.subjectName,
      notBefore: o.notBefore,
      notAfter: o.notAfter,
      signingAlgorithm: CA_ALG,
      publicKey,
      signingKey: o.issuer.privateKey,
      extensions: [
        new px509.BasicConstraintsExtension(false, undefined, true),
        new px509.KeyUsagesExtension(px509.KeyUsageFlags.digitalSignature, true),
        new px509.ExtendedKeyUsageExtension([px509.ExtendedKeyUsage.serverAuth, px509.ExtendedKeyUsage.clientAuth], false),
        new px509.SubjectAlternativeNameExtension([{ type: 'url', value: o.spiffeId }], true),
        await px509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
        await px509.AuthorityKeyIdentifierExtension.create(o.issuer.cert, false, crypto),
      ],
    },
    crypto,
  )
}

export function toPem(certs: Array<{ rawData: ArrayBuffer }>): string {
  return certs.map((c) => px509.PemConverter.encode(c.rawData, 'CERTIFICATE')).join('\n') + '\n'
}
