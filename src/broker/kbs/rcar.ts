// The Trustee KBS protocol (RCAR: request, challenge, attestation, response; version 0.4.0 as
// guest-components speak it) on keyward's own attestation: the challenge nonce is a keyward
// nonce (one use across replicas), evidence is translated for keyward's verifiers, and the same
// policies, reference values, audit and revocation decide. No HTTP here: the route module
// (src/broker/routes/kbs.ts) maps cookies, headers and statuses.
//
// Binding (trustee kbs/src/attestation/backend.rs; guest-components rcar_client.rs): the evidence
// commits to HASH(JCS({"tee-pubkey", "nonce", "additional-evidence"})), RFC 8785 canonical JSON,
// with the hash the KBS selects in the Challenge. keyward selects sha256, so the digest fills
// REPORT_DATA[0..32] with zeros after it, which is exactly what keyward's own binding occupies
// and what its SNP verifier checks — the verifier is unchanged, only the expected digest differs.
import { randomBytes } from 'node:crypto'
import type { JWK } from 'jose'
import { KeywardError, isKeywardError } from '../../errors.js'
import { canonicalJson } from '../../audit/chain.js'
import { constantTimeEqual, fromB64, fromHex, sha256, toB64url, toHex } from '../../util/bytes.js'
import type { Tee } from '../../protocol/tee.js'
import type { BrokerDeps } from '../deps.js'
import { attestAudited, errorForAudit, nonceId } from '../attest.js'
import { enforceCap } from '../abuse.js'
import { readSecretValue } from '../release.js'
import { KbsAttestation, KbsRequest, TeePubKey } from './schemas.js'
import { translateSnpEvidence } from './snp-evidence.js'
import { encryptResource, teeKeyObject, type FlattenedJwe } from './jwe.js'
import { kbsSecretName } from './resource.js'

export const KBS_PROTOCOL_VERSION = '0.4.0'
/** The audience of the attestation tokens /kbs/v0/attest issues: /v1 refuses them, and /kbs refuses /v1's. */
export const KBS_TOKEN_AUDIENCE = 'keyward-kbs'
export const KBS_HASH_ALGORITHM = 'sha256'

/** KBS tee names keyward verifies, and the keyward verifier each goes to. */
const SERVED: Record<string, Tee> = { snp: 'sev-snp' }
/** Why the other kbs-types TEEs are refused (docs/trustee.md). */
const NOT_SERVED: Record<string, string> = {
  'az-snp-vtpm': 'its vTPM quote is signed by an AK that only the Azure HCL report vouches for; keyward has no verifier for HCL reports',
  'az-tdx-vtpm': 'keyward has no TDX verifier',
  tdx: 'keyward has no TDX verifier',
  sgx: 'keyward has no SGX verifier',
  tpm: "guest-components' TPM evidence carries its AK as a bare public key (no TPMT_PUBLIC, so no TPM name) and no event log; keyward trusts quotes only from enrolled AKs, found by name (use /v1 with keyward-client)",
  cca: 'keyward has no Arm CCA verifier',
  csv: 'keyward has no Hygon CSV verifier',
  se: 'keyward has no IBM Secure Execution verifier',
  hygondcu: 'keyward has no Hygon DCU verifier',
  nvidia: 'keyward has no NVIDIA GPU verifier',
  sample: 'sample evidence proves nothing',
  sampledevice: 'sample evidence proves nothing',
}

const sessionKey = (cookie: string): string => toHex(sha256(new TextEncoder().encode(cookie)))

function parse<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }, v: unknown, what: string): T {
  const r = schema.safeParse(v)
  if (!r.success) {
    const i = r.error.issues[0]!
    throw new KeywardError('ERR_BAD_REQUEST', `invalid ${what} at ${i.path.map(String).join('.') || '(body)'}: ${i.message}`)
  }
  return r.data
}

/** The KBS binding digest: SHA-256 over the RFC 8785 canonical JSON of the primary runtime data. */
export function runtimeDataDigest(nonce: string, teePubkey: TeePubKey, additionalEvidence: string): Uint8Array {
  return sha256(new TextEncoder().encode(canonicalJson({ 'tee-pubkey': teePubkey, nonce, 'additional-evidence': additionalEvidence })))
}

export interface KbsChallenge {
  cookie: string
  expiresAt: number
  challenge: { nonce: string; 'extra-params': Record<string, string> }
}

