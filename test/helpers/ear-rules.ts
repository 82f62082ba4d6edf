// Test-only validators of EAR claims-sets, written from their sources independently of
// src/broker/ear-parse.ts, so that keyward's tokens are held against the rules as published:
// - veraisonEarErrors: github.com/veraison/ear at 961756edf6d7bc4792b428e2e506555f4c5976a9 —
//   ear.go AttestationResult.validate() and populateFromMap(), ear_appraisal.go ToAppraisal() and
//   validate(), verifier.go ToVerifierIdentity(), trusttier.go ToTrustTier(), trustvector.go
//   ToTrustVector(), trustclaim.go ToTrustClaim(), util.go populateStructFromMap()/parseTag()
//   (a field is mandatory unless its json tag says omitempty).
// - draftEarErrors: draft-ietf-rats-ear-04 §3 (EAR), §3.1 (EAR-appraisal), §4 (extensions) and
//   the CDDL of github.com/ietf-rats-wg/draft-ietf-rats-ear cddl/ear.cddl, ear-appraisal.cddl,
//   ar4si.cddl (JSON labels of JC<>), with RFC 9711 for eat_nonce and time-int.
// Each returns the list of problems (empty: valid).

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)

// trusttier.go StringToTrustTier / IntToTrustTier.
const TIER_NAMES: Record<string, number> = { none: 0, affirming: 2, warning: 32, contraindicated: 96 }
const TIER_INTS = new Set([0, 2, 32, 96])
// trustvector.go TrustVector json tags (all omitempty).
const TV_KEYS = ['instance-identity', 'configuration', 'executables', 'file-system', 'hardware', 'runtime-opaque', 'storage-opaque', 'sourced-data']

/** trustclaim.go GetTier over the int8 range. */
export function tierOfClaim(c: number): number {
  if (c >= -1 && c <= 1) return 0
  if ((c >= -32 && c <= -2) || (c >= 2 && c <= 31)) return 2
  if ((c >= -96 && c <= -33) || (c >= 32 && c <= 95)) return 32
  return 96
}

function veraisonTier(v: unknown): number | string {
  if (typeof v === 'string') {
    if (v in TIER_NAMES) return TIER_NAMES[v]!
    return /^-?\d+$/.test(v) && TIER_INTS.has(Number(v)) ? Number(v) : `not a valid TrustTier name: "${v}"`
  }
  if (typeof v === 'number') return TIER_INTS.has(Math.trunc(v)) ? Math.trunc(v) : `not a valid TrustTier value: ${v}`
  return `cannot convert ${JSON.stringify(v)} to TrustTier`
}

