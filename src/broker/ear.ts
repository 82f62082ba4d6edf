// EAT Attestation Results (EAR) as keyward issues them, in two forms (docs/ear.md):
// - 'draft-04': draft-ietf-rats-ear-04 (profile tag:ietf.org,2026:rats/ear#04, `ear_*` claim
//   names, `ear_appraisal_policy_ids`, a top-level `ear_status`), the default;
// - 'veraison-legacy': the dotted names Veraison's `ear` library (github.com/veraison/ear ear.go,
//   ear_appraisal.go) and Trustee read (`ear.status`, `ear.verifier-id`, …, profile
//   tag:github.com,2023:veraison/ear).
// Both carry the same AR4SI trustworthiness vector per submod, computed here from what keyward
// verified and appraised. A category keyward did not appraise is 0 (no claim), never affirming.
import type { TpmClaims, VerifiedClaims } from '../protocol/claims.js'
import type { AllowlistFacts } from '../policy/engine.js'
import { toHex } from '../util/bytes.js'

export const EAR_FORMS = ['draft-04', 'veraison-legacy'] as const
export type EarForm = (typeof EAR_FORMS)[number]

/** draft-ietf-rats-ear-04 §3: the `eat_profile` of an EAR claims-set. */
export const EAR_PROFILE_DRAFT = 'tag:ietf.org,2026:rats/ear#04'
/** veraison/ear ear.go EatProfile. */
export const EAR_PROFILE_VERAISON = 'tag:github.com,2023:veraison/ear'
/** veraison/ear ear.go EatTrusteeProfile (Trustee's attestation service, same claim names). */
export const EAR_PROFILE_TRUSTEE = 'tag:github.com,2024:confidential-containers/Trustee'
export const EAR_PROFILES = [EAR_PROFILE_DRAFT, EAR_PROFILE_VERAISON, EAR_PROFILE_TRUSTEE] as const

/** draft-ietf-rats-ar4si §3.2 tiers, by their JSON names, with the code-point they anchor. */
export const TIERS = { none: 0, affirming: 2, warning: 32, contraindicated: 96 } as const
export type Tier = keyof typeof TIERS

/** draft-ietf-rats-ar4si §3.1 trustworthiness claims, JSON labels (ar4si.cddl). */
export const VECTOR_CATEGORIES = ['instance-identity', 'configuration', 'executables', 'file-system', 'hardware', 'runtime-opaque', 'storage-opaque', 'sourced-data'] as const
export type VectorCategory = (typeof VECTOR_CATEGORIES)[number]
export type TrustVector = Record<VectorCategory, number>

/** The tier of one trustworthiness claim value (veraison/ear trustclaim.go GetTier; AR4SI §3.2 ranges). */
export function tierOf(claim: number): Tier {
  if (claim >= -1 && claim <= 1) return 'none'
  if ((claim >= -32 && claim <= -2) || (claim >= 2 && claim <= 31)) return 'affirming'
  if ((claim >= -96 && claim <= -33) || (claim >= 32 && claim <= 95)) return 'warning'
  return 'contraindicated'
}

const RANK: Record<Tier, number> = { none: 0, affirming: 1, warning: 2, contraindicated: 3 }

/** The worse of two tiers ('none' counts as no information, as in veraison/ear UpdateStatusFromTrustVector). */
export function worseTier(a: Tier, b: Tier): Tier {
  return RANK[b] > RANK[a] ? b : a
}

/**
 * A submod's status: affirming (the policy admitted the claims), lowered to the worst tier any
 * vector claim makes (draft-04 §3.1: no higher trust than the worst trustworthiness claim).
 */
export function statusOf(v: TrustVector): Tier {
  return Object.values(v).reduce<Tier>((s, c) => worseTier(s, tierOf(c)), 'affirming')
}

// AR4SI §3.1 code-points keyward uses (names as in veraison/ear trustclaim.go).
const C = {
  noClaim: 0,
  recognizedInstance: 2,
  unsafeConfig: 32,
  approvedRuntime: 2,
  approvedBoot: 3,
  genuineHardware: 2,
  unsafeHardware: 32,
  encryptedMemory: 2,
  isolatedMemory: 32,
  visibleMemory: 96,
} as const

export interface VectorInput {
  claims: VerifiedClaims
  /** Lowercase values of the reference values the admitting policy relied on. */
  referenceValues: readonly string[]
}

const emptyVector = (): TrustVector => Object.fromEntries(VECTOR_CATEGORIES.map((c) => [c, C.noClaim])) as TrustVector

/** TPM: the quoted PCR values (every bank), lowercase hex. */
function quotedPcrValues(c: TpmClaims): string[] {
  return Object.values(c.pcrs).flatMap((bank) => (bank ? [...bank.values()].map(toHex) : []))
}

