// The policy module's public surface (docs/policy.md).
export {
  compilePolicy,
  evaluatePolicy,
  selectPolicies,
  decide,
  toPolicyClaims,
  unionGrants,
  emptyGrants,
  TEE_CONDITION,
  DEBUG_CONDITION,
} from './engine.js'
export type { CompiledPolicy, CompiledCondition, PolicyInput, Decision, CombinedDecision, Failure, Grants, VaultGrant, ToolGrant, OAuthGrant, SpiffeGrant } from './engine.js'
export { ABSENT_ALLOWLIST, type AllowlistFacts, type PolicyClaims } from './cel.js'
export { POLICY_API_VERSION, POLICY_KIND, parseDuration, type PolicyDocument } from './schema.js'
export {
  activeRefs,
  isActive,
  importNitroMeasurements,
  importSnpMeasurement,
  importTpmPcrs,
  referenceValue,
  tpmPcrSet,
  type ActiveRefs,
  type ImportOptions,
} from './reference-values.js'
export {
  judgeAllowlistState,
  type AllowlistEvidence,
} from './allowlist-state.js'
export {
  ALLOWLIST_RECORD_SIZE,
  DEFAULT_ALLOWLIST_PCR,
  STATEMENT_SIZE,
  allowlistDigest,
  decodeRecord,
  decodeStatement,
  encodeRecord,
  encodeStatementBody,
  statementDigest,
  type AllowlistMode,
  type AllowlistRecord,
  type Statement,
} from '../protocol/allowlist-state.js'
