// What the HTTP app and the CLI are built from. Everything is injected: no module-level
// singletons, so tests build an app over any store, clock and verifier set.
import type { DecisionState } from './decision-state.js'
import type { Logger } from 'pino'
import type { X509Certificate } from 'node:crypto'
import type { BrokerConfig } from './config.js'
import type { Store, AuditInput } from '../store/types.js'
import type { Verifier } from '../verifiers/types.js'
import type { VerifiedClaims } from '../protocol/claims.js'
import type { Tee } from '../protocol/tee.js'
import type { TokenIssuer } from './tokens.js'
import type { Sealer } from '../sealing/sealer.js'
import type { Metrics } from './metrics.js'
import type { KekProvider } from '../sealing/kek.js'
import type { CertInfo } from '../verifiers/common/x509.js'
import type { SpiffeAuthority } from '../spiffe/authority.js'
import type { ContainmentAction } from '../policy/schema.js'

export type { Grants, VaultGrant, ToolGrant, OAuthGrant, SpiffeGrant, Failure as PolicyFailure, AllowlistFacts } from '../policy/engine.js'
import type { Grants, VaultGrant, Failure as PolicyFailure, AllowlistFacts } from '../policy/engine.js'

export interface Appraisal {
  allow: boolean
  policy: string
  policyVersion: number
  failures: PolicyFailure[]
  grants: Grants
  referenceIds: string[]
  /** The values of referenceIds, from the same read of the store as the decision (they set the token's trustworthiness vector). */
  referenceValues: string[]
}

/** The policy engine as the broker sees it (src/broker/appraiser.ts adapts src/policy). */
export interface Appraiser {
  /** Policies, reference values and quarantines as they stand now (src/broker/decision-state.ts); a request reads them once. */
  state(): Promise<DecisionState>
  appraise(input: { claims: VerifiedClaims; allowlist?: AllowlistFacts; now: Date }, state?: DecisionState): Promise<Appraisal>
  /** Grants of a policy version as applied now (or in `state`); null when the policy is gone or inactive. */
  grantsFor(policy: string, version: number, state?: DecisionState): Promise<Grants | null>
  /** The containment actions of a policy as applied now; none when the policy is gone or inactive. */
  containmentFor(policy: string): Promise<ContainmentAction[]>
  /** Validates a policy document; throws ERR_POLICY_INVALID with a line-level message. Returns its name. */
  validate(source: string): { name: string }
}

export interface VaultServices {
  mintToken(
    attested: { jti: string; jkt: string; tee: string; measurement: string; policy: string; referenceIds: string[]; workload: string },
    grant: VaultGrant & { wrapTtlSeconds?: number },
  ): Promise<{ token?: string; wrapToken?: string; accessor: string; leaseDuration: number }>
  revokeFor(filter: { jkt?: string; jti?: string; referenceId?: string; policy?: string }, reason: string): Promise<number>
  readKv(ref: { mount: string; path: string; version?: number; field?: string }): Promise<Uint8Array>
}

export interface BrokerDeps {
  config: BrokerConfig
  store: Store
  kek: KekProvider
  sealer: Sealer
  tokens: TokenIssuer
  verifiers: Partial<Record<Tee, Verifier>>
  appraiser: Appraiser
  logger: Logger
  metrics: Metrics
  clock: () => Date
  /** EK CAs from tpm.ekCaFiles: self-signed ones are roots, the rest intermediates. */
  trust: { nitroRoots?: X509Certificate[]; ekRoots: CertInfo[]; ekIntermediates: CertInfo[] }
  vault?: VaultServices
  /** The SPIFFE CA and JWT-SVID key of config.spiffe.trustDomain (docs/spiffe.md); absent without that config. */
  spiffe?: SpiffeAuthority
  /** Appends to the audit chain, then writes the alert the entry raises (src/broker/alerts.ts alertForAudit), if any. */
  audit(entry: AuditInput): Promise<void>
  /** The environment the serving process was started with (webhook secretEnv); only the CLI passes process.env. */
  env?: Readonly<Record<string, string | undefined>>
}
