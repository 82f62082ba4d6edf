// CEL `matches` on RE2 (docs/policy.md §Regular expressions). cel-js hard-wires
// `string.matches(string)` to JavaScript's backtracking RegExp, which a pattern such as
// `^(a+)+$` turns into exponential time on a claim the workload chose. Its registry refuses a
// second overload for the same signature, so conditions are rewritten after parsing: every call
// of `matches` (receiver and global form) calls MATCHES_FN instead, which runs re2js, a
// linear-time port of RE2 (the engine the CEL specification names for `matches`).
import { RE2JS } from 're2js'
import type { ASTNode } from '@marcbachmann/cel-js'
import { isAstNode, walkAst } from './ast.js'

/** The registered function that `matches` calls are rewritten to. */
export const MATCHES_FN = 'matchesRe2'

/** Patterns computed at evaluation time: a bounded cache (literal patterns are pinned). */
const MAX_DYNAMIC_PATTERNS = 256
const pinned = new Map<string, RE2JS>()
const dynamic = new Map<string, RE2JS>()

/** Compiles an RE2 pattern; throws RE2JSSyntaxException (unsupported syntax included). */
function compilePattern(pattern: string): RE2JS {
  const hit = pinned.get(pattern) ?? dynamic.get(pattern)
  if (hit) return hit
  const re = RE2JS.compile(pattern)
  if (dynamic.size >= MAX_DYNAMIC_PATTERNS) dynamic.delete(dynamic.keys().next().value as string)
  dynamic.set(pattern, re)
  return re
}

/** CEL `matches`: true when `pattern` matches any substring of `s` (RE2 semantics). */
export function matchesRe2(s: string, pattern: string): boolean {
  let re: RE2JS
  try {
    re = compilePattern(pattern)
  } catch (e) {
    throw new Error(`invalid RE2 pattern ${JSON.stringify(pattern)}: ${patternErrorText(e)}`, { cause: e })
  }
  return re.test(s)
}

/** Why RE2 refuses `pattern`, or undefined when it compiles (and is then cached for evaluation). */
export function checkLiteralPattern(pattern: string): string | undefined {
  if (pinned.has(pattern)) return undefined
  try {
    pinned.set(pattern, RE2JS.compile(pattern))
    return undefined
  } catch (e) {
    return patternErrorText(e)
  }
}

function patternErrorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e)
  return msg.replace(/^error parsing regexp: /, '')
}

/** A literal pattern argument of a `matches` call and its offset in the expression. */
export interface LiteralPattern {
  pattern: string
  offset: number
}

/**
 * Points every `matches` call under `ast` at MATCHES_FN (before the AST is type-checked, so the
 * checker binds the RE2 overloads) and returns the calls' literal patterns.
 */
export function rewriteMatches(ast: ASTNode): LiteralPattern[] {
  const literals: LiteralPattern[] = []
  walkAst(ast, (n) => {
    const args = n.args as unknown
    if ((n.op !== 'call' && n.op !== 'rcall') || !Array.isArray(args) || args[0] !== 'matches') return
    args[0] = MATCHES_FN
    const callArgs = (n.op === 'rcall' ? args[2] : args[1]) as unknown[]
    const p = callArgs[callArgs.length - 1]
    if (isAstNode(p) && p.op === 'value' && typeof p.args === 'string') literals.push({ pattern: p.args, offset: p.start })
  })
  return literals
}
