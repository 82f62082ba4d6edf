// Attestation: nonce → evidence → binding → runtime state → policy → attestation result.
// Order matters: the evidence is decoded before the nonce is spent (garbage costs no database
// write), the nonce is consumed before any signature is checked (one nonce, one attempt, across
// replicas), and every outcome is audited with its reasons. decode() is structural only (bounded,
// linear parsing); X.509 and signatures, whose cost the caller sizes, run in verify(), after the
// nonce, so each such attempt costs a challenge (test/verifiers/sev-snp/decode-order.test.ts).
// The HTTP routes (routes/attest.ts, routes/appraise.ts) call attestWorkload and
// appraiseForRelyingParty at the end of this file, which audit and answer around attest().
import { createPublicKey } from 'node:crypto'
import type { JWK } from 'jose'
import type { z } from 'zod'
import { KeywardError, isKeywardError } from '../errors.js'
import { bindingDigest, jwkThumbprint, thumbprintBytes, ZERO_STATE } from '../protocol/binding.js'
import { constantTimeEqual, fromB64url, fromHex, sha256, toHex } from '../util/bytes.js'
import type { AttestRequest } from '../protocol/wire.js'
import type { AllowlistFacts, Appraisal, BrokerDeps } from './deps.js'
import type { VerifyContext } from '../verifiers/types.js'
import type { VerifiedClaims } from '../protocol/claims.js'
import { allowlistTrustVector, buildEarClaims, teeTrustVector, type EarInput } from './ear.js'
import { claimsToJson, jsonSafe } from '../verifiers/claims-json.js'
import { allowlistFactsFor } from './runtime-state.js'
import { assertEkNotDenied, ENROLLED_NAME } from './enrolment.js'
import type { DecisionState } from './decision-state.js'
import { statementDigest } from '../protocol/allowlist-state.js'
import { verifyDpopProof } from './dpop.js'
import type { Noise } from './abuse.js'
import { measuredItems, type MeasuredItems } from './measured-items.js'
import { revokeKeyOnFailedReattestation } from './oauth/failed-reattestation.js'
import { assertNotQuarantined, onWorkloadDecision } from './containment.js'
import { inSpan } from './tracing.js'
import { cachedThumbprint } from './jwk-cache.js'

export const VERIFIER_ID = { developer: 'keyward', build: 'keyward 0.1.0' }

export interface AttestOutcome {
  token: string
  jti: string
  expiresAt: number
  appraisal: Appraisal
  claims: VerifiedClaims
  jkt: string
  workload: string
  /** The measured items of this evidence (drift tracking). */
  items: MeasuredItems
}

export function nonceId(nonce: Uint8Array): string {
  return toHex(sha256(nonce))
}

/** An attest request; other front ends (the Trustee KBS protocol) bring keys /v1 does not accept (P-521). */
export type AttestInput = Omit<z.infer<typeof AttestRequest>, 'key'> & { key: JWK }

export interface AttestOptions {
  audience?: string
  onNonceSpent?: () => void
  /**
   * The digest the evidence must commit to, when a front end has its own binding rule (the KBS
   * protocol's runtime-data hash, src/broker/kbs/binding.ts) instead of keyward's bindingDigest.
   * The nonce is still keyward's challenge nonce, spent exactly once, and the rule must cover it.
   */
  binding?: Uint8Array
}

