// What the HTTP layer reads off a request for the flows below it, which never see a hono Context:
// the peer address, the URL the client addressed (for DPoP `htu`), a release's credentials, and
// whether the TLS client presented a certificate from tls.clientCa (admin API and dashboard).
import type { Context } from 'hono'
import { KeywardError } from '../../errors.js'
import type { BrokerConfig } from '../config.js'
import type { AuthInput, ReleaseCaller } from '../release.js'
import type { Env } from './context.js'

/** The peer address of the connection (@hono/node-server). Forwarded headers are not trusted here. */
export function clientAddress(c: Context): string {
  return (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress ?? 'unknown'
}

/**
 * The URL a client addressed, for the DPoP htu check. The configured publicUrl decides; without
 * one (loopback only, see checkPublicOrigin) the Host header does, since whoever reaches a
 * loopback socket is on this machine. X-Forwarded-Proto/-Host count only from trustedProxies.
 */
export function publicRequestUrl(c: Context, config: Pick<BrokerConfig, 'publicUrl' | 'trustedProxies'>): string {
  const url = new URL(c.req.url)
  if (config.publicUrl !== undefined) {
    const pub = new URL(config.publicUrl)
    return `${pub.protocol}//${pub.host}${pub.pathname.replace(/\/$/, '')}${url.pathname}`
  }
  const peer = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress
  if (peer === undefined || !config.trustedProxies.includes(peer.replace(/^::ffff:/, ''))) return url.toString()
  const proto = c.req.header('x-forwarded-proto')
  const host = c.req.header('x-forwarded-host')
  const scheme = proto === 'https' || proto === 'http' ? `${proto}:` : url.protocol
  const authority = host !== undefined && /^[A-Za-z0-9.:[\]-]{1,255}$/.test(host) ? host : url.host
  return `${scheme}//${authority}${url.pathname}`
}

/** The credentials of a DPoP-bound release request, as plain values for the release flow. */
function authInput(c: Context, config: Pick<BrokerConfig, 'publicUrl' | 'trustedProxies'>): AuthInput {
  return { authorization: c.req.header('authorization'), dpop: c.req.header('dpop'), method: c.req.method, url: publicRequestUrl(c, config) }
}

/** A release request as the release flows take it: request id, route label and credentials. */
export function releaseCaller(c: Context<Env>, config: Pick<BrokerConfig, 'publicUrl' | 'trustedProxies'>): ReleaseCaller {
  return { reqId: c.get('requestId'), route: c.req.routePath, auth: authInput(c, config) }
}

/** With tls.clientCa, the admin API (and the dashboard) also require a client certificate from that CA (mTLS). */
export function assertAdminClientCertificate(c: Context, config: Pick<BrokerConfig, 'tls'>): void {
  if (!config.tls?.clientCa) return
  const socket = (c.env as { incoming?: { socket?: { authorized?: boolean } } } | undefined)?.incoming?.socket
  if (socket?.authorized !== true) throw new KeywardError('ERR_UNAUTHORIZED', 'admin API requires a client certificate')
}
