// Policy compilation and evaluation (docs/policy.md). compilePolicy parses, schema-checks and
// type-checks every condition once, at apply time; evaluatePolicy never throws: evaluation
// errors, a TEE the policy does not admit and a debug guest are all reported as failures.
import { createHash } from 'node:crypto'
import type { ParseResult } from '@marcbachmann/cel-js'
import type { JsonValue, VerifiedClaims } from '../protocol/claims.js'
import type { Tee } from '../protocol/tee.js'
import { ABSENT_ALLOWLIST, celToJson, jsonToCel, parseCondition, type AllowlistFacts, type PolicyClaims } from './cel.js'
import { buildExplainer, errorText, explain, referencedSets, type ExplainNode } from './explain.js'
import { checkLiteralPattern, MATCHES_FN } from './regex.js'
import { exprOffsetToPos, parseDuration, parsePolicySource, policyInvalid, posOf, type SourcePos } from './schema.js'

export type { AllowlistFacts, PolicyClaims } from './cel.js'

export interface VaultGrant {
  role: string
  policies: string[]
  ttlSeconds: number
  numUses: number
}

/** A tool credential: a JWT keyward mints, or a stored API key it releases. */
export type ToolGrant =
  | { kind: 'jwt'; name: string; audience: string; scopes: string[]; ttlSeconds: number }
  | { kind: 'api-key'; name: string; apiKeySecret: string }

/** An OAuth resource (RFC 8707) an attested client may get access tokens for, and their scopes. */
export interface OAuthGrant {
  resource: string
  scopes: string[]
  ttlSeconds: number
}

/** A SPIFFE identity: the ID template (src/protocol/spiffe-id.ts), JWT-SVID audiences, SVID lifetimes. */
export interface SpiffeGrant {
  id: string
  audiences: string[]
  jwtTtlSeconds: number
  x509TtlSeconds: number
}

export interface Grants {
  secrets: string[]
  vault: VaultGrant[]
  tools: ToolGrant[]
  oauth: OAuthGrant[]
  spiffe: SpiffeGrant[]
}

export interface CompiledCondition {
  name: string
  expr: string
  description: string | undefined
  /** Where the condition's expression starts in the policy source. */
  pos: SourcePos | undefined
  readonly run: ParseResult
  readonly explainer: ExplainNode
}

export interface CompiledPolicy {
  name: string
  description: string | undefined
  tees: Tee[]
  allowDebug: boolean
  conditions: CompiledCondition[]
  grants: Grants
  /** Reference sets the conditions name literally. */
  refSets: string[]
  /** True when a condition indexes `refs` with a computed key (every set may be relied on). */
  dynamicRefs: boolean
  /** SHA-256 of the source text, hex (PolicyRow.sha256). */
  sha256: string
  source: string
}

export interface PolicyInput {
  claims: PolicyClaims
  /** Active reference values per set (activeRefs().refs). */
  refs: Record<string, string[]>
  /** set → value → reference value ids (activeRefs().byValue), to report which values a decision used. */
  refIds?: Record<string, Record<string, string[]>>
  allowlist?: AllowlistFacts
  now: Date
}

export interface Failure {
  condition: string
  /** The condition's whole expression. */
  expr: string
  /** The part of it that failed (the false conjunct). */
  subexpr?: string
  expected: JsonValue
  actual: JsonValue
  message: string
}

export interface Decision {
  allow: boolean
  policy: string
  failures: Failure[]
  /** The policy's grants when allowed; empty when denied. */
  grants: Grants
  /** Reference value ids whose values matched a claim in the sets this policy uses. */
  referenceIds: string[]
}

export interface CombinedDecision {
  allow: boolean
  /** Names of the policies that allowed. */
  policies: string[]
  decisions: Decision[]
  /** Failures of every evaluated policy (also of denying ones when another allowed). */
  failures: Array<Failure & { policy: string }>
  /** Union of the allowing policies' grants. */
  grants: Grants
  referenceIds: string[]
}

