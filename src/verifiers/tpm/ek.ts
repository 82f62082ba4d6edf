// Endorsement-key trust: the EK certificate must chain to a configured TPM manufacturer CA
// (e.g. the swtpm local CA, GCE's tpm_ek_root_1 → tpm_ek_intermediate_2), and its public key
// must equal the EK public the workload presents, and the certificate must be an EK certificate by
// the TCG EK Credential Profile (checkEkProfile). Not checked: revocation (no CRLs configured), the
// profile's SAN (TPM manufacturer/model/version) and certificate-policy contents.
import type { KeyObject } from 'node:crypto'
import { KeywardError, isKeywardError } from '../../errors.js'
import { parseCertificate, verifyCertificatePath, type CertInfo } from '../common/x509.js'
import { concatBytes, constantTimeEqual, fromHex } from '../../util/bytes.js'
import { publicKeyOf, parseTpmtPublic, type TpmPublic } from './parse.js'

export interface EkCertificateInput {
  /** The EK certificate (DER or PEM), as read from NV 0x01c00002 / 0x01c0000a. */
  certificate: Uint8Array | string
  /** Intermediate certificates presented alongside (any order). */
  chain?: (Uint8Array | string)[]
  /** The EK public the workload presents; when given, must equal the certificate's key. */
  ekPublic?: TpmPublic | KeyObject
}

export interface EkTrustOptions {
  /** Configured TPM manufacturer root CAs (trust anchors). */
  roots: CertInfo[]
  /** Configured intermediates (e.g. GCE tpm_ek_intermediate_2), used in addition to the presented chain. */
  intermediates?: CertInfo[]
  now: Date
  skewMs?: number
}

export interface VerifiedEk {
  certificate: CertInfo
  /** Path root first, leaf last, by SHA-256 fingerprint. */
  path: string[]
}

const MAX_DEPTH = 6

function untrusted(message: string, cause?: unknown, detail?: Record<string, unknown>): KeywardError {
  return new KeywardError('ERR_EK_UNTRUSTED', message, { cause, detail })
}

/** Builds the path leaf → anchor by issuer/signature and verifies it at `now` (verifyCertificatePath). */
export function verifyEkCertificate(input: EkCertificateInput, opts: EkTrustOptions): VerifiedEk {
  const leaf = parseCertificate(input.certificate, 'EK certificate')
  const pool = [...(input.chain ?? []).map((c, i) => parseCertificate(c, `EK chain[${i}]`)), ...(opts.intermediates ?? []), ...opts.roots]
  const path: CertInfo[] = [leaf]
  while (!opts.roots.some((r) => r.fingerprint === path[0]!.fingerprint)) {
    const cur = path[0]!
    const issuer = pool.find((c) => !path.includes(c) && cur.cert.checkIssued(c.cert))
    if (!issuer || path.length > MAX_DEPTH) {
      throw untrusted('EK certificate does not chain to a configured TPM manufacturer CA', undefined, { issuer: cur.cert.issuer })
    }
    path.unshift(issuer)
  }
  try {
    verifyCertificatePath(path, opts.roots, { now: opts.now, skewMs: opts.skewMs ?? 60_000, leafNotCA: true })
  } catch (e) {
    if (isKeywardError(e)) throw untrusted(`EK certificate chain: ${e.message}`, e, { reason: e.code })
    throw e
  }
  checkEkProfile(leaf)
  if (input.ekPublic !== undefined) {
    const presented = 'type' in input.ekPublic && (input.ekPublic.type === 'rsa' || input.ekPublic.type === 'ecc') ? publicKeyOf(input.ekPublic as TpmPublic) : (input.ekPublic as KeyObject)
    const a = new Uint8Array(presented.export({ type: 'spki', format: 'der' }))
    const b = new Uint8Array(leaf.cert.publicKey.export({ type: 'spki', format: 'der' }))
    if (!constantTimeEqual(a, b)) throw untrusted('EK certificate key differs from the presented EK public')
  }
  return { certificate: leaf, path: path.map((c) => c.fingerprint) }
}