/** Verifies evidence and appraises it; throws KeywardError on any failure (denials carry failures in detail). */
export async function attest(deps: BrokerDeps, req: AttestInput, opts: AttestOptions = {}): Promise<AttestOutcome> {
  const verifier = deps.verifiers[req.tee]
  if (!verifier) throw new KeywardError('ERR_UNKNOWN_TEE', `no verifier for tee ${req.tee}`)
  const evidence = verifier.decode(req.evidence)
  const nonce = fromB64url(req.nonce)
  if (!nonce || nonce.length !== 32) throw new KeywardError('ERR_BAD_REQUEST', 'nonce must be 32 bytes base64url')
  const jkt = await cachedThumbprint(req.key as JWK)
  const now = deps.clock()

  const consumed = await deps.store.consumeNonce(nonceId(nonce), now.getTime())
  if (consumed !== 'ok') {
    const code = consumed === 'used' ? 'ERR_NONCE_USED' : consumed === 'expired' ? 'ERR_NONCE_EXPIRED' : 'ERR_NONCE_UNKNOWN'
    throw new KeywardError(code, `challenge nonce ${consumed}`)
  }
  opts.onNonceSpent?.()

  const allowlistEv = req.runtimeState && {
    records: req.runtimeState.allowlist.records.map((h) => fromHex(h)!),
    statement: fromHex(req.runtimeState.allowlist.statement)!,
  }
  const state = allowlistEv ? statementDigest(allowlistEv.statement) : ZERO_STATE
  // One read of the decision state serves the AK lookup (TPM, during verification), the appraisal
  // and the quarantine check; it is read when first needed, so evidence that fails to verify
  // before its AK is asked for costs no read.
  let stateRead: Promise<DecisionState> | undefined
  const decisionState = (): Promise<DecisionState> => (stateRead ??= deps.appraiser.state())
  const jktBytes = thumbprintBytes(jkt)
  const binding = opts.binding ?? bindingDigest(nonce, jktBytes, state)
  const ctx: VerifyContext = {
    now,
    clockSkewMs: deps.config.clockSkewSeconds * 1000,
    expectedBinding: binding,
    expectedNonce: nonce,
    trust: {
      ...(deps.trust.nitroRoots ? { nitro: { roots: deps.trust.nitroRoots } } : {}),
      tpm: { ekRoots: deps.trust.ekRoots.map((c) => c.cert) },
    },
    resolveAk: async (name) => {
      const decided = await decisionState()
      const row = await decided.ak(name)
      if (!row) return null
      // Asked only after the quote verified under this AK: these answers go to its holder.
      if (row.revokedAt === null && row.status === 'pending') {
        throw new KeywardError('ERR_ENROLMENT_PENDING', 'this AK is registered but its enrolment waits for an authority (keyward enrol approve)', { detail: { akName: name } })
      }
      await assertEkNotDenied(decided, row)
      return { via: row.via, workload: row.workload, revoked: row.revokedAt !== null || row.status !== 'enrolled' }
    },
  }
  // Wall time on purpose: a latency metric, not a decision (decisions use deps.clock).
  const endVerify = deps.metrics.verifyDuration.startTimer({ tee: req.tee })
  let claims: VerifiedClaims
  try {
    claims = await inSpan('keyward.verify', { 'keyward.tee': req.tee }, () => verifier.verify(evidence, ctx))
  } finally {
    endVerify()
  }

  // Evidence that binds a key itself (Nitro public_key) must bind the key the workload presents (AWS KMS's model).
  if (claims.publicKey && claims.publicKey.length > 0) {
    const spki = new Uint8Array(createPublicKey({ key: req.key as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' }))
    if (!constantTimeEqual(spki, claims.publicKey)) {
      throw new KeywardError('ERR_BINDING_MISMATCH', 'the attestation document public_key is not the presented key')
    }
  }

  let allowlist: AllowlistFacts | undefined
  if (allowlistEv) allowlist = allowlistFactsFor(claims, allowlistEv, deps.config.tpm.allowlistPcr, { nonce, jkt: jktBytes })

  const decided = await decisionState()
  const appraisal = await inSpan('keyward.appraise', { 'keyward.tee': req.tee }, () => deps.appraiser.appraise({ claims, ...(allowlist ? { allowlist } : {}), now }, decided))
  const workload = workloadId(claims)
  const items = measuredItems(claims, allowlist)
  if (!appraisal.allow) {
    throw new KeywardError('ERR_POLICY_DENIED', 'policy denied the attestation', {
      detail: { failures: appraisal.failures, policy: appraisal.policy, workload, jkt, measurement: claims.measurement, items },
    })
  }

  // Containment (src/broker/containment.ts): a quarantined workload gets no attestation result.
  await assertNotQuarantined(decided, workload, { jkt })

  const policyId = `keyward:policy:${appraisal.policy}@${appraisal.policyVersion}`
  const submods: EarInput['submods'] = {
    [claims.tee]: { vector: teeTrustVector({ claims, referenceValues: appraisal.referenceValues }), policyId, keyward: claimsToJson(claims) },
  }
  if (allowlist) submods['exec-allowlist'] = { vector: allowlistTrustVector(allowlist), policyId, keyward: jsonSafe({ ...allowlist }) }
  const ear = buildEarClaims({
    form: deps.config.earForm,
    verifier: VERIFIER_ID,
    nonce: req.nonce,
    jkt,
    workload,
    submods,
    keyward: { workload, tee: claims.tee, policy: appraisal.policy, measurement: claims.measurement },
  })
  const issued = await deps.tokens.issue(ear, opts.audience ? { audience: opts.audience } : {})
  await deps.store.insertAttestation({
    jti: issued.jti,
    jkt,
    tee: claims.tee,
    policy: appraisal.policy,
    policyVersion: appraisal.policyVersion,
    measurement: claims.measurement,
    referenceIds: JSON.stringify(appraisal.referenceIds),
    workload,
    issuedAt: now.getTime(),
    expiresAt: issued.expiresAt,
    revokedAt: null,
    akName: claims.tee === 'tpm' ? claims.ak.name : null,
  })
  return { token: issued.token, jti: issued.jti, expiresAt: issued.expiresAt, appraisal, claims, jkt, workload, items }
}

/**
 * A stable name for the workload behind the evidence (token `sub`, drift tracking, audit, Vault
 * leases), namespaced so that no TEE or enrolment can produce another's: `tpm:<enrolled name>`
 * (names are [a-z0-9._-], never ':'), `tpm-ak:<AK name prefix>` for a TPM without an enrolled
 * name, `nitro:<PCR0 prefix>`, `sev-snp:<measurement prefix>`.
 */
export function workloadId(c: VerifiedClaims): string {
  if (c.tee !== 'tpm') return `${c.tee}:${c.measurement.slice(0, 24)}`
  const enrolled = c.ak.trust?.workload
  if (enrolled !== undefined && ENROLLED_NAME.test(enrolled)) return `tpm:${enrolled}`
  return `tpm-ak:${(c.ak.name ?? c.measurement).slice(0, 24)}`
}

/**
 * Records the measured state of the workload and whether it drifted from an allowing decision.
 * An allowed state becomes the workload's baseline (what it measured when last allowed); a
 * denial keeps the previous baseline and the time the workload first diverged from it.
 */
export async function recordWorkload(
  deps: BrokerDeps,
  tee: string,
  workload: string,
  decision: 'allow' | 'deny',
  actual: { measurement?: unknown; policy?: string; failures?: unknown; items?: MeasuredItems },
): Promise<void> {
  const now = deps.clock().getTime()
  const baseline = decision === 'allow' ? JSON.stringify({ at: now, policy: actual.policy ?? null, items: actual.items ?? {} }) : null
  const prev = await deps.store.recordWorkloadDecision({ id: workload, tee, at: now, decision, actual: JSON.stringify(actual), baseline })
  await onWorkloadDecision(deps, prev, { workload, tee, decision, policy: actual.policy, items: actual.items, failures: actual.failures })
}

export function errorForAudit(e: unknown): { code: string; message: string; failures?: unknown } {
  if (isKeywardError(e)) return { code: e.code, message: e.message, ...(e.detail?.failures ? { failures: e.detail.failures } : {}) }
  return { code: 'ERR_INTERNAL', message: 'internal error' }
}

/** Who asked, as the route read it: plain values for auditing and noise accounting. */
export interface AttestCaller {
  reqId: string
  noise: Noise
}

/** The answer to an allowed attestation (POST /v1/attest, and the allow of /v1/appraise). */
export interface AttestAnswer {
  token: string
  expiresAt: string
  policy: string
  claims: { tee: string; measurement: string; debug: boolean; workload: string }
}

/**
 * Passport model (POST /v1/attest): the workload attests itself and receives its attestation
 * result. An optional DPoP proof (over POST of the attest URL, `nonce` = the challenge nonce,
 * signed by the presented key) proves the caller holds the key; only then may a denial revoke
 * that key's Vault leases. A proof that is present must be valid. The caller is not
 * authenticated: with denialDetail `summary` it learns that, and how many, conditions failed, not which.
 */
export async function attestWorkload(
  deps: BrokerDeps,
  req: z.infer<typeof AttestRequest>,
  caller: AttestCaller & { possessionProof?: { proof: string; method: string; url: string } | undefined },
): Promise<AttestAnswer> {
  if (req.audience !== undefined && !deps.config.extraAudiences.includes(req.audience)) {
    throw new KeywardError('ERR_BAD_REQUEST', 'audience is not one this broker issues tokens for')
  }
  let possession = false
  if (caller.possessionProof) {
    const jkt = await cachedThumbprint(req.key as JWK).catch(() => {
      throw new KeywardError('ERR_KEY_UNSUPPORTED', 'key is not a usable public JWK')
    })
    await verifyDpopProof({ ...caller.possessionProof, nonce: req.nonce, jkt, now: deps.clock() }, (id, exp) => deps.store.useDpopProof(id, exp))
    possession = true
  }
  try {
    return await attestAndAudit(deps, req, 'attest', caller, req.audience, possession)
  } catch (e) {
    if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED' && deps.config.denialDetail === 'summary') {
      const failed = Array.isArray(e.detail?.failures) ? e.detail.failures.length : 0
      throw new KeywardError('ERR_POLICY_DENIED', `policy denied the attestation: ${failed} condition(s) failed (details are in the audit)`, { detail: { failed } })
    }
    throw e
  }
}

/** The answer of POST /v1/appraise: a policy denial is an answer (200, every failure), not an error. */
export type AppraiseAnswer = ({ decision: 'allow' } & AttestAnswer) | { decision: 'deny'; error: { code: string; message: string; failures: unknown } }

/**
 * Background-check model (RFC 9334): a relying party (a Vault auth plugin), authenticated by its
 * credential `rp`, submits its client's evidence; the token's audience is that relying party.
 */
export async function appraiseForRelyingParty(deps: BrokerDeps, req: z.infer<typeof AttestRequest>, rp: string, caller: AttestCaller): Promise<AppraiseAnswer> {
  try {
    return { decision: 'allow', ...(await attestAndAudit(deps, req, `appraise:${rp}`, caller, rp)) }
  } catch (e) {
    if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED') return { decision: 'deny', error: { code: e.code, message: e.message, failures: e.detail?.failures ?? [] } }
    throw e
  }
}

/** The /v1 attestation (passport and background check) in its span, answered from the audited outcome. */
function attestAndAudit(deps: BrokerDeps, req: z.infer<typeof AttestRequest>, via: string, caller: AttestCaller, audience?: string, possession = false): Promise<AttestAnswer> {
  return inSpan('keyward.attest', { 'keyward.tee': req.tee, 'keyward.via': via.split(':')[0]! }, async () => {
    const reqId = caller.reqId
    const out = await attestAudited(
      deps,
      req,
      {
        via,
        reqId,
        unaudited: (code) => caller.noise('/v1/attest', code, reqId),
        possession,
        measuredItems: true,
        onPolicyDenied: async (e, jkt) => {
          const detail = e.detail
          if (Array.isArray(detail?.failures)) {
            for (const f of detail.failures as { condition?: unknown }[]) if (typeof f.condition === 'string') deps.metrics.policyFailures.inc({ tee: req.tee, condition: f.condition })
          }
          if (typeof detail?.workload !== 'string') return
          await revokeKeyOnFailedReattestation(deps, { jkt, workload: detail.workload, possession, reqId })
          if (deps.vault) await revokeOnFailedReattestation(deps, jkt, detail.workload, possession, reqId)
        },
      },
      audience === undefined ? {} : { audience },
    )
    return {
      token: out.token,
      expiresAt: new Date(out.expiresAt).toISOString(),
      policy: out.appraisal.policy,
      claims: { tee: out.claims.tee, measurement: out.claims.measurement, debug: out.claims.debug, workload: out.workload },
    }
  })
}

/** What an attestation front end (/v1, the KBS protocol) adds to the audit of its attestations. */
export interface AttestAudit {
  /** detail.via of the audit rows: `attest`, `appraise:<credential>`, `kbs`. */
  via: string
  reqId: string
  /** A refusal before the nonce was spent: not audited, for the caller to count as noise. */
  unaudited: (code: string) => void
  /** /v1: whether a DPoP proof showed possession of the key, recorded on every denial. Absent (KBS), not recorded. */
  possession?: boolean
  /** Whether the workload record keeps the measured items and the denying policy (drift alerts): /v1 does, KBS does not. */
  measuredItems: boolean
  /** Runs once the evidence is allowed, before that is audited (KBS binds its session here); a throw is an audited denial. */
  onAllowed?: (out: AttestOutcome) => Promise<void>
  /** Runs after a policy denial is audited and recorded (/v1: failure metrics, revocation on failed re-attestation). */
  onPolicyDenied?: (e: KeywardError, jkt: string) => Promise<void>
}

/**
 * attest() with its audit: once the challenge nonce is spent every outcome is chained with its
 * reasons (at most one row per issued challenge, and challenges are capped and rate-limited) and
 * the workload's decision recorded; failures before that (undecodable evidence, unknown tee, bad,
 * unknown, expired or used nonce) are noise: counted, not audited. Rethrows every failure.
 */
export async function attestAudited(deps: BrokerDeps, req: AttestInput, audit: AttestAudit, opts: Omit<AttestOptions, 'onNonceSpent'> = {}): Promise<AttestOutcome> {
  const { via, reqId } = audit
  let nonceSpent = false
  try {
    const out = await attest(deps, req, { ...opts, onNonceSpent: () => (nonceSpent = true) })
    await audit.onAllowed?.(out)
    deps.metrics.attestations.inc({ tee: req.tee, result: 'allow' })
    const { policy, policyVersion, referenceIds } = out.appraisal
    await deps.audit({
      type: 'attestation',
      subject: out.jkt,
      decision: 'allow',
      detail: { via, reqId, tee: req.tee, workload: out.workload, policy, policyVersion, measurement: out.claims.measurement, jti: out.jti, referenceIds },
    })
    await recordWorkload(deps, req.tee, out.workload, 'allow', { measurement: out.claims.measurement, policy, ...(audit.measuredItems ? { items: out.items } : {}) })
    return out
  } catch (e) {
    const err = errorForAudit(e)
    deps.metrics.attestations.inc({ tee: req.tee, result: err.code })
    if (!nonceSpent) {
      audit.unaudited(err.code)
      throw e
    }
    const detail = isKeywardError(e) ? e.detail : undefined
    // detail.workload is set only when the evidence verified and the policy denied it.
    const workload = typeof detail?.workload === 'string' ? detail.workload : undefined
    const jkt = await jwkThumbprint(req.key).catch(() => 'invalid-key')
    await deps.audit({
      type: 'attestation',
      subject: jkt,
      decision: 'deny',
      detail: { via, reqId, tee: req.tee, ...err, ...(workload ? { workload } : {}), ...(audit.possession === undefined ? {} : { possession: audit.possession }) },
    })
    if (isKeywardError(e) && e.code === 'ERR_POLICY_DENIED') {
      if (workload) {
        const actual = audit.measuredItems
          ? { measurement: detail?.measurement, policy: detail?.policy as string, failures: detail?.failures, items: detail?.items as MeasuredItems }
          : { measurement: detail?.measurement, failures: detail?.failures }
        await recordWorkload(deps, req.tee, workload, 'deny', actual)
      }
      await audit.onPolicyDenied?.(e, jkt)
    }
    throw e
  }
}

/**
 * A workload that fails re-attestation loses the Vault tokens it was given. Only its own, and only
 * on its own say: the request must prove possession of the key (a DPoP proof; the public key alone
 * is in every proof header) and the denied evidence must verify as the workload the leases were
 * minted for, since anyone may bind other evidence to a public key. Otherwise: audited, nothing revoked.
 */
async function revokeOnFailedReattestation(deps: BrokerDeps, jkt: string, workload: string, possession: boolean, reqId: string): Promise<void> {
  const leases = await deps.store.listLiveVaultLeases({ jkt })
  if (leases.length === 0) return
  if (!possession) {
    await deps.audit({
      type: 'vault.token.revoke',
      subject: jkt,
      decision: 'deny',
      detail: { reqId, reason: 'denied attestation without proof of possession of the key: leases kept', leases: leases.length },
    })
    return
  }
  for (const lease of leases) {
    if ((await deps.store.getAttestation(lease.jti))?.workload === workload) {
      await deps.vault!.revokeFor({ jkt }, 'failed re-attestation').catch((err: unknown) => deps.logger.warn({ err: String(err) }, 'Vault revocation failed; leases stay live for a retry'))
      return
    }
  }
}
