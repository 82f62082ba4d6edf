// Explainable denials (docs/policy.md §Denials). At compile time each condition's AST is turned
// into an explanation tree: `&&` chains are followed to the first false conjunct, and for a
// comparison or membership (== != < <= > >= in) both operands are compiled on their own, so a
// failure reports the left operand as `actual` and the right one as `expected`. For membership
// in a reference set only the set's name and size are reported, never its entries.
import { serialize, type ASTNode, type ParseResult } from '@marcbachmann/cel-js'
import type { JsonValue } from '../protocol/claims.js'
import { celToJson, parseCondition } from './cel.js'
import { walkAst } from './ast.js'

export const COMPARISON_OPS = ['==', '!=', '<', '<=', '>', '>=', 'in'] as const
type ComparisonOp = (typeof COMPARISON_OPS)[number]

export interface Sub {
  text: string
  run: ParseResult
}

export type ExplainNode =
  | { kind: 'and'; whole: Sub; left: ExplainNode; right: ExplainNode }
  | { kind: 'cmp'; whole: Sub; op: ComparisonOp; left: Sub; right: Sub; refSet: string | undefined }
  | { kind: 'value'; whole: Sub }

export interface Explanation {
  subexpr: string
  expected: JsonValue
  actual: JsonValue
  message: string
}

type CelContext = Record<string, unknown>

/** refs["name"] or refs.name: the reference set's literal name. */
export function refSetName(n: ASTNode): string | undefined {
  if (n.op === '[]') {
    const [obj, idx] = n.args
    if (obj.op === 'id' && obj.args === 'refs' && idx.op === 'value' && typeof idx.args === 'string') return idx.args
  }
  if (n.op === '.') {
    const [obj, field] = n.args
    if (obj.op === 'id' && obj.args === 'refs') return field
  }
  return undefined
}

/** Reference sets a condition names literally; `dynamic` when `refs` is used any other way. */
export function referencedSets(ast: ASTNode): { sets: Set<string>; dynamic: boolean } {
  const sets = new Set<string>()
  let literalUses = 0
  let allUses = 0
  walkAst(ast, (n) => {
    const name = refSetName(n)
    if (name !== undefined) {
      sets.add(name)
      literalUses++
    }
    if (n.op === 'id' && n.args === 'refs') allUses++
  })
  return { sets, dynamic: allUses > literalUses }
}

function compileSub(n: ASTNode): Sub {
  const text = n.input.slice(n.range.start, n.range.end)
  try {
    return { text, run: parseCondition(text).run }
  } catch {
    // A slice that cut a parenthesis: the canonical form always parses.
    const canon = serialize(n)
    return { text: canon, run: parseCondition(canon).run }
  }
}

export function buildExplainer(n: ASTNode, whole?: Sub): ExplainNode {
  const self = whole ?? compileSub(n)
  if (n.op === '&&') {
    return { kind: 'and', whole: self, left: buildExplainer(n.args[0]), right: buildExplainer(n.args[1]) }
  }
  if ((COMPARISON_OPS as readonly string[]).includes(n.op)) {
    const [l, r] = n.args as [ASTNode, ASTNode]
    return { kind: 'cmp', whole: self, op: n.op as ComparisonOp, left: compileSub(l), right: compileSub(r), refSet: n.op === 'in' ? refSetName(r) : undefined }
  }
  return { kind: 'value', whole: self }
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: string }

export function errorText(e: unknown): string {
  if (e && typeof e === 'object' && 'summary' in e && typeof e.summary === 'string') return e.summary
  return e instanceof Error ? (e.message.split('\n')[0] ?? 'error') : String(e)
}

function run(s: Sub, ctx: CelContext): Outcome {
  try {
    return { ok: true, value: s.run(ctx) }
  } catch (e) {
    return { ok: false, error: errorText(e) }
  }
}

function show(v: JsonValue): string {
  const s = JSON.stringify(v)
  return s.length > 200 ? `${s.slice(0, 197)}...` : s
}

/** Why `node` did not evaluate to true under `ctx`. */
export function explain(node: ExplainNode, ctx: CelContext): Explanation {
  if (node.kind === 'and') {
    const l = run(node.left.whole, ctx)
    return l.ok && l.value === true ? explain(node.right, ctx) : explain(node.left, ctx)
  }
  if (node.kind === 'cmp') {
    const l = run(node.left, ctx)
    const r = run(node.right, ctx)
    const refs = ctx['refs'] as Record<string, unknown[] | undefined> | undefined
    const expected: JsonValue = node.refSet !== undefined
      ? { referenceSet: node.refSet, size: refs?.[node.refSet]?.length ?? 0 }
      : r.ok ? celToJson(r.value) : null
    const actual: JsonValue = l.ok ? celToJson(l.value) : null
    let message: string
    if (!l.ok) message = `${node.left.text}: ${l.error}`
    else if (!r.ok) message = `${node.right.text}: ${r.error}`
    else if (node.refSet !== undefined) {
      const size = refs?.[node.refSet]?.length ?? 0
      message = `${node.left.text} is ${show(actual)}, not in reference set "${node.refSet}" (${size === 0 ? 'no active values' : `${size} values`})`
    } else if (node.op === 'in') message = `${node.left.text} is ${show(actual)}, not in ${node.right.text} = ${show(expected)}`
    else message = `${node.left.text} is ${show(actual)}, expected ${node.op} ${show(expected)}`
    return { subexpr: node.whole.text, expected, actual, message }
  }
  const v = run(node.whole, ctx)
  if (!v.ok) return { subexpr: node.whole.text, expected: true, actual: null, message: `${node.whole.text}: ${v.error}` }
  const actual = celToJson(v.value)
  return { subexpr: node.whole.text, expected: true, actual, message: `${node.whole.text} is ${show(actual)}, expected true` }
}
