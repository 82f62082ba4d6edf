// Attestation: nonce → evidence → binding → runtime state → policy → attestation result.
// Order matters: the evidence is decoded before the nonce is spent (garbage costs no database
// write), the nonce is consumed before any signature is checked (one nonce, one attempt, across
// replicas), and every outcome is audited with its reasons. decode() is structural only (bounded,
// linear parsing); X.509 and signatures, whose cost the caller sizes, run in verify(), after the
// nonce, so each such attempt costs a challenge (test/verifiers/sev-snp/decode-order.test.ts).
import { createPublicKey } from 'node:crypto'
import type { JWK } from 'jose'
import type { z } from 'zod'
import { KeywardError, isKeywardError } from '../errors.js'
import { bindingDigest, jwkThumbprint, thumbprintBytes, ZERO_STATE } from '../protocol/binding.js'
import { constantTimeEqual, fromB64url, fromHex, sha256, toHex } from '../util/bytes.js'
import type { AttestRequest } from './schemas.js'
import type { AllowlistFacts, Appraisal, BrokerDeps } from './deps.js'
import type { VerifyContext } from '../verifiers/types.js'
import type { VerifiedClaims } from '../protocol/claims.js'
import { allowlistTrustVector, buildEarClaims, teeTrustVector, type EarInput } from './ear.js'
import { claimsToJson, jsonSafe } from '../verifiers/claims-json.js'
import { allowlistFactsFor } from './runtime-state.js'
import { assertEkNotDenied, ENROLLED_NAME } from './enrolment.js'
import { statementDigest } from '../protocol/allowlist-state.js'
import { measuredItems, type MeasuredItems } from './measured-items.js'

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

/** Verifies evidence and appraises it; throws KeywardError on any failure (denials carry failures in detail). */
export async function attest(deps: BrokerDeps, req: z.infer<typeof AttestRequest>, opts: { audience?: string; onNonceSpent?: () => void } = {}): Promise<AttestOutcome> {
  const verifier = deps.verifiers[req.tee]
  if (!verifier) throw new KeywardError('ERR_UNKNOWN_TEE', `no verifier for tee ${req.tee}`)
  const evidence = verifier.decode(req.evidence)
  const nonce = fromB64url(req.nonce)
  if (!nonce || nonce.length !== 32) throw new KeywardError('ERR_BAD_REQUEST', 'nonce must be 32 bytes base64url')
  const jkt = await jwkThumbprint(req.key as JWK)
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
  const jktBytes = thumbprintBytes(jkt)
  const binding = bindingDigest(nonce, jktBytes, state)
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
      const row = await deps.store.getAk(name)
      if (!row) return null
      // Asked only after the quote verified under this AK: these answers go to its holder.
      if (row.revokedAt === null && row.status === 'pending') {
        throw new KeywardError('ERR_ENROLMENT_PENDING', 'this AK is registered but its enrolment waits for an authority (keyward enrol approve)', { detail: { akName: name } })
      }
      await assertEkNotDenied(deps, row)
      return { via: row.via, workload: row.workload, revoked: row.revokedAt !== null || row.status !== 'enrolled' }
    },
  }
  const claims = await verifier.verify(evidence, ctx)

  // Evidence that binds a key itself (Nitro public_key) must bind the key the workload presents (AWS KMS's model).
  if (claims.publicKey && claims.publicKey.length > 0) {
    const spki = new Uint8Array(createPublicKey({ key: req.key as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' }))
    if (!constantTimeEqual(spki, claims.publicKey)) {
      throw new KeywardError('ERR_BINDING_MISMATCH', 'the attestation document public_key is not the presented key')
    }
  }

  let allowlist: AllowlistFacts | undefined
  if (allowlistEv) allowlist = allowlistFactsFor(claims, allowlistEv, deps.config.tpm.allowlistPcr, { nonce, jkt: jktBytes })

  const appraisal = await deps.appraiser.appraise({ claims, ...(allowlist ? { allowlist } : {}), now })
  const workload = workloadId(claims)
  const items = measuredItems(claims, allowlist)
  if (!appraisal.allow) {
    throw new KeywardError('ERR_POLICY_DENIED', 'policy denied the attestation', {
      detail: { failures: appraisal.failures, policy: appraisal.policy, workload, jkt, measurement: claims.measurement, items },
    })
  }

  const policyId = `keyward:policy:${appraisal.policy}@${appraisal.policyVersion}`
  const referenceValues = appraisal.referenceIds.length === 0 ? [] : (await deps.store.listReferenceValues()).filter((r) => appraisal.referenceIds.includes(r.id)).map((r) => r.value)
  const submods: EarInput['submods'] = {
    [claims.tee]: { vector: teeTrustVector({ claims, referenceValues }), policyId, keyward: claimsToJson(claims) },
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
  const prev = await deps.store.getWorkload(workload)
  const divergedAt = decision === 'allow' ? null : (prev?.divergedAt ?? now)
  const baseline = decision === 'allow' ? JSON.stringify({ at: now, policy: actual.policy ?? null, items: actual.items ?? {} }) : (prev?.baseline ?? null)
  await deps.store.upsertWorkload({ id: workload, tee, lastAttestedAt: now, lastDecision: decision, actual: JSON.stringify(actual), divergedAt, baseline })
}

export function errorForAudit(e: unknown): { code: string; message: string; failures?: unknown } {
  if (isKeywardError(e)) return { code: e.code, message: e.message, ...(e.detail?.failures ? { failures: e.detail.failures } : {}) }
  return { code: 'ERR_INTERNAL', message: 'internal error' }
}
