// The one repository interface the broker uses. Two implementations (SQLite via
// better-sqlite3, PostgreSQL via node-postgres), both drizzle-orm, behave identically; the
// contract tests in test/store run against both. All times are epoch milliseconds.

export interface NonceRow {
  /** SHA-256 of the nonce, hex: the raw nonce is never stored. */
  id: string
  createdAt: number
  expiresAt: number
}

export type ConsumeNonceResult = 'ok' | 'unknown' | 'expired' | 'used'

/** A Trustee KBS protocol session (docs/trustee.md): the cookie's state, shared by every replica. */
export interface KbsSessionRow {
  /** SHA-256 of the `kbs-session-id` cookie value, hex: the cookie itself is never stored. */
  id: string
  /** The keyward nonce row (NonceRow.id) the session's challenge spends. */
  nonceId: string
  /** The TEE the client named in its Request. */
  tee: string
  createdAt: number
  expiresAt: number
  /** Set once, when the session attested: the attestation (AttestationRow.jti) and the tee-pubkey JWK (JSON). */
  jti: string | null
  teePubkey: string | null
}

export interface SecretVersionRow {
  name: string
  version: number
  /** AES-256-GCM ciphertext || tag of the value under the data key. */
  ciphertext: Uint8Array
  iv: Uint8Array
  /** The data key wrapped by the KEK provider. */
  wrappedKey: Uint8Array
  kekId: string
  /** A reference instead of a stored value (Vault KV v2), JSON; null for stored values. */
  source: string | null
  createdAt: number
  createdBy: string
}

export interface SecretSummary {
  name: string
  latestVersion: number
  versions: number
  deleted: boolean
  updatedAt: number
}

export interface PolicyRow {
  name: string
  version: number
  /** The YAML as applied (for review and re-compilation). */
  source: string
  sha256: string
  createdAt: number
  createdBy: string
  active: boolean
}

export interface ReferenceValueRow {
  id: string
  /** Reference set name policies refer to, e.g. "snp-measurements". */
  set: string
  tee: string
  /** Lowercase hex or a plain string. */
  value: string
  /** Provenance. */
  source: string
  createdBy: string
  createdAt: number
  expiresAt: number | null
  revokedAt: number | null
  revokedBy: string | null
  note: string | null
}

export interface SigningKeyRow {
  kid: string
  alg: 'ES256'
  publicJwk: string
  /** The private JWK sealed by the sealer (JSON of a SealedBlob). */
  sealedPrivate: string
  createdAt: number
  /** Set when a newer key took over; the key stays in the JWKS until retiredAt + max token lifetime. */
  retiredAt: number | null
}

export interface AkRow {
  /** TPM name (nameAlg || H(TPMT_PUBLIC)), hex. */
  name: string
  /** TPM2B_PUBLIC (or SPKI DER for pinned keys), base64. */
  publicArea: string
  workload: string
  via: 'credential-activation' | 'pinned'
  ekFingerprint: string | null
  createdAt: number
  revokedAt: number | null
  /**
   * Whether an authority bound `workload` to this AK (docs/tpm-enrolment.md): only 'enrolled'
   * AKs admit. A 'pending' AK's workload is the name its (unauthenticated) registrant asked for.
   */
  status: AkStatus
  /** Who enrolled it: "admin:<name>", "enrol-token:<id prefix>", "ek-allow:<entry id>", or the pinning admin. */
  enrolledBy: string | null
  /** SHA-256 of the EK public key (SPKI DER), hex. */
  ekPubDigest: string | null
}

export type AkStatus = 'enrolled' | 'pending' | 'rejected'

export interface EnrolmentTokenRow {
  /** SHA-256 of the token, hex. */
  id: string
  workload: string
  createdAt: number
  createdBy: string
  expiresAt: number
  usedAt: number | null
  /** The AK name the token enrolled. */
  usedBy: string | null
}

export interface EkListRow {
  id: string
  /** allow: this EK may enrol as `workload` without approval; deny: this EK may not register or attest. */
  kind: 'allow' | 'deny'
  /** EK certificate fingerprint or EK public-key digest (SHA-256, lowercase hex). */
  ek: string
  workload: string | null
  createdAt: number
  createdBy: string
  note: string | null
}

export interface ActivationRow {
  id: string
  akName: string
  /** SHA-256 of the expected credential secret, hex. */
  secretHash: string
  workload: string
  publicArea: string
  ekFingerprint: string | null
  expiresAt: number
  usedAt: number | null
  /** SHA-256 of the enrolment token the registrant presented, hex (consumed at activation). */
  enrolTokenHash: string | null
  ekPubDigest: string | null
}