/** Pseudo-conditions reported in failures. */
export const TEE_CONDITION = 'tee-admitted'
export const DEBUG_CONDITION = 'debug-denied'

export const emptyGrants = (): Grants => ({ secrets: [], vault: [], tools: [], oauth: [], spiffe: [] })

/** Throws KeywardError(ERR_POLICY_INVALID) with file:line:column on any problem. */
export function compilePolicy(source: string, opts: { file?: string } = {}): CompiledPolicy {
  const file = opts.file ?? 'policy'
  const parsed = parsePolicySource(source, file)
  const { doc } = parsed
  const refSets = new Set<string>()
  let dynamicRefs = false
  const conditions = doc.spec.conditions.map((c, i): CompiledCondition => {
    const node = parsed.yaml.getIn(['spec', 'conditions', i, 'expr'], true) as { range?: [number, number, number] } | undefined
    const pos = node?.range ? posOf(parsed.lines, node.range[0]) : undefined
    const fail = (offset: number | undefined, kind: string, msg: string): never => {
      throw policyInvalid(file, offset === undefined ? pos : exprOffsetToPos(parsed, i, offset, source) ?? pos, `condition "${c.name}": ${kind}: ${msg}`, {
        kind: 'cel',
        condition: c.name,
      })
    }
    let parsedExpr: ReturnType<typeof parseCondition>
    try {
      parsedExpr = parseCondition(c.expr)
    } catch (e) {
      return fail(rangeStart(e), 'CEL syntax error', errorText(e))
    }
    const { run, patterns } = parsedExpr
    const check = run.check()
    if (!check.valid) return fail(rangeStart(check.error), 'CEL type error', errorText(check.error).replaceAll(MATCHES_FN, 'matches'))
    for (const p of patterns) {
      const why = checkLiteralPattern(p.pattern)
      if (why !== undefined) fail(p.offset, 'RE2 pattern not supported', `${JSON.stringify(p.pattern)}: ${why} (docs/policy.md §Regular expressions)`)
    }
    if (check.type !== 'bool') return fail(0, 'CEL type error', `condition must be bool, got ${check.type ?? 'unknown'}`)
    const used = referencedSets(run.ast)
    used.sets.forEach((s) => refSets.add(s))
    dynamicRefs ||= used.dynamic
    return { name: c.name, expr: c.expr, description: c.description, pos, run, explainer: buildExplainer(run.ast, { text: c.expr, run }) }
  })
  const g = doc.spec.grants
  return {
    name: doc.metadata.name,
    description: doc.metadata.description,
    tees: [...doc.spec.tees],
    allowDebug: doc.spec.allowDebug,
    conditions,
    grants: {
      secrets: [...g.secrets],
      vault: g.vault ? [{ role: g.vault.role, policies: [...g.vault.policies], ttlSeconds: parseDuration(g.vault.ttl)!, numUses: g.vault.num_uses }] : [],
      tools: g.tools.map((t): ToolGrant =>
        'apiKeySecret' in t
          ? { kind: 'api-key', name: t.name, apiKeySecret: t.apiKeySecret }
          : { kind: 'jwt', name: t.name, audience: t.audience, scopes: [...t.scopes], ttlSeconds: parseDuration(t.ttl)! },
      ),
      oauth: g.oauth.map((o) => ({ resource: o.resource, scopes: [...o.scopes], ttlSeconds: parseDuration(o.ttl)! })),
      spiffe: g.spiffe ? [{ id: g.spiffe.id, audiences: [...g.spiffe.audiences], jwtTtlSeconds: parseDuration(g.spiffe.jwtTtl)!, x509TtlSeconds: parseDuration(g.spiffe.x509Ttl)! }] : [],
    },
    refSets: [...refSets].sort(),
    dynamicRefs,
    sha256: createHash('sha256').update(source, 'utf8').digest('hex'),
    source,
  }
}

function rangeStart(e: unknown): number | undefined {
  if (e && typeof e === 'object' && 'range' in e) {
    const r = (e as { range?: { start?: unknown } }).range
    if (r && typeof r.start === 'number') return r.start
  }
  return undefined
}

