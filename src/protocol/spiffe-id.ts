// SPIFFE IDs (spiffe/spiffe standards/SPIFFE-ID.md §2) and the ID templates policies grant.
// Parsing is as strict as go-spiffe's spiffeid.FromString (spiffeid/id.go, path.go,
// trustdomain.go, without the backcompat charset): the "spiffe://" prefix exactly, a trust domain
// of [a-z0-9._-], a path of "/"-separated segments of [a-zA-Z0-9._-] that are neither empty nor
// "." or "..", no trailing "/", and so no percent-encoding, query, fragment, userinfo or port.
import { KeywardError } from './errors.js'

export const SPIFFE_SCHEME_PREFIX = 'spiffe://'
/** SPIFFE-ID.md §2.3: implementations SHOULD NOT generate longer IDs. */
export const MAX_SPIFFE_ID_BYTES = 2048
/** SPIFFE-ID.md §2.3: RFC 3986 limits the host to 255 characters. */
export const MAX_TRUST_DOMAIN_BYTES = 255

export interface SpiffeId {
  /** The ID as a string, e.g. spiffe://example.org/tpm/web-1 */
  id: string
  trustDomain: string
  /** "" for the trust domain's own ID, else "/seg/seg". */
  path: string
}

const invalid = (what: string, why: string): KeywardError => new KeywardError('ERR_BAD_REQUEST', `invalid SPIFFE ${what}: ${why}`)

const TD_CHAR = /^[a-z0-9._-]$/
const SEGMENT = /^[A-Za-z0-9._-]+$/

/** Why `td` is not a trust domain name (§2.1), else undefined. */
export function trustDomainProblem(td: string): string | undefined {
  if (td === '') return 'trust domain is missing'
  if (td.length > MAX_TRUST_DOMAIN_BYTES) return `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`
  for (const c of td) if (!TD_CHAR.test(c)) return 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores'
  return undefined
}

/** Why `segment` is not a path segment (§2.2), else undefined. */
export function pathSegmentProblem(segment: string): string | undefined {
  if (segment === '') return 'path cannot contain empty segments'
  if (segment === '.' || segment === '..') return 'path cannot contain dot segments'
  if (!SEGMENT.test(segment)) return 'path segment characters are limited to letters, numbers, dots, dashes, and underscores'
  return undefined
}

/** Why `path` ("" or "/a/b") is not a SPIFFE ID path (§2.2), else undefined. */
export function pathProblem(path: string): string | undefined {
  if (path === '') return undefined
  if (!path.startsWith('/')) return 'path must have a leading slash'
  const segs = path.slice(1).split('/')
  if (segs.length > 1 && segs[segs.length - 1] === '') return 'path cannot have a trailing slash'
  for (const s of segs) {
    const p = pathSegmentProblem(s)
    if (p) return segs.length === 1 && s === '' ? 'path cannot have a trailing slash' : p
  }
  return undefined
}

/** Parses a SPIFFE ID; ERR_BAD_REQUEST naming the rule it breaks. */
export function parseSpiffeId(id: string): SpiffeId {
  if (typeof id !== 'string' || id === '') throw invalid('ID', 'cannot be empty')
  // Every valid character is ASCII, so UTF-16 length bounds the byte length of any valid ID.
  if (id.length > MAX_SPIFFE_ID_BYTES) throw invalid('ID', `longer than ${MAX_SPIFFE_ID_BYTES} bytes`)
  if (!id.startsWith(SPIFFE_SCHEME_PREFIX)) throw invalid('ID', 'scheme is missing or invalid')
  const rest = id.slice(SPIFFE_SCHEME_PREFIX.length)
  const slash = rest.indexOf('/')
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash)
  const path = slash < 0 ? '' : rest.slice(slash)
  const tdp = trustDomainProblem(trustDomain)
  if (tdp) throw invalid('ID', tdp)
  const pp = pathProblem(path)
  if (pp) throw invalid('ID', pp)
  return { id, trustDomain, path }
}

/** The trust domain's own ID, spiffe://<td> (X509-SVID.md §3.2: what a signing certificate carries). */
export function trustDomainId(td: string): string {
  const p = trustDomainProblem(td)
  if (p) throw invalid('trust domain', p)
  return `${SPIFFE_SCHEME_PREFIX}${td}`
}

/** The variables an ID template may use. */
export const TEMPLATE_VARIABLES = ['workload', 'tee'] as const
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number]
export type TemplateValues = Record<TemplateVariable, string>

const VAR = /\{([^{}]*)\}/g

/**
 * Checks an ID template such as spiffe://example.org/tpm/{workload}: variables may stand only
 * for whole path segments (never in the trust domain, never beside other characters, so a value
 * can never add a "/" or reach the authority), every variable is known, and the template with
 * every variable set to a valid segment is a valid SPIFFE ID with a non-root path (X509-SVID.md
 * §3.1: leaf IDs have a path). Returns the parsed form of that sample; throws ERR_BAD_REQUEST.
 */
export function checkSpiffeTemplate(template: string): { trustDomain: string; variables: TemplateVariable[] } {
  if (typeof template !== 'string' || !template.startsWith(SPIFFE_SCHEME_PREFIX)) throw invalid('ID template', 'scheme is missing or invalid')
  const rest = template.slice(SPIFFE_SCHEME_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash < 0) throw invalid('ID template', 'a workload ID needs a path (X509-SVID.md §3.1)')
  const td = rest.slice(0, slash)
  if (td.includes('{') || td.includes('}')) throw invalid('ID template', 'variables may appear only in the path, never in the trust domain')
  const variables: TemplateVariable[] = []
  const segs = rest.slice(slash + 1).split('/')
  const sample = segs.map((s) => {
    if (!s.includes('{') && !s.includes('}')) return s
    const m = /^\{([a-z]+)\}$/.exec(s)
    if (!m) throw invalid('ID template', `a variable must be a whole path segment: "${s}"`)
    if (!(TEMPLATE_VARIABLES as readonly string[]).includes(m[1]!)) throw invalid('ID template', `unknown variable {${m[1]}}; known: ${TEMPLATE_VARIABLES.map((v) => `{${v}}`).join(', ')}`)
    variables.push(m[1] as TemplateVariable)
    return 'x'
  })
  const parsed = parseSpiffeId(`${SPIFFE_SCHEME_PREFIX}${td}/${sample.join('/')}`)
  return { trustDomain: parsed.trustDomain, variables }
}

/**
 * The SPIFFE ID a template yields for these values. Each value must itself be one valid path
 * segment (no "/", not "." or "..", only [A-Za-z0-9._-]): a workload name can neither climb out
 * of its place in the path nor reach another trust domain. Throws ERR_BAD_REQUEST.
 */
export function expandSpiffeTemplate(template: string, values: TemplateValues): SpiffeId {
  checkSpiffeTemplate(template)
  const id = template.replace(VAR, (_m, name: string) => {
    const v = values[name as TemplateVariable]
    const p = pathSegmentProblem(v)
    if (p) throw invalid('ID', `the value of {${name}} is not one path segment: ${p}`)
    return v
  })
  return parseSpiffeId(id)
}
