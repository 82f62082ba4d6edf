// Maps anything node-vault (axios underneath) throws onto keyward's stable codes.
// The axios error carries the request config, whose headers hold X-Vault-Token: it is
// never kept as `cause`, only the status, Vault's `errors` list and the socket error code.
import { KeywardError } from '../errors.js'

export type VaultOperationKind = 'read' | 'write'

interface ApiResponseErrorLike {
  response: { statusCode: number; body: unknown }
}
interface SocketErrorLike {
  code: string
}

function isApiResponseError(e: unknown): e is ApiResponseErrorLike {
  if (typeof e !== 'object' || e === null || !('response' in e)) return false
  const r = (e as { response: unknown }).response
  return typeof r === 'object' && r !== null && typeof (r as { statusCode?: unknown }).statusCode === 'number'
}

function socketCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined
  const c = (e as Partial<SocketErrorLike>).code
  return typeof c === 'string' ? c : undefined
}

/** Vault's error body is {"errors": [string, ...]} (Vault API docs, "HTTP Status Codes"). */
function vaultErrors(body: unknown): string[] {
  if (typeof body !== 'object' || body === null) return []
  const errs = (body as { errors?: unknown }).errors
  return Array.isArray(errs) ? errs.filter((x): x is string => typeof x === 'string').map((s) => s.slice(0, 300)) : []
}

// Socket-level failures: nothing (refused) or no answer (timeout) came back.
const REFUSED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
const NO_ANSWER = new Set(['ECONNABORTED', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE', 'ERR_CANCELED'])

/**
 * Translates a failed Vault call into a KeywardError:
 * connection refused / timeout → ERR_VAULT_UNAVAILABLE, 503 "Vault is sealed" → ERR_VAULT_SEALED,
 * 403 → ERR_VAULT_DENIED, 404 → ERR_NOT_FOUND, everything else → ERR_VAULT_ERROR.
 * `detail.retryable` says whether a retry can help; `detail.delivered` whether the request may have
 * reached Vault (false only when the connection was refused, so even writes are safe to retry).
 */
export function mapVaultError(e: unknown, op: string): KeywardError {
  if (e instanceof KeywardError) return e
  if (isApiResponseError(e)) {
    const status = e.response.statusCode
    const errors = vaultErrors(e.response.body)
    const detail = { op, status, errors, retryable: false, delivered: true }
    if (status === 503 && errors.some((m) => /vault is sealed/i.test(m))) {
      return new KeywardError('ERR_VAULT_SEALED', 'Vault is sealed', { detail })
    }
    if (status === 403) return new KeywardError('ERR_VAULT_DENIED', 'Vault denied the request', { detail })
    if (status === 404) return new KeywardError('ERR_NOT_FOUND', 'not found in Vault', { detail })
    // 429: standby/rate limited; 500/502/503/504: transient server side (Vault API docs, sys/health codes).
    if (status === 429 || status === 502 || status === 503 || status === 504) {
      return new KeywardError('ERR_VAULT_UNAVAILABLE', 'Vault is unavailable', { detail: { ...detail, retryable: true } })
    }
    if (status === 500) return new KeywardError('ERR_VAULT_ERROR', 'Vault request failed', { detail: { ...detail, retryable: true } })
    return new KeywardError('ERR_VAULT_ERROR', 'Vault request failed', { detail })
  }
  const code = socketCode(e)
  if (code !== undefined && REFUSED.has(code)) {
    return new KeywardError('ERR_VAULT_UNAVAILABLE', 'Vault is unreachable', {
      detail: { op, socket: code, retryable: true, delivered: false },
    })
  }
  if (code !== undefined && NO_ANSWER.has(code)) {
    return new KeywardError('ERR_VAULT_UNAVAILABLE', 'Vault did not answer in time', {
      detail: { op, socket: code, retryable: true, delivered: true },
    })
  }
  // Unknown shape (schema validation in node-vault, programming error): report the type only.
  return new KeywardError('ERR_VAULT_ERROR', 'Vault request failed', {
    detail: { op, kind: e instanceof Error ? e.name : typeof e, retryable: false, delivered: true },
  })
}
