// `keyward ear verify TOKEN [--jwks URL|FILE | --decode-only] [--at TIME] [--json]`: keyward as a
// relying party of an EAR-issuing verifier (keyward, Veraison, Trustee). The signature is checked
// first, against the keys given (never a key the token carries in its own header), then the
// claims-set against the rules of its profile (src/broker/ear-parse.ts), then the appraisal is
// printed. Exit 0: valid; 1: not valid (ERR_TOKEN_INVALID on stderr); 2: usage.
import { readFileSync } from 'node:fs'
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose'
import { KeywardError, isKeywardError } from '../errors.js'
import { parseEar, type EarAppraisal } from '../broker/ear-parse.js'
import { tierOf } from '../broker/ear.js'
import { UsageError, parseAtTime, positionals, str, type Command, type CommandGroup } from './args.js'

const VERIFY_USAGE = `usage: keyward ear verify TOKEN|FILE (--jwks URL|FILE | --decode-only) [--at TIME] [--json]
  TOKEN is a compact JWS, or a file holding one (or, with --decode-only, a JSON EAR claims-set).
  --jwks URL|FILE  the issuer's JWKS (a JWK Set or one JWK); the token's own header key is never used
  --decode-only    check the claims only, not the signature (printed as "signature: NOT CHECKED")
  --at TIME        judge exp/nbf at this time (ISO-8601 or epoch) instead of now`

const USAGE = `usage: keyward ear verify TOKEN|FILE (--jwks URL|FILE | --decode-only) [--at TIME] [--json]`

/** Asymmetric algorithms only: an HMAC or `none` token cannot come from a verifier's published key. */
const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA']
/** Header types an attestation result may carry (RFC 9711 eat+jwt; Veraison and Trustee write JWT or nothing). */
const EAR_TYPS = new Set(['JWT', 'eat+jwt', 'application/eat+jwt'])
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

type Input = { kind: 'jws'; token: string } | { kind: 'claims'; claims: unknown }

function readToken(arg: string): Input {
  if (JWS.test(arg)) return { kind: 'jws', token: arg }
  let text: string
  try {
    text = readFileSync(arg, 'utf8').trim()
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `TOKEN: neither a compact JWS nor a readable file: ${arg.length > 64 ? arg.slice(0, 64) + '…' : arg}`, { cause: e })
  }
  if (JWS.test(text)) return { kind: 'jws', token: text }
  try {
    return { kind: 'claims', claims: JSON.parse(text) as unknown }
  } catch {
    throw new KeywardError('ERR_TOKEN_INVALID', `${arg} holds neither a compact JWS nor a JSON claims-set`)
  }
}

function keySet(src: string): JWTVerifyGetKey {
  if (/^https?:\/\//.test(src)) return createRemoteJWKSet(new URL(src), { timeoutDuration: 5000 })
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(src, 'utf8'))
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `--jwks: cannot read a JSON key set from ${src}`, { cause: e })
  }
  const set = (parsed && typeof parsed === 'object' && Array.isArray((parsed as JSONWebKeySet).keys) ? parsed : { keys: [parsed] }) as JSONWebKeySet
  if (set.keys.some((k) => typeof k !== 'object' || k === null || 'd' in k)) throw new KeywardError('ERR_BAD_REQUEST', '--jwks: a key set of public JWKs (a private key is not accepted)')
  try {
    return createLocalJWKSet(set)
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `--jwks: ${src} is not a JWK Set`, { cause: e })
  }
}

async function verifySignature(token: string, keys: JWTVerifyGetKey, at: Date): Promise<{ claims: Record<string, unknown>; alg: string; kid: string | undefined }> {
  let header
  try {
    header = decodeProtectedHeader(token)
  } catch {
    throw new KeywardError('ERR_TOKEN_INVALID', 'token is not a JWS')
  }
  if (header.typ !== undefined && !EAR_TYPS.has(header.typ)) throw new KeywardError('ERR_TOKEN_INVALID', `token type "${header.typ}" is not an attestation result`)
  try {
    const { payload, protectedHeader } = await jwtVerify(token, keys, { algorithms: ALGORITHMS, currentDate: at, clockTolerance: 60 })
    return { claims: payload as Record<string, unknown>, alg: protectedHeader.alg, kid: protectedHeader.kid }
  } catch (e) {
    if (e instanceof joseErrors.JWTExpired) throw new KeywardError('ERR_TOKEN_INVALID', `token expired (exp ${new Date(Number(e.payload.exp) * 1000).toISOString()}, judged at ${at.toISOString()})`)
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw new KeywardError('ERR_TOKEN_INVALID', 'signature verification failed')
    if (e instanceof joseErrors.JWKSNoMatchingKey) throw new KeywardError('ERR_TOKEN_INVALID', 'no key in the JWKS matches the token')
    if (e instanceof joseErrors.JOSEAlgNotAllowed) throw new KeywardError('ERR_TOKEN_INVALID', `algorithm ${header.alg ?? '(none)'} is not accepted (asymmetric only)`)
    if (e instanceof joseErrors.JOSEError) throw new KeywardError('ERR_TOKEN_INVALID', `token verification failed: ${e.message}`)
    throw e
  }
}

