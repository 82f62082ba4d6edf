// Test-only mirror of the checks Vault's JWT auth method applies at login with a JWKS config
// (hashicorp/vault-plugin-auth-jwt path_login.go and claims.go; Vault API docs auth/jwt role
// parameters). Used to check that keyward's attestation tokens log in with the role documented
// in docs/vault.md. Order as in Vault: signature (JWKS, jwt_supported_algs), then registered
// claims with leeways, then audience, then bound_claims, then user_claim and claim_mappings.
import { compactVerify, type JWTVerifyGetKey } from 'jose'

export interface VaultJwtConfig {
  jwks: JWTVerifyGetKey
  jwt_supported_algs: string[]
  bound_issuer?: string
}

export interface VaultJwtRole {
  role_type: 'jwt'
  user_claim: string
  user_claim_json_pointer?: boolean
  bound_audiences?: string[]
  bound_subject?: string
  bound_claims?: Record<string, string | string[]>
  bound_claims_type?: 'string' | 'glob'
  claim_mappings?: Record<string, string>
  /** Seconds; 0 = default (150 for expiration/not-before, 60 for clock skew), negative = none. */
  expiration_leeway?: number
  not_before_leeway?: number
  clock_skew_leeway?: number
  token_policies?: string[]
}

export interface VaultJwtLogin {
  aliasName: string
  metadata: Record<string, string>
  policies: string[]
}

export class VaultLoginError extends Error {}

const CLAIM_DEFAULT_LEEWAY = 150 // path_login.go claimDefaultLeeway
const JOSE_DEFAULT_LEEWAY = 60 // go-jose jwt.DefaultLeeway

/** claims.go getClaim: a leading "/" makes the name a JSON pointer (RFC 6901). */
function getClaim(all: Record<string, unknown>, claim: string): unknown {
  if (!claim.startsWith('/')) return all[claim]
  let cur: unknown = all
  for (const raw of claim.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, key)) return undefined
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}

/** ryanuber/go-glob as used for bound_claims_type=glob: only "*" is special. */
function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's')
  return re.test(s)
}

const leeway = (v: number | undefined, dflt: number): number => (v === undefined || v === 0 ? dflt : v < 0 ? 0 : v)

export async function vaultJwtLogin(jwt: string, roleName: string, config: VaultJwtConfig, role: VaultJwtRole, nowSec: number): Promise<VaultJwtLogin> {
  let payload: Uint8Array
  try {
    ;({ payload } = await compactVerify(jwt, config.jwks, { algorithms: config.jwt_supported_algs }))
  } catch (e) {
    throw new VaultLoginError(`error verifying token: ${(e as Error).message}`)
  }
  const all = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>
  const num = (k: string): number => (typeof all[k] === 'number' ? (all[k] as number) : 0)
  let iat = num('iat')
  let exp = num('exp')
  let nbf = num('nbf')
  if (iat === 0 && exp === 0 && nbf === 0) throw new VaultLoginError('no issue time, notbefore, or expiration time encoded in token')
  if (exp === 0) exp = Math.max(iat, nbf) + leeway(role.expiration_leeway, CLAIM_DEFAULT_LEEWAY)
  if (nbf === 0) nbf = iat !== 0 ? iat : exp - leeway(role.not_before_leeway, CLAIM_DEFAULT_LEEWAY)
  iat = iat || 0
  const aud = typeof all.aud === 'string' ? [all.aud] : Array.isArray(all.aud) ? (all.aud as unknown[]).map(String) : []
  const bound = role.bound_audiences ?? []
  if (aud.length > 0 && bound.length === 0) throw new VaultLoginError('audience claim found in JWT but no audiences bound to the role')
  // go-jose Claims.ValidateWithLeeway
  const skew = leeway(role.clock_skew_leeway, JOSE_DEFAULT_LEEWAY)
  if (config.bound_issuer && all.iss !== config.bound_issuer) throw new VaultLoginError('error validating claims: validation failed, invalid issuer claim (iss)')
  if (role.bound_subject && all.sub !== role.bound_subject) throw new VaultLoginError('error validating claims: validation failed, invalid subject claim (sub)')
  if (nowSec + skew < nbf) throw new VaultLoginError('error validating claims: validation failed, token not valid yet (nbf)')
  if (nowSec - skew > exp) throw new VaultLoginError('error validating claims: validation failed, token is expired (exp)')
  if (iat !== 0 && nowSec + skew < iat) throw new VaultLoginError('error validating claims: validation field, token issued in the future (iat)')
  if (bound.length > 0 && !bound.some((b) => aud.includes(b))) throw new VaultLoginError('error validating claims: aud claim does not match any bound audience')
  // claims.go validateBoundClaims
  for (const [claim, expected] of Object.entries(role.bound_claims ?? {})) {
    const actual = getClaim(all, claim)
    if (actual === undefined || actual === null) throw new VaultLoginError(`error validating claims: claim "${claim}" is missing`)
    const actVals = typeof actual === 'string' ? [actual] : Array.isArray(actual) ? actual : null
    if (actVals === null) throw new VaultLoginError(`error validating claims: received claim is not a string or list`)
    const expVals = typeof expected === 'string' ? [expected] : expected
    const hit = expVals.some((e) => actVals.some((a) => typeof a === 'string' && (role.bound_claims_type === 'glob' ? globMatch(e, a) : a === e)))
    if (!hit) throw new VaultLoginError(`error validating claims: claim "${claim}" does not match any associated bound claim values`)
  }
  // path_login.go createIdentity / claims.go extractMetadata
  const user = role.user_claim_json_pointer ? getClaim(all, role.user_claim) : all[role.user_claim]
  if (user === undefined) throw new VaultLoginError(`claim "${role.user_claim}" not found in token`)
  if (typeof user !== 'string') throw new VaultLoginError(`claim "${role.user_claim}" could not be converted to string`)
  const metadata: Record<string, string> = { role: roleName }
  for (const [source, target] of Object.entries(role.claim_mappings ?? {})) {
    const v = getClaim(all, source)
    if (v === undefined || v === null) continue
    if (typeof v !== 'string') throw new VaultLoginError(`error converting claim '${source}' to string`)
    metadata[target] = v
  }
  return { aliasName: user, metadata, policies: role.token_policies ?? [] }
}
