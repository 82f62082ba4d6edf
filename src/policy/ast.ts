// Walking cel-js ASTs, whose operators keep their operands in differently shaped `args`.
import type { ASTNode } from '@marcbachmann/cel-js'

export function isAstNode(v: unknown): v is ASTNode {
  return typeof v === 'object' && v !== null && 'op' in v && 'args' in v
}

/** Every AST node under `n` (pre-order), whatever the operator's argument shape. */
export function walkAst(n: ASTNode, visit: (n: ASTNode) => void): void {
  visit(n)
  const stack: unknown[] = [n.args]
  while (stack.length) {
    const a = stack.pop()
    if (isAstNode(a)) walkAst(a, visit)
    else if (Array.isArray(a)) for (const x of a) stack.push(x)
  }
}
