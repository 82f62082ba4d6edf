// The release-policy document (docs/policy.md §Format): a versioned YAML document validated
// with zod. Every rejection is ERR_POLICY_INVALID with the line:column of the offending node,
// so `keyward policy apply` can point a reviewer at the exact line.
import { z } from 'zod'
import { LineCounter, parseDocument, isMap, isPair, isScalar, visit, type Document, type Node } from 'yaml'
import { KeywardError } from '../errors.js'
import { TEES } from '../protocol/tee.js'
import { checkSpiffeTemplate } from '../protocol/spiffe-id.js'

export const POLICY_API_VERSION = 'keyward.dev/v1'
export const POLICY_KIND = 'ReleasePolicy'
/** Policies are reviewed by humans; anything bigger is a mistake or an attack on the parser. */
export const MAX_POLICY_BYTES = 256 * 1024
export const MAX_EXPR_CHARS = 4096
/** Upper bound for any granted lifetime (vault tokens, tool credentials). */
export const MAX_TTL_SECONDS = 24 * 3600

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, "-", at most 63 chars)')
const identifier = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$/, 'must be 1-128 chars of A-Z a-z 0-9 . _ / : -')

/** Parses "90s", "15m", "1h30m" into seconds (0 < ttl <= 24h). */
export function parseDuration(s: string): number | undefined {
  const m = /^(?:(\d{1,3})h)?(?:(\d{1,4})m)?(?:(\d{1,6})s)?$/.exec(s)
  if (!m || s === '') return undefined
  const secs = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)
  return secs > 0 && secs <= MAX_TTL_SECONDS ? secs : undefined
}

const ttl = z.string().refine((s) => parseDuration(s) !== undefined, {
  message: 'must be a duration like "90s", "15m" or "1h30m", at most 24h',
})

const uniqueList = <T extends z.ZodType<string>>(item: T) =>
  z.array(item).refine((a) => new Set(a).size === a.length, { message: 'entries must be unique' })

export const conditionSchema = z.strictObject({
  name: dnsLabel,
  description: z.string().max(1024).optional(),
  expr: z.string().min(1).max(MAX_EXPR_CHARS),
})

export const vaultGrantSchema = z.strictObject({
  role: identifier,
  policies: uniqueList(identifier).default([]),
  ttl,
  num_uses: z.number().int().min(0).max(1_000_000).default(0),
})

/** A short-lived JWT minted for the tool (audience, scopes, cnf = the agent's key), or a stored API key. */
export const toolGrantSchema = z.union([
  z.strictObject({
    name: identifier,
    audience: z.url({ protocol: /^https$/ }),
    scopes: uniqueList(z.string().min(1).max(256)).default([]),
    ttl,
  }),
  z.strictObject({
    name: identifier,
    /** Name of a stored secret holding the tool's API key; released JWE-encrypted like any secret. */
    apiKeySecret: identifier,
  }),
])

/** Upper bound for an OAuth access token's lifetime: minutes, not hours (docs/agents.md). */
export const MAX_ACCESS_TOKEN_TTL_SECONDS = 3600

const isLoopbackHost = (h: string): boolean => h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)

/** RFC 8707 §2: an absolute URI without fragment; https, or http on loopback (local MCP servers, tests). */
const resourceUri = z
  .string()
  .max(2048)
  .refine((s) => {
    try {
      const u = new URL(s)
      return u.hash === '' && !s.includes('#') && (u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname))) && u.username === '' && u.password === ''
    } catch {
      return false
    }
  }, { message: 'must be an absolute https URL (http only on loopback) without fragment or credentials' })

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/, 'must be an RFC 6749 scope token (printable ASCII, no space, quote or backslash)')

/** An OAuth 2.0 resource (an MCP server URL) and the scopes an attested client may get for it. */
export const oauthGrantSchema = z.strictObject({
  resource: resourceUri,
  scopes: uniqueList(scopeToken).min(1),
  ttl: z
    .string()
    .refine((s) => (parseDuration(s) ?? Infinity) <= MAX_ACCESS_TOKEN_TTL_SECONDS, { message: 'must be a duration like "5m", at most 1h' })
    .default('5m'),
})

/** JWT-SVIDs are bearer tokens (JWT-SVID.md §7): their lifetime is kept short. */
export const MAX_JWT_SVID_TTL_SECONDS = 3600

