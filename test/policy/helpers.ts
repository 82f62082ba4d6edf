// Shared builders for the policy tests: a policy source from parts, claims per TEE.
import type { PolicyClaims } from '../../src/policy/engine.js'
import type { JsonObject } from '../../src/protocol/claims.js'
import type { Tee } from '../../src/protocol/tee.js'

export function policySource(opts: {
  name?: string
  tees?: string[]
  allowDebug?: boolean
  conditions: Array<[string, string]>
  grants?: string
}): string {
  const conds = opts.conditions.map(([n, e]) => `    - name: ${n}\n      expr: ${JSON.stringify(e)}\n`).join('')
  return [
    'apiVersion: keyward.dev/v1',
    'kind: ReleasePolicy',
    'metadata:',
    `  name: ${opts.name ?? 'test-policy'}`,
    'spec:',
    `  tees: [${(opts.tees ?? ['sev-snp']).join(', ')}]`,
    ...(opts.allowDebug !== undefined ? [`  allowDebug: ${opts.allowDebug}`] : []),
    '  conditions:',
    conds.trimEnd(),
    '  grants:',
    opts.grants ?? '    secrets: [db-password]',
    '',
  ].join('\n')
}

export function claims(tee: Tee, details: JsonObject = {}, over: Partial<PolicyClaims> = {}): PolicyClaims {
  return { tee, measurement: 'ab'.repeat(48), debug: false, issuedAt: null, details, ...over }
}

export const NOW = new Date('2026-01-15T12:00:00Z')
