// X.509 for evidence chains (Nitro root→cabundle→leaf, AMD ARK→ASK→VCEK, TPM EK CAs).
// Signatures and chains use node:crypto's X509Certificate; @peculiar/x509 reads the
// extensions node does not expose (key usage, path length). Parsed certificates and
// verified issuer→subject signatures are memoized by the SHA-256 of their DER, so the hot
// path does not re-parse or re-verify a chain it has seen (validity is checked every time).
import 'reflect-metadata'
import { X509Certificate, createHash } from 'node:crypto'
import * as px509 from '@peculiar/x509'
import { EvidenceMalformedError, KeywardError } from '../../errors.js'
import { remember } from '../../util/bounded-map.js'

export interface CertInfo {
  cert: X509Certificate
  /** SHA-256 of the DER, lowercase hex. */
  fingerprint: string
  notBefore: number
  notAfter: number
  isCA: boolean
  /** basicConstraints pathLenConstraint, undefined when absent. */
  pathLen: number | undefined
  /** keyUsage as @peculiar/x509 KeyUsageFlags (digitalSignature = 1, keyCertSign = 32, cRLSign = 64; not the DER bit-string byte), undefined when absent. */
  keyUsage: number | undefined
  /** extendedKeyUsage OIDs (dotted), undefined when absent. */
  extKeyUsage: string[] | undefined
}

const MAX_CACHE = 4096
const certCache = new Map<string, CertInfo>()
const verifiedPairs = new Set<string>()


function fingerprintOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex')
}

/** Parses one DER or PEM certificate; any failure is ERR_EVIDENCE_MALFORMED naming `what`. */
export function parseCertificate(input: Uint8Array | string, what = 'certificate'): CertInfo {
  let der: Uint8Array
  if (typeof input === 'string') {
    const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(input)
    if (!m) throw new EvidenceMalformedError(`${what}: not a PEM certificate`)
    der = new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))
  } else {
    der = input
  }
  const fingerprint = fingerprintOf(der)
  const hit = certCache.get(fingerprint)
  if (hit) return hit
  try {
    const cert = new X509Certificate(der)
    const p = new px509.X509Certificate(der)
    const bc = p.getExtension(px509.BasicConstraintsExtension)
    const ku = p.getExtension(px509.KeyUsagesExtension)
    const eku = p.getExtension(px509.ExtendedKeyUsageExtension)
    const info: CertInfo = {
      cert,
      fingerprint,
      notBefore: p.notBefore.getTime(),
      notAfter: p.notAfter.getTime(),
      isCA: bc?.ca ?? false,
      pathLen: bc?.pathLength,
      keyUsage: ku === null ? undefined : ku.usages,
      extKeyUsage: eku === null ? undefined : eku.usages.map(String),
    }
    return remember(certCache, fingerprint, info, MAX_CACHE)
  } catch (e) {
    throw new EvidenceMalformedError(`${what}: not a valid X.509 certificate`, { cause: e })
  }
}

/** Parses every certificate of a PEM bundle, in order. */
export function parsePemBundle(text: string, what = 'certificate bundle'): CertInfo[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new EvidenceMalformedError(`${what}: no PEM certificates`)
  return blocks.map((b, i) => parseCertificate(b, `${what}[${i}]`))
}

export interface PathOptions {
  now: Date
  /** Tolerance on notBefore/notAfter, ms (default 60 000). */
  skewMs?: number
  /** Names used in error messages, root first (default "cert[i]"). */
  names?: string[]
  /** Require every issuing certificate to be a CA (basicConstraints cA=TRUE). Default true. */
  requireCA?: boolean
  /** Require the leaf not to be a CA. Default false. */
  leafNotCA?: boolean
}

// RFC 5280 §4.2.1.3: keyCertSign is bit 5, i.e. 0x04 in the first byte; @peculiar exposes it as KeyUsageFlags.keyCertSign.
const KEY_CERT_SIGN = px509.KeyUsageFlags.keyCertSign

/**
 * Verifies an ordered certification path, root first and leaf last: path[0] must be one of
 * `anchors` (by DER fingerprint); each certificate must be issued and signed by the one before
 * it, be valid at `now` (± skew), and issuers must be CAs allowed to sign certificates within
 * their path length. Does not check revocation (callers that have CRLs check them), policies or
 * name constraints.
 */
export function verifyCertificatePath(path: CertInfo[], anchors: CertInfo[], opts: PathOptions): void {
  if (path.length === 0) throw new KeywardError('ERR_CHAIN_INVALID', 'empty certificate path')
  const name = (i: number): string => opts.names?.[i] ?? `cert[${i}]`
  const root = path[0]!
  if (!anchors.some((a) => a.fingerprint === root.fingerprint)) {
    throw new KeywardError('ERR_ROOT_UNTRUSTED', `${name(0)} is not a trusted root`, {
      detail: { fingerprint: root.fingerprint },
    })
  }
  const skew = opts.skewMs ?? 60_000
  const t = opts.now.getTime()
  const requireCA = opts.requireCA ?? true
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!
    if (t + skew < c.notBefore) {
      throw new KeywardError('ERR_CERT_EXPIRED', `${name(i)} is not yet valid`, {
        detail: { notBefore: new Date(c.notBefore).toISOString(), at: opts.now.toISOString() },
      })
    }
    if (t - skew > c.notAfter) {
      throw new KeywardError('ERR_CERT_EXPIRED', `${name(i)} has expired`, {
        detail: { notAfter: new Date(c.notAfter).toISOString(), at: opts.now.toISOString() },
      })
    }
    const issuer = i === 0 ? c : path[i - 1]!
    if (i < path.length - 1) {
      if (requireCA && !c.isCA) throw new KeywardError('ERR_CHAIN_INVALID', `${name(i)} is not a CA`)
      if (c.keyUsage !== undefined && (c.keyUsage & KEY_CERT_SIGN) === 0) {
        throw new KeywardError('ERR_CHAIN_INVALID', `${name(i)} may not sign certificates (keyUsage)`)
      }
      // pathLen counts the non-self-issued intermediates that may follow this CA.
      const following = path.length - 2 - i
      if (c.pathLen !== undefined && following > c.pathLen) {
        throw new KeywardError('ERR_CHAIN_INVALID', `${name(i)} path length ${c.pathLen} exceeded`)
      }
    } else if (opts.leafNotCA && c.isCA) {
      throw new KeywardError('ERR_CHAIN_INVALID', `${name(i)} is a CA but is used as a leaf`)
    }
    verifyIssued(issuer, c, name(i))
  }
}

/** Checks that `subject` names `issuer` as its issuer and carries a valid signature by its key. */
export function verifyIssued(issuer: CertInfo, subject: CertInfo, what = 'certificate'): void {
  const pair = `${issuer.fingerprint}>${subject.fingerprint}`
  if (verifiedPairs.has(pair)) return
  let ok: boolean
  try {
    ok = subject.cert.checkIssued(issuer.cert) && subject.cert.verify(issuer.cert.publicKey)
  } catch {
    ok = false
  }
  if (!ok) throw new KeywardError('ERR_CHAIN_INVALID', `${what} is not signed by its issuer`)
  if (verifiedPairs.size >= MAX_CACHE) verifiedPairs.clear()
  verifiedPairs.add(pair)
}
