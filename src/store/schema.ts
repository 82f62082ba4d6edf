// The storage schema for both backends, side by side, so that they cannot drift
// (test/store/schema.test.ts compares them column by column). Every table holds one row type
// of src/store/types.ts. Times are epoch milliseconds: SQLite INTEGER, PostgreSQL BIGINT read
// back as JS numbers (safe up to 2^53). Binary columns are BLOB / BYTEA.
//
// drizzle-kit (drizzle.config.sqlite.ts, drizzle.config.postgres.ts) collects the exported
// tables of its dialect from this module and generates drizzle/sqlite and drizzle/postgres.
import { sql } from 'drizzle-orm'
import {
  sqliteTable,
  text as sText,
  integer as sInt,
  blob as sBlob,
  primaryKey as sPrimaryKey,
  index as sIndex,
  uniqueIndex as sUniqueIndex,
} from 'drizzle-orm/sqlite-core'
import {
  pgTable,
  text as pText,
  integer as pInt,
  bigint as pBigint,
  boolean as pBool,
  customType,
  primaryKey as pPrimaryKey,
  index as pIndex,
  uniqueIndex as pUniqueIndex,
} from 'drizzle-orm/pg-core'

/** BYTEA in, Buffer out: node-postgres serializes Buffers as bytea. */
const pBytes = customType<{ data: Buffer; driverData: Buffer }>({
  dataType: () => 'bytea',
})
const sBytes = (name: string) => sBlob(name, { mode: 'buffer' })
const sBool = (name: string) => sInt(name, { mode: 'boolean' })
const pMs = (name: string) => pBigint(name, { mode: 'number' })
const sMs = (name: string) => sInt(name)

// --- challenge nonces -------------------------------------------------------------------
export const sqliteNonces = sqliteTable('nonces', {
  id: sText('id').primaryKey(),
  createdAt: sMs('created_at').notNull(),
  expiresAt: sMs('expires_at').notNull(),
  usedAt: sMs('used_at'),
}, (t) => [sIndex('nonces_expires_at_idx').on(t.expiresAt)])
export const pgNonces = pgTable('nonces', {
  id: pText('id').primaryKey(),
  createdAt: pMs('created_at').notNull(),
  expiresAt: pMs('expires_at').notNull(),
  usedAt: pMs('used_at'),
}, (t) => [pIndex('nonces_expires_at_idx').on(t.expiresAt)])

/**
 * PostgreSQL only: the number of rows in `nonces`, kept by statement triggers (migration
 * postgres/0009) on every insert, delete and truncate, whoever makes it. Every challenge checks
 * the outstanding-challenge cap, and count(*) over a table that sits near the cap reads every row
 * (0.4-0.9 ms at 10,000 here); SQLite's count(*) walks a small b-tree and needs no counter.
 * Outside pgSchema, whose tables both dialects share.
 */
export const pgNonceCount = pgTable('nonce_count', {
  id: pInt('id').primaryKey(),
  n: pBigint('n', { mode: 'number' }).notNull(),
})

// --- seen DPoP proofs (RFC 9449 §11.1): one row per proof id, kept until it could no longer pass the iat check ---
export const sqliteDpopProofs = sqliteTable('dpop_proofs', {
  id: sText('id').primaryKey(),
  expiresAt: sMs('expires_at').notNull(),
}, (t) => [sIndex('dpop_proofs_expires_at_idx').on(t.expiresAt)])
export const pgDpopProofs = pgTable('dpop_proofs', {
  id: pText('id').primaryKey(),
  expiresAt: pMs('expires_at').notNull(),
}, (t) => [pIndex('dpop_proofs_expires_at_idx').on(t.expiresAt)])

// --- Trustee KBS protocol sessions (src/broker/kbs) ----------------------------------------
export const sqliteKbsSessions = sqliteTable('kbs_sessions', {
  id: sText('id').primaryKey(),
  nonceId: sText('nonce_id').notNull(),
  tee: sText('tee').notNull(),
  createdAt: sMs('created_at').notNull(),
  expiresAt: sMs('expires_at').notNull(),
  jti: sText('jti'),
  teePubkey: sText('tee_pubkey'),
}, (t) => [sIndex('kbs_sessions_expires_at_idx').on(t.expiresAt), sUniqueIndex('kbs_sessions_jti_idx').on(t.jti)])
export const pgKbsSessions = pgTable('kbs_sessions', {
  id: pText('id').primaryKey(),
  nonceId: pText('nonce_id').notNull(),
  tee: pText('tee').notNull(),
  createdAt: pMs('created_at').notNull(),
  expiresAt: pMs('expires_at').notNull(),
  jti: pText('jti'),
  teePubkey: pText('tee_pubkey'),
}, (t) => [pIndex('kbs_sessions_expires_at_idx').on(t.expiresAt), pUniqueIndex('kbs_sessions_jti_idx').on(t.jti)])

