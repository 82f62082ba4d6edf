// The one error vocabulary of keyward, shared by the broker and the enclave client. Every failure
// carries a stable `code`; callers branch on the code, never on message text. Crypto failures use
// fixed messages that reveal nothing; details go to `detail` (logged, never secret). Transport
// knows the codes' HTTP statuses (src/broker/http/errors.ts), this module does not.

/** Stable error codes. Add codes here (and their HTTP status in src/broker/http/errors.ts), nowhere else. */
export const ERROR_CODES = [
  // request shape
  'ERR_BAD_REQUEST',
  'ERR_USAGE', // a command line the CLI does not accept (exit 2)
  'ERR_BODY_TOO_LARGE',
  'ERR_UNSUPPORTED_MEDIA_TYPE',
  'ERR_UNKNOWN_TEE',
  'ERR_NOT_FOUND',
  'ERR_CONFLICT',
  'ERR_METHOD_NOT_ALLOWED',
  // abuse controls: a client over its rate, or the broker at its cap of outstanding challenges/activations
  'ERR_RATE_LIMITED',
  'ERR_TOO_MANY_PENDING',
  /** The broker is at its cap of requests in flight and queued (limits.maxInflightRequests): retry later. */
  'ERR_OVERLOADED',
  // authentication of callers
  'ERR_UNAUTHORIZED',
  'ERR_FORBIDDEN',
  'ERR_TOKEN_INVALID',
  'ERR_DPOP_INVALID',
  /** The broker requires a server-provided DPoP nonce (RFC 9449 §8): retry with the DPoP-Nonce it sent. */
  'ERR_DPOP_NONCE',
  'ERR_KEY_UNSUPPORTED',
  /** OAuth client authentication (Client Attestation and its PoP) failed: RFC 6749 invalid_client. */
  'ERR_CLIENT_INVALID',
  /** OAuth token request: a grant type this authorization server does not offer (unsupported_grant_type). */
  'ERR_GRANT_TYPE_UNSUPPORTED',
  /** OAuth token request: a scope the policy does not grant for the resource (invalid_scope). */
  'ERR_SCOPE_INVALID',
  // challenge nonces
  'ERR_NONCE_UNKNOWN',
  'ERR_NONCE_EXPIRED',
  'ERR_NONCE_USED',
  // evidence: structure
  'ERR_EVIDENCE_MALFORMED',
  'ERR_EVIDENCE_UNSUPPORTED',
  // evidence: trust
  'ERR_SIGNATURE_INVALID',
  'ERR_CHAIN_INVALID',
  'ERR_CERT_EXPIRED',
  'ERR_CERT_REVOKED',
  'ERR_ROOT_UNTRUSTED',
  'ERR_NONCE_MISMATCH',
  'ERR_BINDING_MISMATCH',
  'ERR_PCR_DIGEST_MISMATCH',
  'ERR_EVENTLOG_REPLAY',
  'ERR_EVENTLOG_UNTRUSTED',
  'ERR_AK_ATTRIBUTES',
  'ERR_AK_UNTRUSTED',
  'ERR_EK_UNTRUSTED',
  'ERR_EK_PROFILE',
  'ERR_CREDENTIAL_ACTIVATION',
  // TPM enrolment (docs/tpm-enrolment.md)
  'ERR_ENROLMENT_PENDING',
  'ERR_EK_DENIED',
  'ERR_TCB_MISMATCH',
  'ERR_CHIP_ID_MISMATCH',
  'ERR_DEBUG_ENCLAVE',
  'ERR_ALLOWLIST_REPLAY',
  'ERR_ALLOWLIST_UNTRUSTED',
  'ERR_ALLOWLIST_UNATTESTED',
  // appraisal and release
  'ERR_POLICY_DENIED',
  'ERR_POLICY_INVALID',
  'ERR_NOT_GRANTED',
  'ERR_QUARANTINED',
  'ERR_REFERENCE_REVOKED',
  // sealing and storage
  'ERR_SEAL',
  'ERR_UNSEAL',
  'ERR_STORE',
  'ERR_STORE_UNAVAILABLE',
  'ERR_AUDIT_CHAIN',
  // upstreams
  'ERR_VAULT_UNAVAILABLE',
  'ERR_VAULT_SEALED',
  'ERR_VAULT_DENIED',
  'ERR_VAULT_ERROR',
  'ERR_UPSTREAM_UNAVAILABLE',
  // configuration and the rest
  'ERR_CONFIG',
  'ERR_COLLECTOR',
  // enclave client only: a secret-file path another user could control; a release the broker did not sign
  'ERR_UNSAFE_PATH',
  'ERR_RELEASE_UNVERIFIED',
  'ERR_INTERNAL',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

const CODES: ReadonlySet<string> = new Set(ERROR_CODES)
/** True for a code this build knows (a broker may send newer ones). */
export const isErrorCode = (code: unknown): code is ErrorCode => typeof code === 'string' && CODES.has(code)

export interface KeywardErrorOptions {
  cause?: unknown
  /** Structured, non-secret detail for logs and explainable denials. */
  detail?: Record<string, unknown>
}

export class KeywardError extends Error {
  readonly code: ErrorCode
  readonly detail: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: KeywardErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'KeywardError'
    this.code = code
    this.detail = options.detail
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message }
  }
}

/** Structure errors from parsers: truncated, oversized, wrong magic, unknown version. */
export class EvidenceMalformedError extends KeywardError {
  constructor(message: string, options?: KeywardErrorOptions) {
    super('ERR_EVIDENCE_MALFORMED', message, options)
    this.name = 'EvidenceMalformedError'
  }
}

/** Signature failures always carry the same message: which check failed is in `detail`. */
export class SignatureInvalidError extends KeywardError {
  constructor(what = 'signature verification failed', options?: KeywardErrorOptions) {
    super('ERR_SIGNATURE_INVALID', what, options)
    this.name = 'SignatureInvalidError'
  }
}

export function isKeywardError(e: unknown): e is KeywardError {
  return e instanceof KeywardError
}

/** Wraps anything thrown by a parser into a typed malformed-evidence error, so no RangeError escapes. */
export function asEvidenceError(e: unknown, what: string): KeywardError {
  if (e instanceof KeywardError) return e
  return new EvidenceMalformedError(`${what}: malformed`, { cause: e })
}
