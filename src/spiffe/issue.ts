// Issuing SVIDs to an attested workload under its policy's SPIFFE grant: the SPIFFE ID from the
// grant's template and the attested workload, then an X509-SVID for the attested key's CSR or a
// JWT-SVID for audiences the grant lists. Plain inputs (the grant, the attested workload, the
// time); the HTTP layer authenticates the caller and audits the outcome.
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { KeywardError, isKeywardError } from '../errors.js'
import type { SpiffeGrant } from '../policy/engine.js'
import { expandSpiffeTemplate, type SpiffeId } from '../protocol/spiffe-id.js'
import type { SpiffeAuthority } from './authority.js'
import { checkCsr, issueX509Svid, toPem } from './x509.js'

export interface AttestedWorkload {
  tee: string
  /** The broker's workload id (src/broker/attest.ts workloadId): tpm:<enrolled name>, tpm-ak:…, nitro:…, sev-snp:… */
  workload: string
  /** The attested key's RFC 7638 thumbprint (cnf.jkt). */
  jkt: string
}

/** X.509-SVIDs start this long before issuance, for verifiers whose clocks run a little behind. */
export const X509_BACKDATE_MS = 10_000
/** At most this many audiences in one JWT-SVID (JWT-SVID.md §7.2 recommends one). */
export const MAX_JWT_AUDIENCES = 8

const notGranted = (m: string) => new KeywardError('ERR_NOT_GRANTED', m)

/**
 * The SPIFFE ID the grant gives this workload. {tee} is the TEE; {workload} the workload's name:
 * the enrolled name of a TPM (an authority chose it, docs/tpm-enrolment.md), the measurement
 * prefix of a Nitro enclave or SEV-SNP guest. A TPM without an enrolled name has none.
 */
export function spiffeIdFor(grant: SpiffeGrant, w: Pick<AttestedWorkload, 'tee' | 'workload'>, trustDomain: string): SpiffeId {
  const colon = w.workload.indexOf(':')
  const kind = w.workload.slice(0, colon)
  const name = kind === w.tee ? w.workload.slice(colon + 1) : ''
  if (grant.id.includes('{workload}') && name === '') throw notGranted('this attestation has no workload name for the SPIFFE ID template (an unenrolled TPM)')
  let id: SpiffeId
  try {
    id = expandSpiffeTemplate(grant.id, { workload: name, tee: w.tee })
  } catch (e) {
    throw isKeywardError(e) ? notGranted(`the SPIFFE grant yields no valid ID for this workload: ${e.message}`) : e
  }
  if (id.trustDomain !== trustDomain) throw notGranted(`the SPIFFE grant names trust domain ${id.trustDomain}; this broker issues for ${trustDomain}`)
  return id
}

export interface IssuedX509Svid {
  spiffeId: string
  /** The SVID, then the intermediate that signed it (PEM). */
  certificates: string
  /** The trust domain's X.509 authorities (PEM). */
  bundle: string
  serial: string
  notAfter: Date
}

/** An X509-SVID for the CSR, whose key must be the attested key (checkCsr). */
export async function issueX509SvidFor(authority: SpiffeAuthority, grant: SpiffeGrant, w: AttestedWorkload, csrDer: Uint8Array, now: Date): Promise<IssuedX509Svid> {
  const id = spiffeIdFor(grant, w, authority.trustDomain)
  const csr = await checkCsr(csrDer, w.jkt)
  const issuer = await authority.x509Issuer()
  // X.509 times have whole seconds (RFC 5280 §4.1.2.5).
  const t = Math.floor(now.getTime() / 1000) * 1000
  const notAfter = new Date(Math.min(t + grant.x509TtlSeconds * 1000, issuer.cert.notAfter.getTime()))
  const leaf = await issueX509Svid({ spki: csr.spki, spiffeId: id.id, issuer, notBefore: new Date(t - X509_BACKDATE_MS), notAfter })
  return { spiffeId: id.id, certificates: toPem([leaf, ...issuer.chain]), bundle: await authority.rootsPem(), serial: leaf.serialNumber, notAfter: leaf.notAfter }
}

export interface IssuedJwtSvid {
  spiffeId: string
  token: string
  jti: string
  expiresAt: Date
}

/**
 * A JWT-SVID (JWT-SVID.md): ES256 with the kid of a jwt-svid bundle key, typ JWT, sub = the
 * SPIFFE ID, aud = the requested audiences (each one the grant lists), exp = now + the grant's
 * short lifetime, iat, jti. No other header (§2).
 */
export async function issueJwtSvidFor(authority: SpiffeAuthority, grant: SpiffeGrant, w: AttestedWorkload, audience: readonly string[], now: Date): Promise<IssuedJwtSvid> {
  const id = spiffeIdFor(grant, w, authority.trustDomain)
  if (audience.length === 0) throw new KeywardError('ERR_BAD_REQUEST', 'a JWT-SVID needs at least one audience (JWT-SVID.md §3.2)')
  if (audience.length > MAX_JWT_AUDIENCES) throw new KeywardError('ERR_BAD_REQUEST', `at most ${MAX_JWT_AUDIENCES} audiences`)
  const outside = audience.filter((a) => !grant.audiences.includes(a))
  if (outside.length > 0) throw notGranted(`the SPIFFE grant does not list audience ${JSON.stringify(outside[0])}`)
  const signer = await authority.jwtSigner()
  const iat = Math.floor(now.getTime() / 1000)
  const exp = iat + grant.jwtTtlSeconds
  const jti = randomUUID()
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: 'JWT' })
    .setSubject(id.id)
    .setAudience(audience.length === 1 ? audience[0]! : [...audience])
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(signer.privateKey)
  return { spiffeId: id.id, token, jti, expiresAt: new Date(exp * 1000) }
}