// --- sealed secret versions -------------------------------------------------------------
export const sqliteSecretVersions = sqliteTable('secret_versions', {
  name: sText('name').notNull(),
  version: sInt('version').notNull(),
  ciphertext: sBytes('ciphertext').notNull(),
  iv: sBytes('iv').notNull(),
  wrappedKey: sBytes('wrapped_key').notNull(),
  kekId: sText('kek_id').notNull(),
  source: sText('source'),
  createdAt: sMs('created_at').notNull(),
  createdBy: sText('created_by').notNull(),
  deletedAt: sMs('deleted_at'),
  deletedBy: sText('deleted_by'),
}, (t) => [sPrimaryKey({ name: 'secret_versions_pk', columns: [t.name, t.version] })])
export const pgSecretVersions = pgTable('secret_versions', {
  name: pText('name').notNull(),
  version: pInt('version').notNull(),
  ciphertext: pBytes('ciphertext').notNull(),
  iv: pBytes('iv').notNull(),
  wrappedKey: pBytes('wrapped_key').notNull(),
  kekId: pText('kek_id').notNull(),
  source: pText('source'),
  createdAt: pMs('created_at').notNull(),
  createdBy: pText('created_by').notNull(),
  deletedAt: pMs('deleted_at'),
  deletedBy: pText('deleted_by'),
}, (t) => [pPrimaryKey({ name: 'secret_versions_pk', columns: [t.name, t.version] })])

// --- policies ---------------------------------------------------------------------------
export const sqlitePolicies = sqliteTable('policies', {
  name: sText('name').notNull(),
  version: sInt('version').notNull(),
  source: sText('source').notNull(),
  sha256: sText('sha256').notNull(),
  createdAt: sMs('created_at').notNull(),
  createdBy: sText('created_by').notNull(),
  active: sBool('active').notNull(),
}, (t) => [
  sPrimaryKey({ name: 'policies_pk', columns: [t.name, t.version] }),
  // At most one active version per name.
  sUniqueIndex('policies_one_active_idx').on(t.name).where(sql`active = 1`),
])
export const pgPolicies = pgTable('policies', {
  name: pText('name').notNull(),
  version: pInt('version').notNull(),
  source: pText('source').notNull(),
  sha256: pText('sha256').notNull(),
  createdAt: pMs('created_at').notNull(),
  createdBy: pText('created_by').notNull(),
  active: pBool('active').notNull(),
}, (t) => [
  pPrimaryKey({ name: 'policies_pk', columns: [t.name, t.version] }),
  pUniqueIndex('policies_one_active_idx').on(t.name).where(sql`active`),
])

// --- reference values -------------------------------------------------------------------
export const sqliteReferenceValues = sqliteTable('reference_values', {
  id: sText('id').primaryKey(),
  set: sText('set').notNull(),
  tee: sText('tee').notNull(),
  value: sText('value').notNull(),
  source: sText('source').notNull(),
  createdBy: sText('created_by').notNull(),
  createdAt: sMs('created_at').notNull(),
  expiresAt: sMs('expires_at'),
  revokedAt: sMs('revoked_at'),
  revokedBy: sText('revoked_by'),
  note: sText('note'),
}, (t) => [sIndex('reference_values_set_idx').on(t.set)])
export const pgReferenceValues = pgTable('reference_values', {
  id: pText('id').primaryKey(),
  set: pText('set').notNull(),
  tee: pText('tee').notNull(),
  value: pText('value').notNull(),
  source: pText('source').notNull(),
  createdBy: pText('created_by').notNull(),
  createdAt: pMs('created_at').notNull(),
  expiresAt: pMs('expires_at'),
  revokedAt: pMs('revoked_at'),
  revokedBy: pText('revoked_by'),
  note: pText('note'),
}, (t) => [pIndex('reference_values_set_idx').on(t.set)])

