// The one error module. Every failure keyward reports carries a stable `code`;
// callers branch on the code, never on message text. Crypto failures use fixed
// messages that reveal nothing; details go to `detail` (logged, never secret).

/** Stable error codes and the HTTP status each maps to. Add codes here, nowhere else. */
export const ERROR_STATUS = {
  // request shape
  ERR_BAD_REQUEST: 400,
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_UNKNOWN_TEE: 400,
  ERR_NOT_FOUND: 404,
  ERR_CONFLICT: 409,
  ERR_METHOD_NOT_ALLOWED: 405,
  // authentication of callers
  ERR_UNAUTHORIZED: 401,
  ERR_FORBIDDEN: 403,
  ERR_TOKEN_INVALID: 401,
  ERR_DPOP_INVALID: 401,
  ERR_KEY_UNSUPPORTED: 400,
  // challenge nonces
  ERR_NONCE_UNKNOWN: 403,
  ERR_NONCE_EXPIRED: 403,
  ERR_NONCE_USED: 403,
  // evidence: structure
  ERR_EVIDENCE_MALFORMED: 400,
  ERR_EVIDENCE_UNSUPPORTED: 400,
  // evidence: trust
  ERR_SIGNATURE_INVALID: 403,
  ERR_CHAIN_INVALID: 403,
  ERR_CERT_EXPIRED: 403,
  ERR_CERT_REVOKED: 403,
  ERR_ROOT_UNTRUSTED: 403,
  ERR_NONCE_MISMATCH: 403,
  ERR_BINDING_MISMATCH: 403,
  ERR_PCR_DIGEST_MISMATCH: 403,
  ERR_EVENTLOG_REPLAY: 403,
  ERR_AK_ATTRIBUTES: 403,
  ERR_AK_UNTRUSTED: 403,
  ERR_EK_UNTRUSTED: 403,
  ERR_CREDENTIAL_ACTIVATION: 403,
  ERR_TCB_MISMATCH: 403,
  ERR_CHIP_ID_MISMATCH: 403,
  ERR_DEBUG_ENCLAVE: 403,
  ERR_ALLOWLIST_REPLAY: 403,
  // appraisal and release
  ERR_POLICY_DENIED: 403,
  ERR_POLICY_INVALID: 400,
  ERR_NOT_GRANTED: 403,
  ERR_REFERENCE_REVOKED: 403,
  // sealing and storage
  ERR_SEAL: 500,
  ERR_UNSEAL: 500,
  ERR_STORE: 500,
  /** The store is unreachable, refusing connections, or out of disk: retry later. */
  ERR_STORE_UNAVAILABLE: 503,
  ERR_AUDIT_CHAIN: 500,
  // upstreams
  ERR_VAULT_UNAVAILABLE: 503,
  ERR_VAULT_SEALED: 503,
  ERR_VAULT_DENIED: 502,
  ERR_VAULT_ERROR: 502,
  ERR_UPSTREAM_UNAVAILABLE: 503,
  // configuration and the rest
  ERR_CONFIG: 500,
  ERR_COLLECTOR: 500,
  ERR_INTERNAL: 500,
} as const

export type ErrorCode = keyof typeof ERROR_STATUS

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

  get status(): number {
    return ERROR_STATUS[this.code]
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