/** A SPIFFE identity (docs/spiffe.md): an ID template, the JWT-SVID audiences a workload may ask for, and SVID lifetimes. */
export const spiffeGrantSchema = z.strictObject({
  id: z
    .string()
    .max(2048)
    .superRefine((t, ctx) => {
      try {
        checkSpiffeTemplate(t)
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: e instanceof Error ? e.message : String(e) })
      }
    }),
  /** Audiences a JWT-SVID may be minted for; none: no JWT-SVIDs. */
  audiences: uniqueList(z.string().min(1).max(256)).default([]),
  jwtTtl: ttl.refine((s) => parseDuration(s)! <= MAX_JWT_SVID_TTL_SECONDS, { message: 'a JWT-SVID lives at most 1h' }).default('5m'),
  x509Ttl: ttl.default('1h'),
})

export const grantsSchema = z
  .strictObject({
    secrets: uniqueList(identifier).default([]),
    vault: vaultGrantSchema.optional(),
    tools: z.array(toolGrantSchema).default([]),
    oauth: z
      .array(oauthGrantSchema)
      .default([])
      .refine((a) => new Set(a.map((g) => g.resource)).size === a.length, { message: 'each resource may be granted once' }),
    spiffe: spiffeGrantSchema.optional(),
  })
  .refine((g) => g.secrets.length > 0 || g.vault !== undefined || g.tools.length > 0 || g.oauth.length > 0 || g.spiffe !== undefined, {
    message: 'a policy must grant at least one secret, vault role, tool credential, OAuth resource or SPIFFE identity',
  })