// --- token signing keys -----------------------------------------------------------------
export const sqliteSigningKeys = sqliteTable('signing_keys', {
  kid: sText('kid').primaryKey(),
  alg: sText('alg', { enum: ['ES256'] }).notNull(),
  publicJwk: sText('public_jwk').notNull(),
  sealedPrivate: sText('sealed_private').notNull(),
  createdAt: sMs('created_at').notNull(),
  retiredAt: sMs('retired_at'),
})
export const pgSigningKeys = pgTable('signing_keys', {
  kid: pText('kid').primaryKey(),
  alg: pText('alg', { enum: ['ES256'] }).notNull(),
  publicJwk: pText('public_jwk').notNull(),
  sealedPrivate: pText('sealed_private').notNull(),
  createdAt: pMs('created_at').notNull(),
  retiredAt: pMs('retired_at'),
})

// --- TPM attestation keys and credential activation -------------------------------------
export const sqliteAks = sqliteTable('aks', {
  name: sText('name').primaryKey(),
  publicArea: sText('public_area').notNull(),
  workload: sText('workload').notNull(),
  via: sText('via', { enum: ['credential-activation', 'pinned'] }).notNull(),
  ekFingerprint: sText('ek_fingerprint'),
  createdAt: sMs('created_at').notNull(),
  revokedAt: sMs('revoked_at'),
  status: sText('status', { enum: ['enrolled', 'pending', 'rejected'] }).notNull().default('enrolled'),
  enrolledBy: sText('enrolled_by'),
  ekPubDigest: sText('ek_pub_digest'),
})
export const pgAks = pgTable('aks', {
  name: pText('name').primaryKey(),
  publicArea: pText('public_area').notNull(),
  workload: pText('workload').notNull(),
  via: pText('via', { enum: ['credential-activation', 'pinned'] }).notNull(),
  ekFingerprint: pText('ek_fingerprint'),
  createdAt: pMs('created_at').notNull(),
  revokedAt: pMs('revoked_at'),
  status: pText('status', { enum: ['enrolled', 'pending', 'rejected'] }).notNull().default('enrolled'),
  enrolledBy: pText('enrolled_by'),
  ekPubDigest: pText('ek_pub_digest'),
})

export const sqliteActivations = sqliteTable('activations', {
  id: sText('id').primaryKey(),
  akName: sText('ak_name').notNull(),
  secretHash: sText('secret_hash').notNull(),
  workload: sText('workload').notNull(),
  publicArea: sText('public_area').notNull(),
  ekFingerprint: sText('ek_fingerprint'),
  expiresAt: sMs('expires_at').notNull(),
  usedAt: sMs('used_at'),
  enrolTokenHash: sText('enrol_token_hash'),
  ekPubDigest: sText('ek_pub_digest'),
})
export const pgActivations = pgTable('activations', {
  id: pText('id').primaryKey(),
  akName: pText('ak_name').notNull(),
  secretHash: pText('secret_hash').notNull(),
  workload: pText('workload').notNull(),
  publicArea: pText('public_area').notNull(),
  ekFingerprint: pText('ek_fingerprint'),
  expiresAt: pMs('expires_at').notNull(),
  usedAt: pMs('used_at'),
  enrolTokenHash: pText('enrol_token_hash'),
  ekPubDigest: pText('ek_pub_digest'),
})

// --- issued attestation tokens and workloads --------------------------------------------
export const sqliteAttestations = sqliteTable('attestations', {
  jti: sText('jti').primaryKey(),
  jkt: sText('jkt').notNull(),
  tee: sText('tee').notNull(),
  policy: sText('policy').notNull(),
  policyVersion: sInt('policy_version').notNull(),
  measurement: sText('measurement').notNull(),
  referenceIds: sText('reference_ids').notNull(),
  workload: sText('workload').notNull(),
  issuedAt: sMs('issued_at').notNull(),
  expiresAt: sMs('expires_at').notNull(),
  revokedAt: sMs('revoked_at'),
  akName: sText('ak_name'),
}, (t) => [sIndex('attestations_policy_idx').on(t.policy)])
export const pgAttestations = pgTable('attestations', {
  jti: pText('jti').primaryKey(),
  jkt: pText('jkt').notNull(),
  tee: pText('tee').notNull(),
  policy: pText('policy').notNull(),
  policyVersion: pInt('policy_version').notNull(),
  measurement: pText('measurement').notNull(),
  referenceIds: pText('reference_ids').notNull(),
  workload: pText('workload').notNull(),
  issuedAt: pMs('issued_at').notNull(),
  expiresAt: pMs('expires_at').notNull(),
  revokedAt: pMs('revoked_at'),
  akName: pText('ak_name'),
}, (t) => [pIndex('attestations_policy_idx').on(t.policy)])

