// Typed errors of the enclave client. Every failure path has its own class, all extending
// keyward's KeywardError, so callers branch on `code` (stable, from src/protocol/errors.ts) or on the class.
import { KeywardError, isErrorCode, type ErrorCode, type KeywardErrorOptions } from '../../src/protocol/errors.js'

export { KeywardError, isKeywardError, type ErrorCode } from '../../src/protocol/errors.js'

/** One failing condition of a denial, as the broker lists it (policy rule, verifier check). */
export interface DenialFailure {
  [k: string]: unknown
}

function asCode(code: unknown, fallback: ErrorCode): ErrorCode {
  return isErrorCode(code) ? code : fallback
}

/** The broker answered with an error body (any 4xx, or a 5xx after the retries ran out). */
export class BrokerError extends KeywardError {
  /** HTTP status of the broker's answer. */
  readonly httpStatus: number
  /** The code exactly as the broker sent it (may be newer than this client's code list). */
  readonly brokerCode: string
  readonly failures: DenialFailure[]

  constructor(
    status: number,
    brokerCode: string,
    message: string,
    failures: DenialFailure[] = [],
    options?: KeywardErrorOptions,
    fallback: ErrorCode = status >= 500 ? 'ERR_UPSTREAM_UNAVAILABLE' : 'ERR_BAD_REQUEST',
  ) {
    super(asCode(brokerCode, fallback), message, options)
    this.name = 'BrokerError'
    this.httpStatus = status
    this.brokerCode = brokerCode
    this.failures = failures
  }

  override toJSON(): { code: ErrorCode; message: string; status?: number; failures?: DenialFailure[] } {
    return { code: this.code, message: this.message, status: this.httpStatus, failures: this.failures }
  }
}

/** A 401/403 from the broker: attestation, policy or release denied. Never retried. */
export class DeniedError extends BrokerError {
  constructor(status: number, brokerCode: string, message: string, failures: DenialFailure[] = [], options?: KeywardErrorOptions) {
    // An unknown broker code on a denial still reads as a denial.
    super(status, brokerCode, message, failures, options, status === 401 ? 'ERR_UNAUTHORIZED' : 'ERR_FORBIDDEN')
    this.name = 'DeniedError'
  }
}

/** The broker could not be reached (DNS, refused, reset, TLS) after all retries. */
export class NetworkError extends KeywardError {
  /** false only when the connection failed before anything was sent (refused, no route, DNS). */
  readonly requestMayBeSent: boolean
  constructor(message: string, options?: KeywardErrorOptions, requestMayBeSent = true) {
    super('ERR_UPSTREAM_UNAVAILABLE', message, options)
    this.name = 'NetworkError'
    this.requestMayBeSent = requestMayBeSent
  }
}

/** A request did not complete within the per-request timeout (after all retries). */
export class TimeoutError extends KeywardError {
  readonly timeoutMs: number
  constructor(timeoutMs: number, options?: KeywardErrorOptions) {
    super('ERR_UPSTREAM_UNAVAILABLE', `broker did not answer within ${timeoutMs} ms`, options)
    this.name = 'TimeoutError'
    this.timeoutMs = timeoutMs
  }
}

/** The broker's answer did not have the shape docs/protocol.md promises. */
export class ProtocolError extends KeywardError {
  constructor(message: string, options?: KeywardErrorOptions) {
    super('ERR_INTERNAL', message, options)
    this.name = 'ProtocolError'
  }
}

/** A released JWE could not be decrypted with the session key. Fixed message; reveals nothing. */
export class DecryptError extends KeywardError {
  constructor(options?: KeywardErrorOptions) {
    super('ERR_UNSEAL', 'released secret could not be decrypted with the session key', options)
    this.name = 'DecryptError'
  }
}

/** Evidence collection failed (TPM tools, device, driver). `detail` names the tool and its stderr tail. */
export class CollectorError extends KeywardError {
  constructor(message: string, options?: KeywardErrorOptions) {
    super('ERR_COLLECTOR', message, options)
    this.name = 'CollectorError'
  }
}

/** No usable platform, bad options, unreadable files: problems on the client's side before any request. */
export class ClientConfigError extends KeywardError {
  constructor(message: string, options?: KeywardErrorOptions) {
    super('ERR_CONFIG', message, options)
    this.name = 'ClientConfigError'
  }
}

/** The client was closed; no further requests are made. */
export class ClientClosedError extends KeywardError {
  constructor() {
    super('ERR_CONFIG', 'client is closed')
    this.name = 'ClientClosedError'
  }
}

/** A secret-file path another user could redirect or swap: a symlink, a foreign or writable directory, an existing file. */
export class UnsafePathError extends KeywardError {
  constructor(message: string, options?: KeywardErrorOptions) {
    super('ERR_UNSAFE_PATH', message, options)
    this.name = 'UnsafePathError'
  }
}

/** A released value without a valid broker signature bound to this request. Fixed message; reveals nothing. */
export class ReleaseUnverifiedError extends KeywardError {
  constructor(reason: string, options?: KeywardErrorOptions) {
    super('ERR_RELEASE_UNVERIFIED', `the release is not signed by the trusted broker for this request (${reason})`, options)
    this.name = 'ReleaseUnverifiedError'
  }
}
