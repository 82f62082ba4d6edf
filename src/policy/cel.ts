// The CEL environment every condition is type-checked and evaluated in (docs/policy.md
// §Variables). One environment, built once: declared variables only (an undeclared name is a
// type error at apply time), homogeneous literals, structural limits on the AST.
import { Environment, type ParseResult } from '@marcbachmann/cel-js'
import type { JsonObject, JsonValue } from '../protocol/claims.js'
import type { Tee } from '../protocol/tee.js'
import { toHex } from '../util/bytes.js'
import { MATCHES_FN, matchesRe2, rewriteMatches, type LiteralPattern } from './regex.js'
// Allowlist facts live with the state encoding (the workload client imports it without CEL).
export { ABSENT_ALLOWLIST, type AllowlistFacts } from './allowlist-state.js'

/** The claims a policy sees: VerifiedClaims without binding bytes, nonce or public key. */
export interface PolicyClaims {
  tee: Tee
  measurement: string
  debug: boolean
  issuedAt: string | null
  details: JsonObject
}


export const CEL_LIMITS = { maxAstNodes: 2000, maxDepth: 64, maxListElements: 256, maxMapEntries: 256, maxCallArguments: 8 }

function buildEnvironment(): Environment {
  return new Environment({ unlistedVariablesAreDyn: false, homogeneousAggregateLiterals: true, limits: CEL_LIMITS })
    .registerVariable({
      name: 'claims',
      schema: { tee: 'string', measurement: 'string', debug: 'bool', issuedAt: 'dyn', details: 'dyn' },
    })
    .registerVariable('refs', 'map<string, list<string>>')
    .registerVariable({
      name: 'allowlist',
      schema: {
        present: 'bool',
        mode: 'string',
        allowlistDigest: 'string',
        denials: 'int',
        progTag: 'string',
        loadTime: 'int',
        replayed: 'bool',
        stateDigest: 'string',
        cgroupDenials: 'int',
      },
    })
    .registerVariable('now', 'google.protobuf.Timestamp')
    .registerFunction(`string.${MATCHES_FN}(string): bool`, matchesRe2)
    .registerFunction(`${MATCHES_FN}(string, string): bool`, matchesRe2)
}

let env: Environment | undefined
/** The shared environment (lazily built: construction is the expensive part). */
export function policyEnvironment(): Environment {
  env ??= buildEnvironment()
  return env
}

/**
 * Parses one CEL expression for a policy: `matches` calls are bound to RE2 (./regex.ts). The
 * literal patterns are returned so that the caller can refuse those RE2 cannot compile.
 */
export function parseCondition(text: string): { run: ParseResult; patterns: LiteralPattern[] } {
  const run = policyEnvironment().parse(text)
  return { run, patterns: rewriteMatches(run.ast) }
}

/**
 * JSON values become CEL values with null-prototype maps (no inherited keys such as
 * `constructor` are reachable from an expression); integral numbers stay JS numbers, which
 * cel-js compares with CEL ints through dyn.
 */
export function jsonToCel(v: JsonValue): unknown {
  if (Array.isArray(v)) return v.map(jsonToCel)
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>
    for (const [k, x] of Object.entries(v)) out[k] = jsonToCel(x)
    return out
  }
  return v
}

/** CEL results to JSON-safe values for decisions and the audit log. */
export function celToJson(v: unknown, depth = 0): JsonValue {
  if (depth > 16) return '…'
  if (v === null || v === undefined) return null
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v)
  if (typeof v === 'string' || typeof v === 'boolean') return v
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString()
  if (v instanceof Uint8Array) return toHex(v)
  if (Array.isArray(v)) return v.slice(0, 64).map((x) => celToJson(x, depth + 1))
  if (v instanceof Map) {
    const o: JsonObject = {}
    for (const [k, x] of v) o[String(k)] = celToJson(x, depth + 1)
    return o
  }
  if (typeof v === 'object') {
    const o: JsonObject = {}
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) o[k] = celToJson(x, depth + 1)
    return o
  }
  // CEL type values, optionals: their string form is what a reader needs.
  return String(v)
}
