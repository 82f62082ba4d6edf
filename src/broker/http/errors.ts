// The HTTP layer's error handling: the status of each stable error code (the only place that maps
// codes to transport), the one onError that turns any failure into `{ error: { code, message } }`,
// and the 404 for unknown routes. Nothing else ever reaches the client (no stack traces, no
// internal messages); what a code means is src/protocol/errors.ts's business, not this table's.
import type { Context, ErrorHandler, NotFoundHandler } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { KeywardError, isKeywardError, type ErrorCode } from '../../errors.js'
import type { Env } from './context.js'
import type { Logger } from 'pino'

/** The HTTP status each code maps to; the type makes it list every code, and only codes. */
export const ERROR_STATUS: { readonly [C in ErrorCode]: number } = {
  // request shape
  ERR_BAD_REQUEST: 400,
  ERR_USAGE: 400, // a command line the CLI does not accept (exit 2)
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_UNKNOWN_TEE: 400,
  ERR_NOT_FOUND: 404,
  ERR_CONFLICT: 409,
  ERR_METHOD_NOT_ALLOWED: 405,
  // abuse controls: a client over its rate, or the broker at its cap of outstanding challenges/activations
  ERR_RATE_LIMITED: 429,
  ERR_TOO_MANY_PENDING: 429,
  ERR_OVERLOADED: 503,
  // authentication of callers
  ERR_UNAUTHORIZED: 401,
  ERR_FORBIDDEN: 403,
  ERR_TOKEN_INVALID: 401,
  ERR_CLIENT_INVALID: 401,
  ERR_GRANT_TYPE_UNSUPPORTED: 400,
  ERR_SCOPE_INVALID: 400,
  ERR_DPOP_INVALID: 401,
  /** The broker requires a server-provided DPoP nonce (RFC 9449 §8): retry with the DPoP-Nonce it sent. */
  ERR_DPOP_NONCE: 401,
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
  ERR_EVENTLOG_UNTRUSTED: 403,
  ERR_AK_ATTRIBUTES: 403,
  ERR_AK_UNTRUSTED: 403,
  ERR_EK_UNTRUSTED: 403,
  ERR_EK_PROFILE: 403,
  ERR_CREDENTIAL_ACTIVATION: 403,
  // TPM enrolment (docs/tpm-enrolment.md)
  ERR_ENROLMENT_PENDING: 403,
  ERR_EK_DENIED: 403,
  ERR_TCB_MISMATCH: 403,
  ERR_CHIP_ID_MISMATCH: 403,
  ERR_DEBUG_ENCLAVE: 403,
  ERR_ALLOWLIST_REPLAY: 403,
  ERR_ALLOWLIST_UNTRUSTED: 403,
  ERR_ALLOWLIST_UNATTESTED: 403,
  // appraisal and release
  ERR_POLICY_DENIED: 403,
  ERR_POLICY_INVALID: 400,
  ERR_NOT_GRANTED: 403,
  ERR_QUARANTINED: 403,
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
  // enclave client only: a secret-file path another user could control; a release the broker did not sign
  ERR_UNSAFE_PATH: 500,
  ERR_RELEASE_UNVERIFIED: 502,
  ERR_INTERNAL: 500,
}

/** The HTTP status of an error's code. */
export const httpStatus = (e: KeywardError): ContentfulStatusCode => ERROR_STATUS[e.code] as ContentfulStatusCode

/**
 * Maps any thrown value to the error body and status. KeywardErrors keep their code and message
 * (and a denial's `failures` when the flow put them in); anything else is ERR_INTERNAL, logged
 * with the request id. `detail.retryAfterSeconds` becomes Retry-After.
 */
export function errorHandler(log: Logger): ErrorHandler<Env> {
  return (err, c) => {
    const e = isKeywardError(err) ? err : new KeywardError('ERR_INTERNAL', 'internal error')
    const retryAfter = e.detail?.retryAfterSeconds
    if (typeof retryAfter === 'number') c.header('Retry-After', String(retryAfter))
    // ERR_OVERLOADED is noise (counted, and sampled in the log, by app.ts): a line per refusal would
    // turn a flood into a log flood.
    if (!isKeywardError(err) || (httpStatus(e) >= 500 && e.code !== 'ERR_OVERLOADED')) {
      log.error({ reqId: c.get('requestId'), code: e.code, err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'request failed')
    }
    const failures = e.detail?.failures
    return c.json({ error: { code: e.code, message: e.message, ...(Array.isArray(failures) ? { failures } : {}) } }, httpStatus(e))
  }
}

/** Unknown routes: ERR_NOT_FOUND through the same error handler. */
export const notFound: NotFoundHandler<Env> = (_c: Context<Env>) => {
  throw new KeywardError('ERR_NOT_FOUND', 'no such endpoint')
}