export const sqliteWorkloads = sqliteTable('workloads', {
  id: sText('id').primaryKey(),
  tee: sText('tee').notNull(),
  lastAttestedAt: sMs('last_attested_at').notNull(),
  lastDecision: sText('last_decision', { enum: ['allow', 'deny'] }).notNull(),
  actual: sText('actual').notNull(),
  divergedAt: sMs('diverged_at'),
  baseline: sText('baseline'),
})
export const pgWorkloads = pgTable('workloads', {
  id: pText('id').primaryKey(),
  tee: pText('tee').notNull(),
  lastAttestedAt: pMs('last_attested_at').notNull(),
  lastDecision: pText('last_decision', { enum: ['allow', 'deny'] }).notNull(),
  actual: pText('actual').notNull(),
  divergedAt: pMs('diverged_at'),
  baseline: pText('baseline'),
})

// --- Vault leases -----------------------------------------------------------------------
export const sqliteVaultLeases = sqliteTable('vault_leases', {
  accessor: sText('accessor').primaryKey(),
  jti: sText('jti').notNull(),
  jkt: sText('jkt').notNull(),
  policy: sText('policy').notNull(),
  referenceIds: sText('reference_ids').notNull(),
  role: sText('role').notNull(),
  createdAt: sMs('created_at').notNull(),
  expiresAt: sMs('expires_at').notNull(),
  revokedAt: sMs('revoked_at'),
}, (t) => [sIndex('vault_leases_jkt_idx').on(t.jkt), sIndex('vault_leases_policy_idx').on(t.policy)])
export const pgVaultLeases = pgTable('vault_leases', {
  accessor: pText('accessor').primaryKey(),
  jti: pText('jti').notNull(),
  jkt: pText('jkt').notNull(),
  policy: pText('policy').notNull(),
  referenceIds: pText('reference_ids').notNull(),
  role: pText('role').notNull(),
  createdAt: pMs('created_at').notNull(),
  expiresAt: pMs('expires_at').notNull(),
  revokedAt: pMs('revoked_at'),
}, (t) => [pIndex('vault_leases_jkt_idx').on(t.jkt), pIndex('vault_leases_policy_idx').on(t.policy)])

// --- audit chain: seq is assigned by appendAudit (no autoincrement, so gaps are visible) ---
export const sqliteAuditLog = sqliteTable('audit_log', {
  seq: sInt('seq').primaryKey(),
  at: sMs('at').notNull(),
  type: sText('type').notNull(),
  subject: sText('subject').notNull(),
  decision: sText('decision', { enum: ['allow', 'deny', 'info'] }).notNull(),
  /** Canonical JSON of the detail object (src/audit/chain.ts). */
  detail: sText('detail').notNull(),
  prevHash: sText('prev_hash').notNull(),
  hash: sText('hash').notNull(),
}, (t) => [sIndex('audit_log_at_idx').on(t.at)])
export const pgAuditLog = pgTable('audit_log', {
  seq: pBigint('seq', { mode: 'number' }).primaryKey(),
  at: pMs('at').notNull(),
  type: pText('type').notNull(),
  subject: pText('subject').notNull(),
  decision: pText('decision', { enum: ['allow', 'deny', 'info'] }).notNull(),
  detail: pText('detail').notNull(),
  prevHash: pText('prev_hash').notNull(),
  hash: pText('hash').notNull(),
}, (t) => [pIndex('audit_log_at_idx').on(t.at)])

// --- admin and relying-party credentials ------------------------------------------------
export const sqliteCredentials = sqliteTable('credentials', {
  id: sText('id').primaryKey(),
  kind: sText('kind', { enum: ['admin', 'relying-party'] }).notNull(),
  hash: sText('hash').notNull(),
  createdAt: sMs('created_at').notNull(),
  revokedAt: sMs('revoked_at'),
})
export const pgCredentials = pgTable('credentials', {
  id: pText('id').primaryKey(),
  kind: pText('kind', { enum: ['admin', 'relying-party'] }).notNull(),
  hash: pText('hash').notNull(),
  createdAt: pMs('created_at').notNull(),
  revokedAt: pMs('revoked_at'),
})