function decodeOnly(input: Input): Record<string, unknown> {
  if (input.kind === 'claims') return input.claims as Record<string, unknown>
  try {
    return decodeJwt(input.token) as Record<string, unknown>
  } catch {
    throw new KeywardError('ERR_TOKEN_INVALID', 'token payload is not a JSON claims-set')
  }
}

export function formatAppraisal(a: EarAppraisal, signature: string): string {
  const t = (s: number | undefined) => (s === undefined ? 'none' : new Date(s * 1000).toISOString())
  const lines = [
    'valid',
    `signature: ${signature}`,
    `profile: ${a.profile} (${a.form === 'draft' ? 'draft-ietf-rats-ear' : a.form === 'trustee' ? 'Trustee, Veraison claim names' : 'Veraison'})`,
    `verifier: ${a.verifier.developer} / ${a.verifier.build}`,
    `issued: ${t(a.iat)}  expires: ${t(a.exp)}`,
    `status: ${a.status}`,
  ]
  if (a.nonce !== undefined) lines.push(`nonce: ${a.nonce}`)
  for (const [name, s] of Object.entries(a.submods)) {
    lines.push(`submod ${name}: ${s.status}`)
    if (s.policyIds.length) lines.push(`  policy: ${s.policyIds.join(', ')}`)
    if (s.vector === undefined) lines.push('  trustworthiness vector: absent')
    else for (const [k, v] of Object.entries(s.vector)) lines.push(`  ${k}: ${v} (${tierOf(v)})`)
    if (s.extensions.length) lines.push(`  extensions: ${s.extensions.join(', ')}`)
  }
  if (a.extensions.length) lines.push(`other claims: ${a.extensions.join(', ')}`)
  return lines.join('\n') + '\n'
}

const verify: Command = {
  usage: VERIFY_USAGE,
  options: { jwks: { type: 'string' }, 'decode-only': { type: 'boolean' }, at: { type: 'string' }, json: { type: 'boolean' } },
  async run(args) {
    const [arg] = positionals(args, ['TOKEN'], VERIFY_USAGE)
    const jwks = str(args.values.jwks)
    const decode = args.values['decode-only'] === true
    if ((jwks === undefined) === !decode) throw new UsageError('give exactly one of --jwks URL|FILE and --decode-only', VERIFY_USAGE)
    const at = str(args.values.at) === undefined ? new Date() : parseAtTime(str(args.values.at)!)
    const json = args.values.json === true
    try {
      const input = readToken(arg!)
      let claims: Record<string, unknown>
      let signature: string
      if (jwks !== undefined) {
        if (input.kind !== 'jws') throw new KeywardError('ERR_TOKEN_INVALID', 'a JSON claims-set carries no signature: use --decode-only')
        const v = await verifySignature(input.token, keySet(jwks), at)
        claims = v.claims
        signature = `verified (${v.alg}${v.kid ? `, kid ${v.kid}` : ''})`
      } else {
        claims = decodeOnly(input)
        signature = 'NOT CHECKED (--decode-only)'
      }
      const appraisal = parseEar(claims)
      process.stdout.write(json ? JSON.stringify({ valid: true, signature, appraisal }, null, 2) + '\n' : formatAppraisal(appraisal, signature))
      return 0
    } catch (e) {
      if (isKeywardError(e) && (e.code === 'ERR_USAGE' || e.code === 'ERR_BAD_REQUEST')) throw e
      const err = isKeywardError(e) ? e : new KeywardError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
      if (json) process.stdout.write(JSON.stringify({ valid: false, error: err.toJSON() }) + '\n')
      process.stderr.write(`${err.code}: ${err.message}\n`)
      return 1
    }
  },
}

const ear: CommandGroup = {
  usage: `${USAGE}   (keyward ear verify --help for its flags)`,
  commands: { verify },
}
export default ear