/**
 * The trustworthiness vector of the TEE submod (rules in docs/ear.md §Trustworthiness vector):
 * - hardware: 2 when the evidence chains to the vendor (Nitro root, AMD ARK, or for TPM an AK
 *   activated against an EK certificate from a configured manufacturer CA) and debug is off;
 *   32 with debug on; 0 for a TPM AK an admin pinned (keyward did not see the hardware's chain).
 * - instance-identity: 2 for a TPM AK keyward holds enrolled; 0 otherwise (keyward keeps no
 *   list of Nitro enclaves or SNP chips).
 * - executables: 3 (approved boot) when the admitting policy relied on a reference value equal
 *   to the launch measurement (TPM: the PCR digest or a quoted PCR); 0 otherwise.
 * - configuration: 32 with debug on; 0 otherwise (a policy may check configuration, but
 *   keyward cannot tell which of its conditions did).
 * - runtime-opaque: SNP 2 (encrypted memory), Nitro 32 (isolated, not encrypted), 96 with
 *   debug on; TPM 0.
 * - file-system, storage-opaque, sourced-data: 0 (not appraised).
 */
export function teeTrustVector(input: VectorInput): TrustVector {
  const { claims: c } = input
  const v = emptyVector()
  const refs = new Set(input.referenceValues.map((x) => x.toLowerCase()))
  if (c.tee === 'tpm') {
    const via = c.ak.trust?.via
    if (via === 'credential-activation') v.hardware = C.genuineHardware
    if (via !== undefined) v['instance-identity'] = C.recognizedInstance
    if (refs.has(c.measurement.toLowerCase()) || quotedPcrValues(c).some((p) => refs.has(p.toLowerCase()))) v.executables = C.approvedBoot
    return v
  }
  v.hardware = c.debug ? C.unsafeHardware : C.genuineHardware
  if (c.debug) v.configuration = C.unsafeConfig
  v['runtime-opaque'] = c.debug ? C.visibleMemory : c.tee === 'sev-snp' ? C.encryptedMemory : C.isolatedMemory
  if (refs.has(c.measurement.toLowerCase())) v.executables = C.approvedBoot
  return v
}

/**
 * The exec-allowlist submod's vector: executables 2 (approved boot- and run-time) when the agent's
 * records replayed to the quoted PCR, the allowlist is enforced and the policy admitted it; 0
 * otherwise. Everything else is the TEE submod's business: 0.
 */
export function allowlistTrustVector(f: AllowlistFacts): TrustVector {
  const v = emptyVector()
  if (f.present && f.replayed && f.mode === 'enforce') v.executables = C.approvedRuntime
  return v
}

export interface EarSubmodInput {
  vector: TrustVector
  policyId: string
  /** keyward's extension map for this submod (the verified claims). */
  keyward: Record<string, unknown>
}

export interface EarInput {
  form: EarForm
  verifier: { developer: string; build: string }
  /** base64url of the challenge nonce. */
  nonce: string
  jkt: string
  workload: string
  submods: Record<string, EarSubmodInput>
  /** keyward's top-level extension map. */
  keyward: { workload: string; tee: string; policy: string; measurement: string }
}

/** The EAR claims-set (without iss/aud/iat/exp/jti, which the token issuer adds). */
export function buildEarClaims(input: EarInput): Record<string, unknown> {
  const draft = input.form === 'draft-04'
  const names = draft
    ? { status: 'ear_status', vector: 'ear_trustworthiness_vector', verifier: 'ear_verifier_id', profile: EAR_PROFILE_DRAFT }
    : { status: 'ear.status', vector: 'ear.trustworthiness-vector', verifier: 'ear.verifier-id', profile: EAR_PROFILE_VERAISON }
  let overall: Tier = 'affirming'
  const submods: Record<string, Record<string, unknown>> = {}
  for (const [name, s] of Object.entries(input.submods)) {
    const status = statusOf(s.vector)
    overall = worseTier(overall, status)
    submods[name] = {
      [names.status]: status,
      // All eight categories, 0 (no claim) included: explicit, and never the empty map ar4si.cddl forbids.
      [names.vector]: { ...s.vector },
      ...(draft ? { ear_appraisal_policy_ids: [s.policyId] } : { 'ear.appraisal-policy-id': s.policyId }),
      keyward: s.keyward,
    }
  }
  return {
    eat_profile: names.profile,
    // draft-04 §3: the overall status, no better than the worst submod. Veraison's form has none.
    ...(draft ? { ear_status: overall } : {}),
    [names.verifier]: input.verifier,
    eat_nonce: input.nonce,
    submods,
    cnf: { jkt: input.jkt },
    sub: input.workload,
    keyward: input.keyward,
  }
}
