// Reads an EAR claims-set from any verifier keyward knows (keyward itself, Veraison, Trustee) into
// one appraisal view, checking it against the rules of its form (docs/ear.md §Validation):
// - draft-ietf-rats-ear-04 (§3 and §3.1, ear.cddl, ear-appraisal.cddl, ar4si.cddl): mandatory
//   `eat_profile`, integer `iat`, `ear_verifier_id` {developer, build}, a non-empty `submods`, each
//   with `ear_status` and `ear_trustworthiness_vector`, statuses no better than their vector and
//   the top `ear_status` no better than the worst submod, extensions as maps;
// - Veraison's dotted form, which Trustee also emits (veraison/ear ear.go validate(),
//   populateFromMap, ear_appraisal.go, verifier.go): mandatory `eat_profile` (Veraison's or
//   Trustee's), `iat`, `ear.verifier-id` with exactly `build` and `developer`, non-empty
//   `submods` each with `ear.status`; `eat_nonce` of 8–88 characters.
// The signature is not this module's business (src/cli/ear.ts checks it first).
import { z } from 'zod'
import { KeywardError } from '../errors.js'
import { EAR_PROFILE_DRAFT, EAR_PROFILE_TRUSTEE, EAR_PROFILE_VERAISON, TIERS, VECTOR_CATEGORIES, statusOf, tierOf, worseTier, type Tier, type TrustVector, type VectorCategory } from './ear.js'

/** Draft profiles whose claim names are the draft-04 ones (-03 introduced the `ear_` names). */
const DRAFT_PROFILES = [EAR_PROFILE_DRAFT, 'tag:ietf.org,2026:rats/ear#03'] as const

export interface EarAppraisal {
  form: 'draft' | 'veraison' | 'trustee'
  profile: string
  iat: number
  exp: number | undefined
  verifier: { developer: string; build: string }
  /** The top-level status: as stated (draft), else the worst submod. */
  status: Tier
  nonce: string | undefined
  submods: Record<string, { status: Tier; vector: Partial<TrustVector> | undefined; policyIds: string[]; extensions: string[] }>
  /** Claims outside the EAR vocabulary (registered JWT claims and extensions). */
  extensions: string[]
}

const Int = z.number().int()
const TierName = z.enum(Object.keys(TIERS) as [Tier, ...Tier[]])
const ClaimValue = Int.min(-128).max(127)
const VerifierId = z.object({ developer: z.string(), build: z.string() }).strict()
const Vector = z
  .object(Object.fromEntries(VECTOR_CATEGORIES.map((c) => [c, ClaimValue.optional()])) as Record<VectorCategory, z.ZodOptional<typeof ClaimValue>>)
  .strict()
  .refine((v) => Object.keys(v).length > 0, 'the trustworthiness vector must not be empty (ar4si.cddl non-empty)')
const Base64url = z.string().regex(/^[A-Za-z0-9_-]*$/, 'not base64url')
const Map = z.record(z.string(), z.unknown())

/** JWT (RFC 7519 §4.1) and EAT (RFC 9711) claims that are not extensions and need not be maps. */
const REGISTERED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'cnf', 'eat_profile', 'eat_nonce', 'submods', 'ueid', 'sueids', 'oemid', 'hwmodel', 'hwversion', 'dbgstat', 'intuse'])

function fail(where: string, message: string): never {
  throw new KeywardError('ERR_TOKEN_INVALID', `${where}: ${message}`)
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value)
  if (!r.success) {
    const i = r.error.issues[0]!
    fail(where + (i.path.length ? `.${i.path.join('.')}` : ''), i.message)
  }
  return r.data
}

const DRAFT_TOP = new Set(['eat_profile', 'ear_status', 'iat', 'exp', 'ear_verifier_id', 'ear_raw_evidence', 'submods', 'eat_nonce'])
const DRAFT_SUBMOD = new Set(['eat_profile', 'ear_status', 'ear_trustworthiness_vector', 'ear_appraisal_policy_ids', 'eat_nonce'])

type Submod = EarAppraisal['submods'][string]

/** Each submod read by its form's reader; the worst status decides a top-level status the form leaves out. */
function parseSubmods(raw: Record<string, Record<string, unknown>>, read: (s: Record<string, unknown>, where: string) => Submod): { submods: EarAppraisal['submods']; worst: Tier } {
  const submods: EarAppraisal['submods'] = {}
  let worst: Tier = 'none'
  for (const [name, s] of Object.entries(raw)) {
    const submod = read(s, `submods[${name}]`)
    submods[name] = submod
    worst = worseTier(worst, submod.status)
  }
  return { submods, worst }
}

const DraftSubmod = z.object({
  eat_profile: z.string().optional(),
  ear_status: TierName,
  // draft-04 §3.1: MUST be present unless the requester asked for it to be dropped (keyward never does).
  ear_trustworthiness_vector: Vector,
  ear_appraisal_policy_ids: z.array(z.string()).min(1).optional(),
  eat_nonce: z.string().min(12).max(88).optional(),
})

function readDraftSubmod(s: Record<string, unknown>, where: string): Submod {
  const a = parseWith(DraftSubmod, s, where)
  const vector = a.ear_trustworthiness_vector as Partial<TrustVector>
  const bound = statusOf({ ...zeroVector(), ...vector })
  if (a.ear_status !== 'none' && rank(a.ear_status) < rank(bound)) fail(where, `ear_status "${a.ear_status}" is better than its trustworthiness vector allows ("${bound}")`)
  const extensions = extensionsOf(s, DRAFT_SUBMOD, where)
  return { status: a.ear_status, vector, policyIds: a.ear_appraisal_policy_ids ?? [], extensions }
}

