// Test-only mirror of how go-spiffe v2 (github.com/spiffe/go-spiffe, commit e9973f6) parses SPIFFE
// IDs, bundles and JWT-SVIDs, written from its code so the broker's output is judged by what
// real SPIFFE consumers run, not by keyward's own parser:
//   spiffeid/id.go FromString, spiffeid/path.go ValidatePath, spiffeid/trustdomain.go
//     isValidTrustDomainChar (without the spiffeid_charset_backcompat build tag);
//   bundle/spiffebundle/bundle.go Parse (x509-svid: exactly one x5c certificate; jwt-svid: a kid),
//     with go-jose's JSONWebKey rule that an x5c certificate's key is the JWK's key;
//   svid/jwtsvid/svid.go parse + ParseAndValidate: alg allow-list, typ absent/JWT/JOSE, sub and
//     exp present, sub a SPIFFE ID, kid present, the bundle of sub's trust domain, its jwt-svid
//     authority by kid, the signature, then go-jose jwt Claims.Validate (v4 jwt/validation.go:
//     AnyAudience, nbf/exp/iat with DefaultLeeway = 1 min).
import { X509Certificate, createPublicKey } from 'node:crypto'
import { compactVerify, decodeProtectedHeader, importJWK, type JWK } from 'jose'

export class GoSpiffeError extends Error {}
const fail = (m: string): never => {
  throw new GoSpiffeError(m)
}

const ALLOWED_ALGS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512']
const DEFAULT_LEEWAY_S = 60