export const policyDocumentSchema = z.strictObject({
  apiVersion: z.literal(POLICY_API_VERSION),
  kind: z.literal(POLICY_KIND),
  metadata: z.strictObject({
    name: dnsLabel,
    description: z.string().max(4096).optional(),
    owner: z.string().max(256).optional(),
  }),
  spec: z.strictObject({
    tees: z
      .array(z.enum(TEES, { error: `unknown TEE; expected one of ${TEES.join(', ')}` }))
      .min(1)
      .refine((a) => new Set(a).size === a.length, { message: 'entries must be unique' }),
    allowDebug: z.boolean().default(false),
    conditions: z
      .array(conditionSchema)
      .min(1, 'at least one condition is required: a policy without conditions would admit any genuine hardware')
      .superRefine((cs, ctx) => {
        const seen = new Set<string>()
        cs.forEach((c, i) => {
          if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate condition name "${c.name}"` })
          seen.add(c.name)
        })
      }),
    grants: grantsSchema,
  }).superRefine((spec, ctx) => {
    // With several TEEs, {workload} alone could name two different workloads alike (an enrolled
    // TPM name and a Nitro PCR0 prefix): the template must then say which TEE too.
    const t = spec.grants.spiffe?.id
    if (t !== undefined && spec.tees.length > 1 && t.includes('{workload}') && !t.includes('{tee}')) {
      ctx.addIssue({ code: 'custom', path: ['grants', 'spiffe', 'id'], message: 'a policy admitting several TEEs must put {tee} in a SPIFFE ID template that uses {workload}' })
    }
  }),
})

export type PolicyDocument = z.infer<typeof policyDocumentSchema>
export type ConditionSpec = z.infer<typeof conditionSchema>

/** A position in the policy source, 1-based. */
export interface SourcePos {
  line: number
  column: number
}

/** A parsed, schema-valid document with what is needed to map errors back to lines. */
export interface ParsedPolicySource {
  doc: PolicyDocument
  yaml: Document.Parsed
  lines: LineCounter
}

export function policyInvalid(file: string, pos: SourcePos | undefined, message: string, detail: Record<string, unknown> = {}): KeywardError {
  const where = pos ? `${file}:${pos.line}:${pos.column}` : file
  return new KeywardError('ERR_POLICY_INVALID', `${where}: ${message}`, { detail: { file, ...pos, ...detail } })
}

/** The node at `path`, or the deepest existing ancestor; for missing keys, the parent map. */
export function nodeAt(yaml: Document.Parsed, path: readonly PropertyKey[]): Node | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = yaml.getIn(path.slice(0, n) as unknown[], true)
    if (node && typeof node === 'object' && 'range' in node) return node as Node
  }
  return undefined
}

function keyNode(yaml: Document.Parsed, path: readonly PropertyKey[], key: string): Node | undefined {
  const parent = yaml.getIn(path as unknown[], true)
  if (!isMap(parent)) return undefined
  for (const item of parent.items) {
    if (isPair(item) && isScalar(item.key) && item.key.value === key) return item.key
  }
  return undefined
}

export function posOf(lines: LineCounter, offset: number): SourcePos {
  const p = lines.linePos(offset)
  return { line: p.line, column: p.col }
}

/** Parses YAML and validates the schema. Throws ERR_POLICY_INVALID with line:column. */
export function parsePolicySource(source: string, file = 'policy'): ParsedPolicySource {
  if (typeof source !== 'string') throw policyInvalid(file, undefined, 'policy source must be text')
  if (Buffer.byteLength(source, 'utf8') > MAX_POLICY_BYTES) {
    throw policyInvalid(file, undefined, `policy is larger than ${MAX_POLICY_BYTES} bytes`)
  }
  const lines = new LineCounter()
  // The core schema with unique keys; aliases are capped so a billion-laughs file cannot expand.
  const yaml = parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true })
  const yamlErr = yaml.errors[0] ?? yaml.warnings[0]
  if (yamlErr) {
    const lp = yamlErr.linePos?.[0]
    const pos = lp ? { line: lp.line, column: lp.col } : posOf(lines, yamlErr.pos[0])
    throw policyInvalid(file, pos, `YAML: ${yamlErr.message.split('\n')[0]}`, {
      kind: 'yaml',
    })
  }
  // Complex (collection) keys would be stringified by toJS; a policy has only scalar keys.
  let complexKey: Node | undefined
  visit(yaml, {
    Pair(_, pair) {
      if (pair.key !== null && !isScalar(pair.key)) {
        complexKey = pair.key as Node
        return visit.BREAK
      }
      return undefined
    },
  })
  if (complexKey) {
    throw policyInvalid(file, complexKey.range ? posOf(lines, complexKey.range[0]) : undefined, 'YAML: mapping keys must be scalars', { kind: 'yaml' })
  }
  let raw: unknown
  try {
    raw = yaml.toJS({ maxAliasCount: 50 })
  } catch (e) {
    throw policyInvalid(file, undefined, `YAML: ${e instanceof Error ? e.message : String(e)}`, { kind: 'yaml' })
  }
  const result = policyDocumentSchema.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const path = issue.path as PropertyKey[]
    let node: Node | undefined
    let message = issue.message
    if (issue.code === 'unrecognized_keys') {
      node = keyNode(yaml, path, issue.keys[0]!) ?? nodeAt(yaml, path)
      message = `unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
    } else {
      node = nodeAt(yaml, path)
    }
    const at = path.length ? path.map(String).join('.') : '(document)'
    const pos = node?.range ? posOf(lines, node.range[0]) : undefined
    throw policyInvalid(file, pos, `${at}: ${message}`, { kind: 'schema', path: path.map(String) })
  }
  return { doc: result.data, yaml, lines }
}

/**
 * Maps an offset inside a condition's CEL text to the source position, for plain, quoted and
 * block scalars (YAML 1.2 §8.1). Folded and multi-line flow scalars map to the right line;
 * the column is exact for plain, single-line quoted and literal block scalars.
 */
export function exprOffsetToPos(parsed: ParsedPolicySource, conditionIndex: number, celOffset: number, source: string): SourcePos | undefined {
  const node = parsed.yaml.getIn(['spec', 'conditions', conditionIndex, 'expr'], true)
  if (!isScalar(node) || !node.range) return undefined
  const start = node.range[0]
  const end = node.range[1]
  const type = node.type
  if (type === 'BLOCK_LITERAL' || type === 'BLOCK_FOLDED') {
    // Content starts on the line after the header ("|", "|-", ">" ...).
    const headerEnd = source.indexOf('\n', start)
    if (headerEnd < 0 || headerEnd >= end) return posOf(parsed.lines, start)
    const content = source.slice(headerEnd + 1, end).split('\n')
    const indents = content.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length)
    const base = indents.length ? Math.min(...indents) : 0
    let consumed = 0
    let lineStart = headerEnd + 1
    for (const l of content) {
      const text = l.slice(Math.min(base, l.length))
      if (celOffset <= consumed + text.length) return posOf(parsed.lines, lineStart + base + (celOffset - consumed))
      consumed += text.length + 1
      lineStart += l.length + 1
    }
    return posOf(parsed.lines, start)
  }
  const rawText = source.slice(start, end)
  if (rawText.includes('\n')) return posOf(parsed.lines, start)
  const quote = type === 'QUOTE_DOUBLE' || type === 'QUOTE_SINGLE' ? 1 : 0
  return posOf(parsed.lines, Math.min(start + quote + celOffset, end))
}