/** veraison/ear: what UnmarshalJSON (populateFromMap + validate) reports for a claims-set. */
export function veraisonEarErrors(c: unknown): string[] {
  if (!isObj(c)) return ['not a JSON object']
  const missing: string[] = []
  const invalid: string[] = []
  // populateFromMap: mandatory fields (no omitempty): eat_profile, ear.verifier-id, iat, submods.
  for (const k of ['eat_profile', 'ear.verifier-id', 'iat', 'submods']) if (!(k in c)) missing.push(`'${k}'`)
  if ('eat_profile' in c && typeof c.eat_profile !== 'string') invalid.push("'eat_profile' (not a string)")
  if ('iat' in c && typeof c.iat !== 'number') invalid.push("'iat' (not an int64)")
  if ('eat_nonce' in c && typeof c.eat_nonce !== 'string') invalid.push("'eat_nonce' (not a string)")
  if ('ear.raw-evidence' in c && (typeof c['ear.raw-evidence'] !== 'string' || !/^[A-Za-z0-9_-]*$/.test(c['ear.raw-evidence']))) invalid.push("'ear.raw-evidence' (not base64url)")
  if ('ear.verifier-id' in c) {
    const v = c['ear.verifier-id']
    // verifier.go ToVerifierIdentity: build and developer mandatory strings, nothing else (ignoreUnexpected=false).
    if (!isObj(v)) invalid.push("'ear.verifier-id' (not a JSON object)")
    else {
      const probs = [
        ...['build', 'developer'].filter((k) => typeof v[k] !== 'string').map((k) => `'${k}'`),
        ...Object.keys(v)
          .filter((k) => k !== 'build' && k !== 'developer')
          .map((k) => `unexpected: ${k}`),
      ]
      if (probs.length) invalid.push(`'ear.verifier-id' (${probs.join(', ')})`)
    }
  }
  const submodProblems: string[] = []
  if ('submods' in c) {
    if (!isObj(c.submods)) invalid.push("'submods' (not a map object)")
    else {
      for (const [name, a] of Object.entries(c.submods)) {
        // ear_appraisal.go ToAppraisal + validate(): ear.status mandatory; vector and policy id optional.
        if (!isObj(a)) {
          submodProblems.push(`${name}: not a JSON object`)
          continue
        }
        if (!('ear.status' in a)) submodProblems.push(`submods[${name}]: missing mandatory 'ear.status'`)
        else if (typeof veraisonTier(a['ear.status']) === 'string') submodProblems.push(`submods[${name}]: invalid 'ear.status' (${String(veraisonTier(a['ear.status']))})`)
        if ('ear.appraisal-policy-id' in a && typeof a['ear.appraisal-policy-id'] !== 'string') submodProblems.push(`submods[${name}]: invalid 'ear.appraisal-policy-id' (not a string)`)
        const tv = a['ear.trustworthiness-vector']
        if (tv !== undefined && tv !== null) {
          if (!isObj(tv)) submodProblems.push(`submods[${name}]: invalid 'ear.trustworthiness-vector' (not a map)`)
          else
            for (const [k, v] of Object.entries(tv)) {
              if (!TV_KEYS.includes(k)) submodProblems.push(`submods[${name}]: trustworthiness vector unexpected: ${k}`)
              else if (!(typeof v === 'number' && Math.trunc(v) >= -128 && Math.trunc(v) <= 127)) submodProblems.push(`submods[${name}]: '${k}' out of range for TrustClaim`)
            }
        }
        for (const ext of ['ear.veraison.annotated-evidence', 'ear.veraison.policy-claims', 'ear.veraison.key-attestation']) {
          if (ext in a && !isObj(a[ext])) submodProblems.push(`submods[${name}]: '${ext}' (not a map[string]interface{})`)
        }
      }
    }
  }
  // ear.go validate()
  if (typeof c.eat_profile === 'string' && c.eat_profile !== 'tag:github.com,2023:veraison/ear' && c.eat_profile !== 'tag:github.com,2024:confidential-containers/Trustee') {
    invalid.push(`eat_profile (${c.eat_profile})`)
  }
  if (typeof c.eat_nonce === 'string' && (c.eat_nonce.length > 88 || c.eat_nonce.length < 8)) invalid.push(`eat_nonce (${c.eat_nonce.length} bytes)`)
  if (isObj(c.submods) && Object.keys(c.submods).length === 0) missing.push("'submods' (at least one appraisal must be present)")
  const out: string[] = []
  if (missing.length) out.push(`missing mandatory ${missing.join(', ')}`)
  if (invalid.length) out.push(`invalid value(s) for ${invalid.join(', ')}`)
  return [...out, ...submodProblems]
}

// ar4si.cddl trustworthiness-tier: JSON labels.
const DRAFT_TIERS: Record<string, number> = { none: 0, affirming: 2, warning: 32, contraindicated: 96 }
const worst = (tiers: number[]): number => tiers.reduce((a, b) => Math.max(a, b), 0)
/** Registered JWT/EAT claims keyward may carry besides the EAR ones (RFC 7519 §4.1, RFC 7800, RFC 9711). */
const REGISTERED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'cnf', 'eat_nonce'])