function parseDraft(c: Record<string, unknown>): EarAppraisal {
  const top = parseWith(
    z.object({
      eat_profile: z.string(),
      ear_status: TierName.optional(),
      // draft-04 §3: iat/exp are integers; a floating-point exp MUST be an error.
      iat: Int,
      exp: Int.optional(),
      ear_verifier_id: VerifierId,
      ear_raw_evidence: Base64url.optional(),
      submods: z.record(z.string(), Map).refine((m) => Object.keys(m).length > 0, 'submods must hold at least one appraisal'),
      eat_nonce: z.string().min(12).max(88).optional(),
    }),
    c,
    'EAR',
  )
  const { submods, worst } = parseSubmods(top.submods, readDraftSubmod)
  if (top.ear_status !== undefined && top.ear_status !== 'none' && rank(top.ear_status) < rank(worst)) fail('EAR', `ear_status "${top.ear_status}" is better than the worst submod ("${worst}")`)
  return {
    form: 'draft',
    profile: top.eat_profile,
    iat: top.iat,
    exp: top.exp,
    verifier: top.ear_verifier_id,
    status: top.ear_status ?? worst,
    nonce: top.eat_nonce,
    submods,
    extensions: extensionsOf(c, DRAFT_TOP, 'EAR'),
  }
}

// veraison/ear trusttier.go ToTrustTier: a tier name, or one of its code-points.
const LegacyTier = z.union([TierName, z.literal([0, 2, 32, 96])]).transform((t): Tier => (typeof t === 'string' ? t : tierOf(t)))
// trustclaim.go ToTrustClaim: an integer in int8 range (or a claim tag; keyward reads integers only).
const LegacyVector = z.partialRecord(z.enum(VECTOR_CATEGORIES), ClaimValue)

const VeraisonSubmod = z.object({
  'ear.status': LegacyTier,
  'ear.trustworthiness-vector': LegacyVector.optional(),
  'ear.appraisal-policy-id': z.string().optional(),
})
const VERAISON_SUBMOD = new Set(['ear.status', 'ear.trustworthiness-vector', 'ear.appraisal-policy-id'])

function readVeraisonSubmod(s: Record<string, unknown>, where: string): Submod {
  const a = parseWith(VeraisonSubmod, s, where)
  return {
    status: a['ear.status'],
    vector: a['ear.trustworthiness-vector'] as Partial<TrustVector> | undefined,
    policyIds: a['ear.appraisal-policy-id'] === undefined ? [] : [a['ear.appraisal-policy-id']],
    extensions: Object.keys(s).filter((k) => !VERAISON_SUBMOD.has(k)),
  }
}

function parseVeraison(c: Record<string, unknown>): EarAppraisal {
  const top = parseWith(
    z.object({
      eat_profile: z.string(),
      // populateFromMap int64PtrParser: a JSON number.
      iat: z.number(),
      exp: z.number().optional(),
      'ear.verifier-id': VerifierId,
      'ear.raw-evidence': Base64url.optional(),
      // ear.go validate(): an eat_nonce of 8 to 88 characters.
      eat_nonce: z.string().min(8).max(88).optional(),
      submods: z.record(z.string(), Map).refine((m) => Object.keys(m).length > 0, "'submods' (at least one appraisal must be present)"),
    }),
    c,
    'EAR',
  )
  const { submods, worst } = parseSubmods(top.submods, readVeraisonSubmod)
  const known = new Set(['eat_profile', 'iat', 'exp', 'ear.verifier-id', 'ear.raw-evidence', 'eat_nonce', 'submods'])
  return {
    form: top.eat_profile === EAR_PROFILE_TRUSTEE ? 'trustee' : 'veraison',
    profile: top.eat_profile,
    iat: Math.trunc(top.iat),
    exp: top.exp,
    verifier: top['ear.verifier-id'],
    status: worst,
    nonce: top.eat_nonce,
    submods,
    extensions: Object.keys(c).filter((k) => !known.has(k)),
  }
}

/** Non-EAR claims of a claims-set; an extension that is not a map is an error (draft-04 §3, §4). */
function extensionsOf(o: Record<string, unknown>, known: Set<string>, where: string): string[] {
  const out: string[] = []
  for (const [k, v] of Object.entries(o)) {
    if (known.has(k)) continue
    out.push(k)
    if (REGISTERED.has(k)) continue
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(where, `extension claim "${k}" is not a map (draft-ietf-rats-ear-04 §4: an EAR extension MUST be a map)`)
  }
  return out
}

const rank = (t: Tier): number => ({ none: 0, affirming: 1, warning: 2, contraindicated: 3 })[t]
const zeroVector = (): TrustVector => Object.fromEntries(VECTOR_CATEGORIES.map((k) => [k, 0])) as TrustVector

/** Validates an EAR claims-set by the rules of its profile and returns its appraisal view. */
export function parseEar(claims: unknown): EarAppraisal {
  const c = parseWith(Map, claims, 'EAR')
  const profile = c.eat_profile
  if (typeof profile !== 'string') fail('EAR', "missing mandatory 'eat_profile'")
  if ((DRAFT_PROFILES as readonly string[]).includes(profile)) return parseDraft(c)
  if (profile === EAR_PROFILE_VERAISON || profile === EAR_PROFILE_TRUSTEE) return parseVeraison(c)
  return fail('EAR', `unknown eat_profile "${profile}" (known: ${[...DRAFT_PROFILES, EAR_PROFILE_VERAISON, EAR_PROFILE_TRUSTEE].join(', ')})`)
}