/** POST /kbs/v0/auth: version and TEE checked, a keyward nonce and a session stored, the challenge returned. */
export async function kbsAuth(deps: BrokerDeps, body: unknown): Promise<KbsChallenge> {
  const req = parse(KbsRequest, body, 'KBS Request')
  const v = /^(\d+)\.(\d+)\.(\d+)$/.exec(req.version)
  if (!v || v[1] !== '0' || v[2] !== '4') {
    throw new KeywardError('ERR_BAD_REQUEST', `KBS protocol version ${req.version} is not served: keyward speaks ${KBS_PROTOCOL_VERSION}`)
  }
  const tee = SERVED[req.tee]
  if (!tee || !deps.verifiers[tee]) {
    const why = NOT_SERVED[req.tee] ?? 'it is not a TEE of the KBS protocol'
    throw new KeywardError('ERR_UNKNOWN_TEE', `tee ${req.tee} is not served by keyward: ${why}`)
  }
  const extra = req['extra-params']
  const offered = typeof extra === 'object' ? extra['supported-hash-algorithms'] : undefined
  if (Array.isArray(offered) && !offered.some((a) => typeof a === 'string' && a.toLowerCase() === KBS_HASH_ALGORITHM)) {
    throw new KeywardError('ERR_BAD_REQUEST', `keyward binds runtime data with ${KBS_HASH_ALGORITHM}, which the client does not offer`)
  }
  const now = deps.clock().getTime()
  const ttl = deps.config.nonceTtlSeconds
  await enforceCap(
    () => deps.store.countNonces(),
    async () => (await deps.store.pruneKbsSessions(now), deps.store.pruneSpentNonces(now)),
    deps.config.limits.maxOutstandingNonces,
    'challenges',
    ttl,
  )
  const nonce = randomBytes(32)
  const cookie = toB64url(randomBytes(32))
  const expiresAt = now + ttl * 1000
  await deps.store.insertNonce({ id: nonceId(nonce), createdAt: now, expiresAt })
  await deps.store.insertKbsSession({ id: sessionKey(cookie), nonceId: nonceId(nonce), tee, createdAt: now, expiresAt, jti: null, teePubkey: null })
  // Trustee's KBS encodes the nonce as standard base64 (kbs/src/attestation/backend.rs make_nonce).
  return { cookie, expiresAt, challenge: { nonce: nonce.toString('base64'), 'extra-params': { 'selected-hash-algorithm': KBS_HASH_ALGORITHM } } }
}

async function liveSession(deps: BrokerDeps, cookie: string | undefined) {
  if (!cookie) throw new KeywardError('ERR_UNAUTHORIZED', 'no kbs-session-id cookie: POST /kbs/v0/auth first')
  const s = await deps.store.getKbsSession(sessionKey(cookie))
  if (!s || s.expiresAt <= deps.clock().getTime()) throw new KeywardError('ERR_UNAUTHORIZED', 'unknown or expired KBS session')
  return s
}

export interface KbsAttestOutcome {
  token: string
  expiresAt: number
}

/**
 * POST /kbs/v0/attest. Audited as /v1/attest is: once the nonce is spent every outcome is chained
 * with its reasons and the error carries `detail.audited`; refusals before that (no session,
 * malformed body, wrong nonce) carry no such mark, and the caller counts them as noise.
 */
export async function kbsAttest(deps: BrokerDeps, cookie: string | undefined, body: unknown, reqId: string): Promise<KbsAttestOutcome> {
  const session = await liveSession(deps, cookie)
  if (session.jti !== null) throw new KeywardError('ERR_NONCE_USED', 'this KBS session has attested already: start a new one with /kbs/v0/auth')
  const att = parse(KbsAttestation, body, 'KBS Attestation')
  const rd = att['runtime-data']
  const nonce = fromB64(rd.nonce)
  if (!nonce || nonce.length !== 32 || !constantTimeEqual(fromHex(nonceId(nonce))!, fromHex(session.nonceId)!)) {
    throw new KeywardError('ERR_NONCE_MISMATCH', "runtime-data.nonce is not this session's challenge nonce")
  }
  const additional = att['tee-evidence'].additional_evidence
  if (additional !== '') {
    throw new KeywardError('ERR_EVIDENCE_UNSUPPORTED', 'additional (device) evidence is not verified by keyward: attest without additional attesters')
  }
  const key = rd['tee-pubkey']
  try {
    teeKeyObject(key)
  } catch {
    throw new KeywardError('ERR_KEY_UNSUPPORTED', 'tee-pubkey is not a valid public key')
  }
  const tee = session.tee as Tee
  const evidence = tee === 'sev-snp' ? translateSnpEvidence(att['tee-evidence'].primary_evidence) : undefined
  if (!evidence) throw new KeywardError('ERR_UNKNOWN_TEE', `no KBS evidence translation for ${tee}`)
  const binding = runtimeDataDigest(rd.nonce, key, additional)
  let audited = true
  try {
    const out = await attestAudited(
      deps,
      { tee, nonce: toB64url(nonce), key: key as JWK, evidence },
      {
        via: 'kbs',
        reqId,
        unaudited: () => (audited = false),
        measuredItems: false,
        // The session is bound before the allow is audited: a failure to bind is an audited denial.
        onAllowed: async (o) => {
          await deps.store.attestKbsSession(session.id, { jti: o.jti, teePubkey: JSON.stringify(key), expiresAt: o.expiresAt })
        },
      },
      { binding, audience: KBS_TOKEN_AUDIENCE },
    )
    return { token: out.token, expiresAt: out.expiresAt }
  } catch (e) {
    if (!audited) throw e
    // As /v1/attest: an unauthenticated caller learns how many conditions failed, not which (config denialDetail).
    if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED' && deps.config.denialDetail === 'summary') {
      const failed = Array.isArray(e.detail?.failures) ? e.detail.failures.length : 0
      throw new KeywardError('ERR_POLICY_DENIED', `policy denied the attestation: ${failed} condition(s) failed (details are in the audit)`, { detail: { failed, audited: true } })
    }
    throw isKeywardError(e) ? new KeywardError(e.code, e.message, { detail: { ...(e.detail ?? {}), audited: true } }) : e
  }
}