// --- dashboard sessions (/ui): shared by every replica, so a login holds on all of them ---
export const sqliteUiSessions = sqliteTable('ui_sessions', {
  /** SHA-256 of the session cookie value, hex: the cookie itself is never stored. */
  id: sText('id').primaryKey(),
  credentialId: sText('credential_id').notNull(),
  createdAt: sMs('created_at').notNull(),
  expiresAt: sMs('expires_at').notNull(),
})
export const pgUiSessions = pgTable('ui_sessions', {
  id: pText('id').primaryKey(),
  credentialId: pText('credential_id').notNull(),
  createdAt: pMs('created_at').notNull(),
  expiresAt: pMs('expires_at').notNull(),
})

// --- alerts (docs/operations.md §Alerts): the webhook outbox and quarantined workloads ---
export const sqliteAlertOutbox = sqliteTable('alert_outbox', {
  id: sText('id').primaryKey(),
  /** The webhook's URL: a row is one event for one webhook. */
  url: sText('url').notNull(),
  type: sText('type').notNull(),
  /** The JSON body as signed and sent (no secret values). */
  body: sText('body').notNull(),
  status: sText('status', { enum: ['pending', 'delivered', 'failed'] }).notNull(),
  attempts: sInt('attempts').notNull(),
  nextAt: sMs('next_at').notNull(),
  createdAt: sMs('created_at').notNull(),
  lastError: sText('last_error'),
}, (t) => [sIndex('alert_outbox_due_idx').on(t.status, t.nextAt)])
export const pgAlertOutbox = pgTable('alert_outbox', {
  id: pText('id').primaryKey(),
  url: pText('url').notNull(),
  type: pText('type').notNull(),
  body: pText('body').notNull(),
  status: pText('status', { enum: ['pending', 'delivered', 'failed'] }).notNull(),
  attempts: pInt('attempts').notNull(),
  nextAt: pMs('next_at').notNull(),
  createdAt: pMs('created_at').notNull(),
  lastError: pText('last_error'),
}, (t) => [pIndex('alert_outbox_due_idx').on(t.status, t.nextAt)])

export const sqliteQuarantines = sqliteTable('quarantines', {
  workload: sText('workload').primaryKey(),
  at: sMs('at').notNull(),
  reason: sText('reason').notNull(),
})
export const pgQuarantines = pgTable('quarantines', {
  workload: pText('workload').primaryKey(),
  at: pMs('at').notNull(),
  reason: pText('reason').notNull(),
})

// --- What the decision path caches (src/broker/decision-state.ts): policies, reference values and
// quarantines. One row whose token triggers (migrations sqlite/0007, postgres/0008) replace with a random one on every
// insert, update or delete of those tables, whoever makes it (any replica, an operator's SQL),
// so a reader that sees the same token knows those tables are as it last read them. Random, not a
// counter: a restored backup cannot repeat a token with different contents.
export const sqliteDecisionStateVersion = sqliteTable('decision_state_version', {
  id: sInt('id').primaryKey(),
  token: sText('token').notNull(),
})
export const pgDecisionStateVersion = pgTable('decision_state_version', {
  id: pInt('id').primaryKey(),
  token: pText('token').notNull(),
})

// --- TPM enrolment: single-use tokens an admin issued for a name, and the EK allow/deny list ---
export const sqliteEnrolmentTokens = sqliteTable('enrolment_tokens', {
  /** SHA-256 of the token, hex: the token itself is never stored. */
  id: sText('id').primaryKey(),
  workload: sText('workload').notNull(),
  createdAt: sMs('created_at').notNull(),
  createdBy: sText('created_by').notNull(),
  expiresAt: sMs('expires_at').notNull(),
  usedAt: sMs('used_at'),
  usedBy: sText('used_by'),
})
export const pgEnrolmentTokens = pgTable('enrolment_tokens', {
  id: pText('id').primaryKey(),
  workload: pText('workload').notNull(),
  createdAt: pMs('created_at').notNull(),
  createdBy: pText('created_by').notNull(),
  expiresAt: pMs('expires_at').notNull(),
  usedAt: pMs('used_at'),
  usedBy: pText('used_by'),
})