// TCG EK Credential Profile for TPM Family 2.0 (v2.5) §3.2: extendedKeyUsage holds tcg-kp-EKCertificate
// (2.23.133.8.1), and keyUsage is keyEncipherment for an RSA EK (a decryption key: MakeCredential
// encrypts the seed to it) or keyAgreement for an ECC EK (ECDH). An AK certificate (GCE's carries
// the same EKU with digitalSignature) or a TLS certificate from the same CA is not an EK.
export const TCG_KP_EK_CERTIFICATE = '2.23.133.8.1'
// CertInfo.keyUsage flags (@peculiar/x509 KeyUsageFlags).
const KEY_ENCIPHERMENT = 4
const KEY_AGREEMENT = 16

/** Throws ERR_EK_PROFILE when `cert` is not an EK certificate by the profile above. */
export function checkEkProfile(cert: CertInfo): void {
  const alg = cert.cert.publicKey.asymmetricKeyType
  const need = alg === 'rsa' ? KEY_ENCIPHERMENT : alg === 'ec' ? KEY_AGREEMENT : undefined
  const detail = { keyType: alg ?? null, extKeyUsage: cert.extKeyUsage ?? null, keyUsage: cert.keyUsage ?? null }
  if (!cert.extKeyUsage?.includes(TCG_KP_EK_CERTIFICATE)) {
    throw new KeywardError('ERR_EK_PROFILE', 'EK certificate lacks extendedKeyUsage tcg-kp-EKCertificate (2.23.133.8.1)', { detail })
  }
  if (need === undefined || cert.keyUsage === undefined || (cert.keyUsage & need) === 0) {
    const usage = alg === 'rsa' ? 'keyEncipherment' : alg === 'ec' ? 'keyAgreement' : 'an RSA or ECC key'
    throw new KeywardError('ERR_EK_PROFILE', `EK certificate keyUsage lacks ${usage} (TCG EK Credential Profile)`, { detail })
  }
}

// TCG EK Credential Profile 2.x §2.1.5 default templates L-1 (RSA 2048) and L-2 (ECC P-256):
// attributes fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt,
// authPolicy = PolicySecret(TPM_RH_ENDORSEMENT), AES-128-CFB, unique = the public key.
const EK_ATTRIBUTES = '000300b2'
const EK_POLICY = '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa'

/**
 * Rebuilds the EK's TPMT_PUBLIC from an EK certificate's key using the default template, for
 * workloads that present only the certificate. Correct only for EKs created from the default
 * low-range template (what swtpm_setup, tpm2_createek and most platforms persist at 0x81010001).
 */
export function ekPublicFromCertificate(cert: CertInfo | KeyObject): TpmPublic {
  const key = 'cert' in cert ? cert.cert.publicKey : cert
  const jwk = key.export({ format: 'jwk' })
  const hex = (s: string | undefined): string => Buffer.from(s ?? '', 'base64url').toString('hex')
  let tpl: string
  if (jwk.kty === 'RSA' && Buffer.from(jwk.n ?? '', 'base64url').length === 256 && hex(jwk.e) === '010001') {
    tpl = `0001000b${EK_ATTRIBUTES}0020${EK_POLICY}000600800043` + `0010` + `0800` + `00000000` + `0100${hex(jwk.n)}`
  } else if (jwk.kty === 'EC' && jwk.crv === 'P-256') {
    tpl = `0023000b${EK_ATTRIBUTES}0020${EK_POLICY}000600800043` + `0010` + `0003` + `0010` + `0020${hex(jwk.x)}0020${hex(jwk.y)}`
  } else {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', 'EK certificate key has no default EK template (RSA-2048/e=65537 or P-256)')
  }
  return parseTpmtPublic(concatBytes(fromHex(tpl)!))
}