export interface KbsCredentials {
  cookie?: string | undefined
  /** The token of `Authorization: Bearer <token>`. */
  bearer?: string | undefined
  /** Charged with the attested key's thumbprint once the caller is authenticated (the per-workload rate limit of /v1 releases). */
  charge?: (jkt: string) => void
}

export interface KbsRelease {
  jwe: FlattenedJwe
  name: string
}

/**
 * GET /kbs/v0/resource/<repo>/<type>/<tag>: the session cookie or the attestation token, the
 * attestation not revoked, its policy as applied now granting `kbs:///repo/type/tag`, then the
 * newest version as a JWE to the tee-pubkey the evidence bound. A release and every refusal
 * after authentication are audited; refusals before it are for the caller to count as noise.
 */
export async function kbsResource(deps: BrokerDeps, creds: KbsCredentials, rawPath: string, reqId: string): Promise<KbsRelease> {
  const name = kbsSecretName(rawPath)
  let jti: string
  let via: 'cookie' | 'token'
  let session
  if (creds.cookie !== undefined) {
    session = await liveSession(deps, creds.cookie)
    if (session.jti === null) throw new KeywardError('ERR_UNAUTHORIZED', 'this KBS session has not attested')
    jti = session.jti
    via = 'cookie'
  } else if (creds.bearer !== undefined) {
    const claims = await deps.tokens.verify(creds.bearer, { audience: KBS_TOKEN_AUDIENCE })
    session = await deps.store.getKbsSessionByJti(claims.jti!)
    if (!session) throw new KeywardError('ERR_TOKEN_INVALID', 'token was not issued by /kbs/v0/attest')
    jti = claims.jti!
    via = 'token'
  } else {
    throw new KeywardError('ERR_UNAUTHORIZED', 'a kbs-session-id cookie or Authorization: Bearer <attestation token> is required')
  }
  const attestation = await deps.store.getAttestation(jti)
  if (!attestation || attestation.revokedAt !== null) throw new KeywardError('ERR_TOKEN_INVALID', 'attestation revoked')
  const subject = attestation.jkt
  creds.charge?.(subject)
  try {
    const grants = await deps.appraiser.grantsFor(attestation.policy, attestation.policyVersion)
    if (!grants) throw new KeywardError('ERR_NOT_GRANTED', 'the policy that admitted this attestation is no longer active')
    if (!grants.secrets.includes(name)) throw new KeywardError('ERR_NOT_GRANTED', `the admitting policy does not grant ${name}`)
    const { version, value } = await readSecretValue(deps, name)
    const key = TeePubKey.parse(JSON.parse(session.teePubkey!))
    const jwe = encryptResource(key, value)
    deps.metrics.releases.inc({ kind: 'kbs-resource', result: 'allow' })
    await deps.audit({ type: 'release:kbs-resource', subject, decision: 'allow', detail: { name, version, reqId, via, workload: attestation.workload, jti } })
    return { jwe, name }
  } catch (e) {
    const err = errorForAudit(e)
    deps.metrics.releases.inc({ kind: 'kbs-resource', result: err.code })
    await deps.audit({ type: 'release:kbs-resource', subject, decision: 'deny', detail: { name, reqId, via, workload: attestation.workload, jti, ...err } })
    throw isKeywardError(e) ? new KeywardError(e.code, e.message, { detail: { ...(e.detail ?? {}), audited: true } }) : e
  }
}