/** VerifiedClaims → what policy sees: binding bytes, nonce and public key are dropped. */
export function toPolicyClaims(vc: VerifiedClaims): PolicyClaims {
  return { tee: vc.tee, measurement: vc.measurement, debug: vc.debug, issuedAt: vc.issuedAt, details: vc.details }
}

type CelContext = Record<string, unknown>

function buildContext(input: PolicyInput, sets: Iterable<string>): CelContext {
  // Sets a policy names but that have no active value are present and empty, so `x in refs["s"]`
  // is false with a clear message rather than a missing-key error.
  const refs: Record<string, string[]> = Object.create(null) as Record<string, string[]>
  for (const [k, v] of Object.entries(input.refs)) refs[k] = v
  for (const s of sets) refs[s] ??= []
  const c = input.claims
  return {
    claims: { tee: c.tee, measurement: c.measurement, debug: c.debug, issuedAt: c.issuedAt, details: jsonToCel(c.details) },
    refs,
    allowlist: { ...(input.allowlist ?? ABSENT_ALLOWLIST) },
    now: input.now,
  }
}

function claimStrings(input: PolicyInput): Set<string> {
  const out = new Set<string>([input.claims.measurement.toLowerCase()])
  const stack: unknown[] = [input.claims.details]
  while (stack.length) {
    const v = stack.pop()
    if (typeof v === 'string') out.add(v.toLowerCase())
    else if (Array.isArray(v)) stack.push(...v)
    else if (v && typeof v === 'object') stack.push(...Object.values(v))
  }
  const a = input.allowlist
  if (a?.present) for (const s of [a.allowlistDigest, a.progTag, a.stateDigest]) out.add(s.toLowerCase())
  return out
}

function usedReferenceIds(p: CompiledPolicy, input: PolicyInput, strings: () => Set<string>): string[] {
  if (!input.refIds) return []
  const sets = p.dynamicRefs ? Object.keys(input.refIds) : p.refSets
  const ids = new Set<string>()
  for (const set of sets) {
    const byValue = input.refIds[set]
    if (!byValue) continue
    for (const [value, vids] of Object.entries(byValue)) if (strings().has(value.toLowerCase())) vids.forEach((id) => ids.add(id))
  }
  return [...ids].sort()
}

function evaluateWith(p: CompiledPolicy, input: PolicyInput, ctx: CelContext, strings: () => Set<string>): Decision {
  const failures: Failure[] = []
  const tee = input.claims.tee
  if (!p.tees.includes(tee)) {
    failures.push({
      condition: TEE_CONDITION,
      expr: `claims.tee in ${JSON.stringify(p.tees)}`,
      expected: p.tees,
      actual: tee,
      message: `policy "${p.name}" does not admit TEE "${tee}" (admits ${p.tees.join(', ')})`,
    })
    return { allow: false, policy: p.name, failures, grants: emptyGrants(), referenceIds: [] }
  }
  if (input.claims.debug && !p.allowDebug) {
    failures.push({ condition: DEBUG_CONDITION, expr: 'claims.debug == false', expected: false, actual: true, message: 'debug guests/enclaves are denied (spec.allowDebug is false)' })
  }
  for (const c of p.conditions) {
    let v: unknown
    try {
      v = c.run(ctx)
    } catch (e) {
      failures.push({ condition: c.name, expr: c.expr, expected: true, actual: null, message: `evaluation error: ${errorText(e)}` })
      continue
    }
    if (v === true) continue
    try {
      const ex = explain(c.explainer, ctx)
      failures.push({ condition: c.name, expr: c.expr, ...(ex.subexpr !== c.expr ? { subexpr: ex.subexpr } : {}), expected: ex.expected, actual: ex.actual, message: ex.message })
    } catch (e) {
      failures.push({ condition: c.name, expr: c.expr, expected: true, actual: celToJson(v), message: `${c.expr} is ${String(v)} (${errorText(e)})` })
    }
  }
  const allow = failures.length === 0
  return { allow, policy: p.name, failures, grants: allow ? cloneGrants(p.grants) : emptyGrants(), referenceIds: usedReferenceIds(p, input, strings) }
}