export interface AttestationRow {
  /** The attestation token's jti. */
  jti: string
  jkt: string
  tee: string
  policy: string
  policyVersion: number
  measurement: string
  /** Reference value ids the decision relied on, JSON array. */
  referenceIds: string
  workload: string
  issuedAt: number
  expiresAt: number
  revokedAt: number | null
  /** The TPM AK that signed the evidence (null for other TEEs), so revoking the AK revokes this. */
  akName: string | null
}

/** An OAuth access token keyward issued (docs/agents.md); the token itself is never stored. */
export interface OAuthTokenRow {
  jti: string
  attestationJti: string
  clientId: string
  jkt: string
  resource: string
  scope: string
  issuedAt: number
  expiresAt: number
  revokedAt: number | null
}

export interface WorkloadRow {
  /** Workload identity: AK name for TPM, measurement for SNP/Nitro, or a configured name. */
  id: string
  tee: string
  lastAttestedAt: number
  lastDecision: 'allow' | 'deny'
  /** Actual measured state at the last attestation (JSON). */
  actual: string
  /** When actual stopped matching the declared reference, null while in line. */
  divergedAt: number | null
  /** The measured state when an attestation was last allowed (JSON: at, policy, items), null before any. */
  baseline: string | null
}

/** What an appraisal writes of its workload (Store.recordWorkloadDecision). */
export interface WorkloadDecision {
  id: string
  tee: string
  at: number
  decision: 'allow' | 'deny'
  /** Actual measured state (JSON). */
  actual: string
  /** The new baseline (JSON); written on allow, null on deny (the stored one is kept). */
  baseline: string | null
}

/** One webhook delivery of one alert (src/broker/alerts.ts): retried until delivered or failed. */
export interface AlertOutboxRow {
  id: string
  url: string
  type: string
  /** The JSON body as signed and sent: event fields only, never a secret value. */
  body: string
  status: 'pending' | 'delivered' | 'failed'
  attempts: number
  nextAt: number
  createdAt: number
  lastError: string | null
}

/** A workload containment quarantined: no attestation result, no release until an admin clears it. */
export interface QuarantineRow {
  workload: string
  at: number
  reason: string
}

export interface UiSessionRow {
  /** SHA-256 of the session cookie value, hex. */
  id: string
  /** The admin credential that logged in ("admin:<name>"): revoking it ends the session. */
  credentialId: string
  createdAt: number
  expiresAt: number
}

export interface VaultLeaseRow {
  accessor: string
  jti: string
  jkt: string
  policy: string
  referenceIds: string
  role: string
  createdAt: number
  expiresAt: number
  revokedAt: number | null
}

export interface AuditInput {
  type: string
  /** Who or what the event is about: jkt, workload id, admin, secret name. */
  subject: string
  decision: 'allow' | 'deny' | 'info'
  /** Reasons and non-secret detail, JSON-safe. */
  detail: Record<string, unknown>
}

/**
 * The audit entry of a change, appended to the chain in the same transaction as the change
 * (putSecretVersion, putPolicy): both commit or neither does. `entry` gets the version stored.
 */
export interface AuditWith {
  at: number
  entry(version: number): AuditInput
}

export interface AuditRow extends AuditInput {
  seq: number
  at: number
  prevHash: string
  hash: string
}

export interface CredentialRow {
  /** "admin:<name>" or "rp:<name>" (relying party). */
  id: string
  kind: 'admin' | 'relying-party'
  /** scrypt hash of the credential, encoded "scrypt$N$r$p$salt$hash". */
  hash: string
  createdAt: number
  revokedAt: number | null
}

/** Storage for everything the broker keeps. Every method is atomic. */
export interface Store {
  readonly kind: 'sqlite' | 'postgres'
  close(): Promise<void>
  /**
   * Throws ERR_STORE_UNAVAILABLE when the store cannot serve: a read fails, or (SQLite) the data
   * directory's filesystem has less than MIN_FREE_BYTES left, so writes would fail — and with them
   * every release, since each appends an audit row. /readyz answers with it.
   */
  ready(): Promise<void>

  // Challenge nonces: consume is exactly-once across every replica sharing the store.
  insertNonce(row: NonceRow): Promise<void>
  consumeNonce(id: string, now: number): Promise<ConsumeNonceResult>
  pruneNonces(before: number): Promise<number>
  /**
   * What the outstanding-challenge cap prunes first: nonces expired at `now` and nonces already
   * spent, so that clients who answer their challenges never fill the cap. A replay of a pruned
   * spent nonce is ERR_NONCE_UNKNOWN instead of ERR_NONCE_USED: refused either way.
   */
  pruneSpentNonces(now: number): Promise<number>
  /** Stored nonces, expired, spent or not: what the outstanding-challenge cap bounds (a flood cannot grow the table past it). */
  countNonces(): Promise<number>

