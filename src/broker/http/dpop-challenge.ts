// RFC 9449 §7.1 / RFC 6750 §3 for DPoP-protected routes (mounted by the release route modules).
import type { MiddlewareHandler } from 'hono'
import { isKeywardError } from '../../errors.js'
import { DPOP_ALGS } from '../dpop.js'

/**
 * RFC 9449 §7.1 / RFC 6750 §3: a 401 from a DPoP-protected route says which scheme and algs it
 * takes, and why the request failed (no error code when no credentials were sent).
 */
export function dpopChallenge(issueNonce: () => Promise<string>): MiddlewareHandler {
  const errors: Record<string, string> = { ERR_DPOP_INVALID: 'invalid_dpop_proof', ERR_TOKEN_INVALID: 'invalid_token', ERR_DPOP_NONCE: 'use_dpop_nonce' }
  return async (c, next) => {
    await next()
    if (c.res.status !== 401 || !isKeywardError(c.error)) return
    const error = errors[c.error.code]
    if (c.error.code === 'ERR_DPOP_NONCE') c.res.headers.set('DPoP-Nonce', await issueNonce())
    const parts = [...(error ? [`error="${error}"`, `error_description="${c.error.message.replace(/["\\]/g, '')}"`] : []), `algs="${DPOP_ALGS.join(' ')}"`]
    c.res.headers.set('WWW-Authenticate', `DPoP ${parts.join(', ')}`)
  }
}