const tdChar = (c: string) => (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c === '-' || c === '.' || c === '_'
const pathChar = (c: string) => tdChar(c) || (c >= 'A' && c <= 'Z')

/** spiffeid.FromString: returns [trustDomain, path]. */
export function goSpiffeIdFromString(id: string): { trustDomain: string; path: string } {
  if (id === '') fail('cannot be empty')
  if (!id.startsWith('spiffe://')) fail('scheme is missing or invalid')
  let i = 'spiffe://'.length
  for (; i < id.length; i++) {
    const c = id[i]!
    if (c === '/') break
    if (!tdChar(c)) fail('trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores')
  }
  if (i === 'spiffe://'.length) fail('trust domain is missing')
  const path = id.slice(i)
  goValidatePath(path)
  return { trustDomain: id.slice('spiffe://'.length, i), path }
}

/** spiffeid.ValidatePath. */
export function goValidatePath(path: string): void {
  if (path === '') return
  if (path[0] !== '/') fail('path must have a leading slash')
  let start = 0
  let end = 0
  for (; end < path.length; end++) {
    const c = path[end]!
    if (c === '/') {
      const seg = path.slice(start, end)
      if (seg === '/') fail('path cannot contain empty segments')
      if (seg === '/.' || seg === '/..') fail('path cannot contain dot segments')
      start = end
      continue
    }
    if (!pathChar(c)) fail('path segment characters are limited to letters, numbers, dots, dashes, and underscores')
  }
  const last = path.slice(start, end)
  if (last === '/') fail('path cannot have a trailing slash')
  if (last === '/.' || last === '/..') fail('path cannot contain dot segments')
}

export interface GoBundle {
  x509Authorities: X509Certificate[]
  jwtAuthorities: Map<string, JWK>
  refreshHint?: number
  sequenceNumber?: number
}

/** spiffebundle.Parse. */
export function goParseBundle(text: string): GoBundle {
  let doc: { keys?: Array<JWK & { x5c?: string[] }>; spiffe_refresh_hint?: number; spiffe_sequence?: number }
  try {
    doc = JSON.parse(text)
  } catch {
    return fail('unable to parse JWKS')
  }
  if (!Array.isArray(doc.keys)) fail('no authorities found')
  const b: GoBundle = { x509Authorities: [], jwtAuthorities: new Map(), ...(doc.spiffe_refresh_hint !== undefined ? { refreshHint: doc.spiffe_refresh_hint } : {}), ...(doc.spiffe_sequence !== undefined ? { sequenceNumber: doc.spiffe_sequence } : {}) }
  doc.keys!.forEach((key, i) => {
    const certs = (key.x5c ?? []).map((c) => new X509Certificate(Buffer.from(c, 'base64')))
    // go-jose JSONWebKey.UnmarshalJSON: the x5c leaf's public key must be the JWK's key.
    if (certs.length > 0) {
      const jwkKey = createPublicKey({ key: { kty: key.kty, crv: key.crv, x: key.x, y: key.y, n: key.n, e: key.e } as import('node:crypto').JsonWebKey, format: 'jwk' })
      if (!certs[0]!.publicKey.equals(jwkKey)) fail(`x5c public key of entry ${i} does not match the JWK`)
    }
    if (key.use === 'x509-svid') {
      if (certs.length !== 1) fail(`expected a single certificate in x509-svid entry ${i}; got ${certs.length}`)
      b.x509Authorities.push(certs[0]!)
    } else if (key.use === 'jwt-svid') {
      if (!key.kid) fail(`error adding authority ${i} of JWKS: keyID cannot be empty`)
      if (b.jwtAuthorities.has(key.kid!)) fail(`error adding authority ${i} of JWKS: duplicate key ID`)
      b.jwtAuthorities.set(key.kid!, key)
    }
  })
  return b
}

export interface GoJwtSvid {
  id: string
  audience: string[]
  expiry: Date
  claims: Record<string, unknown>
}

/** jwtsvid.ParseAndValidate at `now`, with bundles by trust domain. */
export async function goParseAndValidateJwtSvid(token: string, bundles: Map<string, GoBundle>, audience: string[], now: Date): Promise<GoJwtSvid> {
  const parts = token.split('.')
  if (parts.length !== 3) fail('unable to parse JWT token')
  let header: Record<string, unknown>
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>
  } catch {
    return fail('unable to parse JWT token')
  }
  if (typeof header.alg !== 'string' || !ALLOWED_ALGS.includes(header.alg)) fail('unable to parse JWT token')
  if ('typ' in header && header.typ !== 'JOSE' && header.typ !== 'JWT') fail('token header type not equal to either JWT or JOSE')
  let claims: Record<string, unknown>
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'))
  } catch {
    return fail('unable to get claims from token')
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') fail('token missing subject claim')
  if (typeof claims.exp !== 'number') fail('token missing exp claim')
  const { trustDomain } = goSpiffeIdFromString(claims.sub as string)
  const kid = header.kid
  if (typeof kid !== 'string' || kid === '') fail('token header missing key id')
  const bundle = bundles.get(trustDomain) ?? fail(`no bundle found for trust domain "${trustDomain}"`)
  const authority = bundle.jwtAuthorities.get(kid as string) ?? fail(`no JWT authority "${kid}" found for trust domain "${trustDomain}"`)
  try {
    await compactVerify(token, await importJWK(authority, header.alg as string))
  } catch {
    fail('unable to get claims from token: go-jose/go-jose: error in cryptographic primitive')
  }
  const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? (claims.aud as string[]) : []
  if (audience.length !== 0 && !audience.some((a) => aud.includes(a))) fail(`expected audience in ${JSON.stringify(audience)} (audience=${JSON.stringify(aud)})`)
  const t = now.getTime() / 1000
  if (typeof claims.nbf === 'number' && t + DEFAULT_LEEWAY_S < claims.nbf) fail('validation failed, token not valid yet (nbf)')
  if (t - DEFAULT_LEEWAY_S > (claims.exp as number)) fail('token has expired')
  if (typeof claims.iat === 'number' && t + DEFAULT_LEEWAY_S < claims.iat) fail('validation field, token issued in the future (iat)')
  return { id: claims.sub as string, audience: aud, expiry: new Date((claims.exp as number) * 1000), claims }
}