  // DPoP proof ids: the first use across every replica wins (true), any later use is a replay
  // (false). Rows are kept until expiresAt, when the proof's iat could no longer pass anyway.
  useDpopProof(id: string, expiresAt: number): Promise<boolean>
  /** Whether a nonce row exists, is unused and unexpired (DPoP server nonces are read, never consumed). */
  nonceLive(id: string, now: number): Promise<boolean>
  pruneDpopProofs(before: number): Promise<number>

  // Trustee KBS protocol sessions: attested at most once (the update wins only while jti is null).
  insertKbsSession(row: KbsSessionRow): Promise<void>
  getKbsSession(id: string): Promise<KbsSessionRow | null>
  getKbsSessionByJti(jti: string): Promise<KbsSessionRow | null>
  attestKbsSession(id: string, v: { jti: string; teePubkey: string; expiresAt: number }): Promise<boolean>
  pruneKbsSessions(before: number): Promise<number>

  // Secrets: versioned; rm marks every version deleted. The caller seals for a version (the AAD
  // binds it), so put inserts exactly that version and returns false when it exists already
  // (a concurrent writer won; the caller re-seals for the next version). With `audit`, the entry
  // is appended in the same transaction, only when the version was inserted.
  putSecretVersion(row: SecretVersionRow, audit?: AuditWith): Promise<boolean>
  getSecretVersion(name: string, version?: number): Promise<SecretVersionRow | null>
  listSecrets(): Promise<SecretSummary[]>
  deleteSecret(name: string, by: string): Promise<boolean>
  /** Every live secret version, for KEK rotation. */
  allSecretVersions(): Promise<SecretVersionRow[]>
  updateWrappedKey(name: string, version: number, wrappedKey: Uint8Array, kekId: string): Promise<void>

  // Policies: versioned by name; apply makes the new version active (and appends `audit` in the
  // same transaction).
  putPolicy(row: Omit<PolicyRow, 'version' | 'active'>, audit?: AuditWith): Promise<number>
  getActivePolicies(): Promise<PolicyRow[]>
  /**
   * A token that changes (to a random value, by a trigger in the same transaction) with every
   * change to policies, reference values or quarantines, by anyone; null when the row is missing
   * (then nothing may be cached).
   */
  decisionStateVersion(): Promise<string | null>
  getPolicy(name: string, version?: number): Promise<PolicyRow | null>
  deactivatePolicy(name: string): Promise<boolean>

  // Reference values
  putReferenceValue(row: ReferenceValueRow): Promise<void>
  listReferenceValues(set?: string): Promise<ReferenceValueRow[]>
  revokeReferenceValue(id: string, by: string, at: number): Promise<boolean>

  // Token signing keys
  putSigningKey(row: SigningKeyRow): Promise<void>
  listSigningKeys(): Promise<SigningKeyRow[]>
  retireSigningKey(kid: string, at: number): Promise<void>
  /** Replaces the sealed private key (KEK rotation re-wraps it); false when the kid is unknown. */
  updateSigningKeySealed(kid: string, sealedPrivate: string): Promise<boolean>

  // TPM attestation keys and credential activation
  putAk(row: AkRow): Promise<void>
  getAk(name: string): Promise<AkRow | null>
  listAks(): Promise<AkRow[]>
  revokeAk(name: string, at: number): Promise<boolean>
  /** Moves a pending AK to enrolled or rejected; false unless it was pending. */
  setAkStatus(name: string, status: 'enrolled' | 'rejected', by: string): Promise<boolean>
  insertActivation(row: ActivationRow): Promise<void>
  /** Marks the activation used exactly once; returns it, or null when unknown/used/expired. */
  consumeActivation(id: string, now: number): Promise<ActivationRow | null>
  /** Stored activations, expired or not: what the pending-activation cap bounds. */
  countActivations(): Promise<number>
  pruneActivations(before: number): Promise<number>
  // Enrolment tokens: consume is exactly-once across replicas, like nonces.
  insertEnrolmentToken(row: EnrolmentTokenRow): Promise<void>
  /** Marks the token used by akName when it is unused, unexpired and issued for workload. */
  consumeEnrolmentToken(id: string, workload: string, now: number, akName: string): Promise<boolean>
  // EK allow/deny list
  putEkEntry(row: EkListRow): Promise<void>
  /** Entries for any of the given EK digests (all entries when omitted). */
  listEkEntries(eks?: string[]): Promise<EkListRow[]>
  /** Removes one entry by id, or every entry of a kind for an EK digest; returns how many. */
  removeEkEntries(by: { id: string } | { kind: 'allow' | 'deny'; ek: string }): Promise<number>