function cloneTool(t: ToolGrant): ToolGrant {
  return t.kind === 'jwt' ? { ...t, scopes: [...t.scopes] } : { ...t }
}

function cloneGrants(g: Grants): Grants {
  return { secrets: [...g.secrets], vault: g.vault.map((v) => ({ ...v, policies: [...v.policies] })), tools: g.tools.map(cloneTool), oauth: g.oauth.map((o) => ({ ...o, scopes: [...o.scopes] })), spiffe: g.spiffe.map((s) => ({ ...s, audiences: [...s.audiences] })) }
}

function lazy<T>(f: () => T): () => T {
  let v: T | undefined
  return () => (v ??= f())
}

/** Evaluates one policy. Never throws: every problem is a failure in the decision. */
export function evaluatePolicy(p: CompiledPolicy, input: PolicyInput): Decision {
  return evaluateWith(p, input, buildContext(input, p.refSets), lazy(() => claimStrings(input)))
}

/** The policies that admit `tee`. */
export function selectPolicies(policies: readonly CompiledPolicy[], tee: Tee): CompiledPolicy[] {
  return policies.filter((p) => p.tees.includes(tee))
}

/**
 * Evaluates every policy admitting the claims' TEE. Allowed when at least one allows; the grants
 * are the union of the allowing policies' grants; failures are reported from all of them.
 */
export function decide(policies: readonly CompiledPolicy[], input: PolicyInput): CombinedDecision {
  const selected = selectPolicies(policies, input.claims.tee)
  if (selected.length === 0) {
    const f: Failure & { policy: string } = {
      policy: '',
      condition: TEE_CONDITION,
      expr: 'claims.tee',
      expected: [...new Set(policies.flatMap((p) => p.tees))],
      actual: input.claims.tee,
      message: `no active policy admits TEE "${input.claims.tee}"`,
    }
    return { allow: false, policies: [], decisions: [], failures: [f], grants: emptyGrants(), referenceIds: [] }
  }
  const ctx = buildContext(input, selected.flatMap((p) => p.refSets))
  const strings = lazy(() => claimStrings(input))
  const decisions = selected.map((p) => evaluateWith(p, input, ctx, strings))
  const allowing = decisions.filter((d) => d.allow)
  return {
    allow: allowing.length > 0,
    policies: allowing.map((d) => d.policy),
    decisions,
    failures: decisions.flatMap((d) => d.failures.map((f) => ({ policy: d.policy, ...f }))),
    grants: unionGrants(allowing.map((d) => d.grants)),
    referenceIds: [...new Set(allowing.flatMap((d) => d.referenceIds))].sort(),
  }
}

export function unionGrants(gs: readonly Grants[]): Grants {
  const out = emptyGrants()
  const seen = new Set<string>()
  for (const g of gs) {
    for (const s of g.secrets) if (!out.secrets.includes(s)) out.secrets.push(s)
    for (const v of g.vault) {
      const k = `vault:${JSON.stringify(v)}`
      if (!seen.has(k)) (seen.add(k), out.vault.push({ ...v, policies: [...v.policies] }))
    }
    for (const t of g.tools) {
      const k = `tool:${JSON.stringify(t)}`
      if (!seen.has(k)) (seen.add(k), out.tools.push(cloneTool(t)))
    }
    for (const o of g.oauth) {
      const k = `oauth:${JSON.stringify(o)}`
      if (!seen.has(k)) (seen.add(k), out.oauth.push({ ...o, scopes: [...o.scopes] }))
    }
    for (const s of g.spiffe) {
      const k = `spiffe:${JSON.stringify(s)}`
      if (!seen.has(k)) (seen.add(k), out.spiffe.push({ ...s, audiences: [...s.audiences] }))
    }
  }
  return out
}