/** draft-ietf-rats-ear-04: the claims-set against the CDDL and the section 3 MUSTs. */
export function draftEarErrors(c: unknown, profile = 'tag:ietf.org,2026:rats/ear#04'): string[] {
  const e: string[] = []
  if (!isObj(c)) return ['EAR is not a map']
  // ear.cddl EAR
  if (c.eat_profile !== profile) e.push(`§3: eat_profile must be "${profile}"`)
  if (!isInt(c.iat)) e.push('§3: iat is mandatory, an integer (~eat.time-int)')
  if ('exp' in c && !isInt(c.exp)) e.push('§3: exp must be an integer')
  const vid = c.ear_verifier_id
  if (!isObj(vid) || typeof vid.developer !== 'string' || typeof vid.build !== 'string' || Object.keys(vid).length !== 2)
    e.push('§3/ar4si.cddl: ear_verifier_id must be {developer: text, build: text}')
  if ('ear_raw_evidence' in c && (typeof c.ear_raw_evidence !== 'string' || !/^[A-Za-z0-9_-]*$/.test(c.ear_raw_evidence))) e.push('§3: ear_raw_evidence is base64url binary-data')
  if ('eat_nonce' in c && (typeof c.eat_nonce !== 'string' || c.eat_nonce.length < 12 || c.eat_nonce.length > 88)) e.push('§3: eat_nonce is a base64 string of 12 to 88 characters')
  if ('ear_status' in c && !(typeof c.ear_status === 'string' && c.ear_status in DRAFT_TIERS)) e.push('§3: ear_status must be a trustworthiness-tier label')
  const submodTiers: number[] = []
  if (!isObj(c.submods) || Object.keys(c.submods).length === 0) e.push('§3: submods is mandatory and holds at least one EAR-appraisal')
  else {
    for (const [name, a] of Object.entries(c.submods)) {
      if (!isObj(a)) {
        e.push(`§3.1 submods[${name}]: not a map`)
        continue
      }
      // ear-appraisal.cddl EAR-appraisal
      const status = typeof a.ear_status === 'string' ? DRAFT_TIERS[a.ear_status] : undefined
      if (status === undefined) e.push(`§3.1 submods[${name}]: ear_status is mandatory, a tier label`)
      else submodTiers.push(status)
      const tv = a.ear_trustworthiness_vector
      if (tv === undefined) e.push(`§3.1 submods[${name}]: ear_trustworthiness_vector MUST be present`)
      else if (!isObj(tv) || Object.keys(tv).length === 0) e.push(`§3.1/ar4si.cddl submods[${name}]: the trustworthiness vector is a non-empty map`)
      else {
        for (const [k, v] of Object.entries(tv)) {
          if (!TV_KEYS.includes(k)) e.push(`ar4si.cddl submods[${name}]: unknown trustworthiness claim "${k}"`)
          if (!isInt(v) || v < -128 || v > 127) e.push(`ar4si.cddl submods[${name}]: ${k} must be an integer in -128..127`)
        }
        // §3.1: ear_status no higher trust than the worst claim of the vector.
        const bound = worst(Object.values(tv).filter(isInt).map(tierOfClaim))
        if (status !== undefined && status !== 0 && status < bound) e.push(`§3.1 submods[${name}]: ear_status better than its trustworthiness vector`)
      }
      if ('ear_appraisal_policy_ids' in a && !(Array.isArray(a.ear_appraisal_policy_ids) && a.ear_appraisal_policy_ids.length > 0 && a.ear_appraisal_policy_ids.every((x) => typeof x === 'string'))) {
        e.push(`§3.1 submods[${name}]: ear_appraisal_policy_ids is a non-empty list of text`)
      }
      if ('ear_appraisal_policy_id' in a) e.push(`§3.1 submods[${name}]: ear_appraisal_policy_id (singular) is not a draft-04 claim`)
      // §3.1 $$ear-appraisal-extension: an extension MUST be a map.
      for (const [k, v] of Object.entries(a)) {
        if (['eat_profile', 'ear_status', 'ear_trustworthiness_vector', 'ear_appraisal_policy_ids', 'eat_nonce'].includes(k)) continue
        if (!isObj(v)) e.push(`§3.1 submods[${name}]: extension "${k}" is not a map`)
      }
    }
  }
  // §3: the top ear_status no higher trust than the worst submod.
  if (typeof c.ear_status === 'string' && c.ear_status in DRAFT_TIERS && DRAFT_TIERS[c.ear_status] !== 0 && DRAFT_TIERS[c.ear_status]! < worst(submodTiers))
    e.push('§3: ear_status better than the worst submod')
  // §3 $$ear-extension: an extension MUST be a map.
  for (const [k, v] of Object.entries(c)) {
    if (['eat_profile', 'ear_status', 'iat', 'exp', 'ear_verifier_id', 'ear_raw_evidence', 'submods', 'eat_nonce'].includes(k) || REGISTERED.has(k)) continue
    if (!isObj(v)) e.push(`§3: extension "${k}" is not a map`)
  }
  return e
}