  // Attestations (issued tokens) and workloads
  insertAttestation(row: AttestationRow): Promise<void>
  getAttestation(jti: string): Promise<AttestationRow | null>
  revokeAttestationsByReference(referenceId: string, at: number): Promise<AttestationRow[]>
  revokeAttestationsByPolicy(policy: string, at: number): Promise<AttestationRow[]>
  revokeAttestationsByAk(akNames: string[], at: number): Promise<AttestationRow[]>
  /** Revokes the live attestations of one key admitted as one workload (a failed re-attestation). */
  revokeAttestationsByKey(jkt: string, workload: string, at: number): Promise<AttestationRow[]>
  /**
   * Writes a workload's appraised decision in one statement and returns the row as it was before
   * (null for a new workload). An allow sets the baseline and clears divergedAt; a deny keeps the
   * stored baseline and the time the workload first diverged (else `at`). Both are computed from
   * the row as the write finds it, so decisions of other replicas in between are not overwritten.
   */
  recordWorkloadDecision(d: WorkloadDecision): Promise<WorkloadRow | null>
  getWorkload(id: string): Promise<WorkloadRow | null>
  listWorkloads(): Promise<WorkloadRow[]>

  // Vault leases minted for attested workloads
  insertVaultLease(row: VaultLeaseRow): Promise<void>
  listLiveVaultLeases(filter: { jkt?: string; jti?: string; referenceId?: string; policy?: string }): Promise<VaultLeaseRow[]>
  markVaultLeaseRevoked(accessor: string, at: number): Promise<void>

  // OAuth access tokens (RFC 9068) for introspection and revocation
  insertOAuthToken(row: OAuthTokenRow): Promise<void>
  getOAuthToken(jti: string): Promise<OAuthTokenRow | null>
  /** Sets revokedAt on a live token; false when unknown or already revoked. */
  revokeOAuthToken(jti: string, at: number): Promise<boolean>
  pruneOAuthTokens(before: number): Promise<number>

  // Audit: append-only, hash-chained, serialized across replicas.
  appendAudit(entry: AuditInput, at: number): Promise<AuditRow>
  listAudit(opts: { afterSeq?: number; limit?: number }): Promise<AuditRow[]>
  /** Rows recorded at or after `since`, oldest first: the newest `limit` of them when there are more. */
  listAuditSince(since: number, limit: number): Promise<AuditRow[]>

  // Alerts: the webhook outbox (delivered by one replica, src/broker/replication.ts) and quarantines.
  insertAlerts(rows: AlertOutboxRow[]): Promise<void>
  /** Pending deliveries due at `now`, oldest first. */
  dueAlerts(now: number, limit: number): Promise<AlertOutboxRow[]>
  updateAlert(id: string, v: Pick<AlertOutboxRow, 'status' | 'attempts' | 'nextAt' | 'lastError'>): Promise<void>
  listAlerts(): Promise<AlertOutboxRow[]>
  /** Quarantines a workload; false when it was quarantined already (the first reason stays). */
  quarantineWorkload(row: QuarantineRow): Promise<boolean>
  getQuarantine(workload: string): Promise<QuarantineRow | null>
  /** Clears a quarantine; false when the workload was not quarantined. */
  clearQuarantine(workload: string): Promise<boolean>
  /** Revokes every live attestation of a workload (containment revoke-tokens). */
  revokeAttestationsByWorkload(workload: string, at: number): Promise<AttestationRow[]>

  // Dashboard sessions: rows are shared by every replica; the cookie value itself is never stored.
  insertUiSession(row: UiSessionRow): Promise<void>
  /** The session when it exists and has not expired at `now`, else null. */
  getUiSession(id: string, now: number): Promise<UiSessionRow | null>
  deleteUiSession(id: string): Promise<boolean>
  pruneUiSessions(before: number): Promise<number>

  // Credentials for the admin API and relying parties
  putCredential(row: CredentialRow): Promise<void>
  getCredential(id: string): Promise<CredentialRow | null>
  listCredentials(): Promise<CredentialRow[]>
  /** Sets revokedAt on a live credential; false when unknown or already revoked. */
  revokeCredential(id: string, at: number): Promise<boolean>
  /** Replaces the stored hash of a live credential (legacy re-hash); never touches a revoked one. */
  rehashCredential(id: string, hash: string): Promise<boolean>
}