export const sqliteEkList = sqliteTable('ek_list', {
  id: sText('id').primaryKey(),
  kind: sText('kind', { enum: ['allow', 'deny'] }).notNull(),
  /** EK certificate SHA-256 fingerprint or SHA-256 of the EK public key (SPKI DER), hex. */
  ek: sText('ek').notNull(),
  workload: sText('workload'),
  createdAt: sMs('created_at').notNull(),
  createdBy: sText('created_by').notNull(),
  note: sText('note'),
}, (t) => [sIndex('ek_list_ek_idx').on(t.ek)])
export const pgEkList = pgTable('ek_list', {
  id: pText('id').primaryKey(),
  kind: pText('kind', { enum: ['allow', 'deny'] }).notNull(),
  ek: pText('ek').notNull(),
  workload: pText('workload'),
  createdAt: pMs('created_at').notNull(),
  createdBy: pText('created_by').notNull(),
  note: pText('note'),
}, (t) => [pIndex('ek_list_ek_idx').on(t.ek)])

// --- OAuth access tokens issued to attested clients (RFC 9068): jti state for introspection (RFC 7662) and revocation (RFC 7009) ---
export const sqliteOAuthTokens = sqliteTable('oauth_tokens', {
  jti: sText('jti').primaryKey(),
  /** The attestation the client authenticated with: revoking it deactivates this token. */
  attestationJti: sText('attestation_jti').notNull(),
  clientId: sText('client_id').notNull(),
  jkt: sText('jkt').notNull(),
  resource: sText('resource').notNull(),
  scope: sText('scope').notNull(),
  issuedAt: sMs('issued_at').notNull(),
  expiresAt: sMs('expires_at').notNull(),
  revokedAt: sMs('revoked_at'),
}, (t) => [sIndex('oauth_tokens_expires_at_idx').on(t.expiresAt)])
export const pgOAuthTokens = pgTable('oauth_tokens', {
  jti: pText('jti').primaryKey(),
  attestationJti: pText('attestation_jti').notNull(),
  clientId: pText('client_id').notNull(),
  jkt: pText('jkt').notNull(),
  resource: pText('resource').notNull(),
  scope: pText('scope').notNull(),
  issuedAt: pMs('issued_at').notNull(),
  expiresAt: pMs('expires_at').notNull(),
  revokedAt: pMs('revoked_at'),
}, (t) => [pIndex('oauth_tokens_expires_at_idx').on(t.expiresAt)])

/** The SQLite tables by logical name. */
export const sqliteSchema = {
  nonces: sqliteNonces,
  dpopProofs: sqliteDpopProofs,
  kbsSessions: sqliteKbsSessions,
  secretVersions: sqliteSecretVersions,
  policies: sqlitePolicies,
  referenceValues: sqliteReferenceValues,
  signingKeys: sqliteSigningKeys,
  aks: sqliteAks,
  activations: sqliteActivations,
  attestations: sqliteAttestations,
  workloads: sqliteWorkloads,
  vaultLeases: sqliteVaultLeases,
  auditLog: sqliteAuditLog,
  credentials: sqliteCredentials,
  enrolmentTokens: sqliteEnrolmentTokens,
  ekList: sqliteEkList,
  uiSessions: sqliteUiSessions,
  oauthTokens: sqliteOAuthTokens,
  alertOutbox: sqliteAlertOutbox,
  quarantines: sqliteQuarantines,
  decisionStateVersion: sqliteDecisionStateVersion,
} as const

/** The PostgreSQL tables by the same logical names. */
export const pgSchema = {
  nonces: pgNonces,
  dpopProofs: pgDpopProofs,
  kbsSessions: pgKbsSessions,
  secretVersions: pgSecretVersions,
  policies: pgPolicies,
  referenceValues: pgReferenceValues,
  signingKeys: pgSigningKeys,
  aks: pgAks,
  activations: pgActivations,
  attestations: pgAttestations,
  workloads: pgWorkloads,
  vaultLeases: pgVaultLeases,
  auditLog: pgAuditLog,
  credentials: pgCredentials,
  enrolmentTokens: pgEnrolmentTokens,
  ekList: pgEkList,
  uiSessions: pgUiSessions,
  oauthTokens: pgOAuthTokens,
  alertOutbox: pgAlertOutbox,
  quarantines: pgQuarantines,
  decisionStateVersion: pgDecisionStateVersion,
} as const
