// Revocation of AMD intermediates. AMD's KDS publishes one CRL per product
// (https://kdsintf.amd.com/vcek/v1/{product}/crl, DER), signed by the ARK with RSASSA-PSS
// SHA-384, listing revoked ASKs/ASVKs (AMD 57230 §"Certificate Revocation List").
import 'reflect-metadata'
import { verify as cryptoVerify, constants as C } from 'node:crypto'
import * as px509 from '@peculiar/x509'
import { EvidenceMalformedError, KeywardError } from '../../errors.js'
import type { CertInfo } from '../common/x509.js'
import { readTlv } from './certs.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
// DER OIDs (with tag and length) of the algorithms a CRL may be signed with.
const OID_RSASSA_PSS = '06092a864886f70d01010a'
const OID_SHA384_RSA = '06092a864886f70d01010c'
const OID_ECDSA_SHA384 = '06082a8648ce3d040303'
const OID_SHA384 = '0609608648016503040202'

interface SigAlg {
  padding?: number
  saltLength?: number
}

/** RFC 4055 RSASSA-PSS-params: only SHA-384 (hash [0], MGF1 [1]) is accepted; saltLength [2] default 20. */
function parseSigAlg(algId: Uint8Array): SigAlg {
  const seq = readTlv(algId, 0, 'CRL signatureAlgorithm')
  const oid = readTlv(algId, seq.start, 'CRL signatureAlgorithm')
  const oidHex = hex(algId.subarray(seq.start, oid.end))
  if (oidHex === OID_SHA384_RSA) return { padding: C.RSA_PKCS1_PADDING }
  if (oidHex === OID_ECDSA_SHA384) return {}
  if (oidHex !== OID_RSASSA_PSS) throw new KeywardError('ERR_CHAIN_INVALID', 'CRL: unsupported signature algorithm')
  const params = readTlv(algId, oid.end, 'RSASSA-PSS-params')
  let saltLength = 20
  let hashOk = false
  for (let p = params.start; p < params.end; ) {
    const f = readTlv(algId, p, 'RSASSA-PSS-params')
    if (f.tag === 0xa0) {
      const h = readTlv(algId, f.start, 'hashAlgorithm')
      const ho = readTlv(algId, h.start, 'hashAlgorithm')
      hashOk = hex(algId.subarray(h.start, ho.end)) === OID_SHA384
    } else if (f.tag === 0xa2) {
      const n = readTlv(algId, f.start, 'saltLength')
      if (n.tag !== 0x02 || n.end - n.start > 2) throw new EvidenceMalformedError('CRL: bad saltLength')
      saltLength = algId.subarray(n.start, n.end).reduce((a, x) => a * 256 + x, 0)
    }
    p = f.end
  }
  if (!hashOk) throw new KeywardError('ERR_CHAIN_INVALID', 'CRL: RSASSA-PSS hash is not SHA-384')
  return { padding: C.RSA_PKCS1_PSS_PADDING, saltLength }
}

export interface ParsedCrl {
  issuer: string
  thisUpdate: number
  nextUpdate: number | undefined
  /** Serial numbers (lowercase hex, as @peculiar/x509 renders them) of revoked certificates. */
  revoked: Set<string>
  tbs: Uint8Array
  sigAlg: Uint8Array
  signature: Uint8Array
}

/** Parses a DER CRL (RFC 5280 CertificateList). Any structural failure is ERR_EVIDENCE_MALFORMED. */
export function parseCrl(der: Uint8Array): ParsedCrl {
  try {
    const outer = readTlv(der, 0, 'CRL')
    if (outer.tag !== 0x30 || outer.end !== der.length) throw new EvidenceMalformedError('CRL: not a DER SEQUENCE')
    const tbs = readTlv(der, outer.start, 'CRL tbsCertList')
    const alg = readTlv(der, tbs.end, 'CRL signatureAlgorithm')
    const sig = readTlv(der, alg.end, 'CRL signatureValue')
    if (sig.tag !== 0x03 || sig.end !== outer.end || der[sig.start] !== 0) throw new EvidenceMalformedError('CRL: bad signatureValue')
    const crl = new px509.X509Crl(der)
    return {
      issuer: crl.issuer,
      thisUpdate: crl.thisUpdate.getTime(),
      nextUpdate: crl.nextUpdate?.getTime(),
      revoked: new Set(crl.entries.map((e) => e.serialNumber.toLowerCase())),
      tbs: der.subarray(outer.start, tbs.end),
      sigAlg: der.subarray(tbs.end, alg.end),
      signature: der.subarray(sig.start + 1, sig.end),
    }
  } catch (e) {
    if (e instanceof KeywardError) throw e
    throw new EvidenceMalformedError('CRL: malformed', { cause: e })
  }
}

const subjectOf = (c: CertInfo): { dn: string; serial: string } => {
  const p = new px509.X509Certificate(c.cert.raw)
  return { dn: p.subject, serial: p.serialNumber.toLowerCase() }
}

/**
 * Applies every CRL issued by `ark` (matched by issuer name) to `subject`: the CRL's signature
 * must verify under the ARK (ERR_CHAIN_INVALID otherwise) and must not be issued in the future;
 * a listed serial is ERR_CERT_REVOKED. CRLs of other issuers are ignored (they belong to another
 * product). A CRL past its nextUpdate is still honoured: a stale list never un-revokes.
 */
export function checkRevocation(ark: CertInfo, subject: CertInfo, crls: ParsedCrl[], now: Date, skewMs: number, what: string): void {
  if (crls.length === 0) return
  const arkName = subjectOf(ark).dn
  const target = subjectOf(subject)
  for (const crl of crls) {
    if (crl.issuer !== arkName) continue
    const alg = parseSigAlg(crl.sigAlg)
    let ok: boolean
    try {
      ok = cryptoVerify('sha384', crl.tbs, { key: ark.cert.publicKey, ...alg }, crl.signature)
    } catch {
      ok = false
    }
    if (!ok) throw new KeywardError('ERR_CHAIN_INVALID', 'CRL is not signed by the ARK')
    if (crl.thisUpdate > now.getTime() + skewMs) throw new KeywardError('ERR_CHAIN_INVALID', 'CRL is not yet valid')
    if (crl.revoked.has(target.serial)) {
      throw new KeywardError('ERR_CERT_REVOKED', `${what} is revoked`, { detail: { serial: target.serial } })
    }
  }
}
