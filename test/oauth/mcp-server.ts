// A resource server as MCP server authors build one with @modelcontextprotocol/sdk: its
// bearer-auth middleware with an OAuthTokenVerifier, its RFC 9728 protected-resource metadata
// naming keyward as the authorization server, and one tool. keyward's tokens are checked the
// way such a server would without any keyward code: the at+jwt with jose against keyward's JWKS
// (RFC 9068 §4), the DPoP proof with oauth4webapi (RFC 9449 §7), and revocation and attestation
// state through RFC 7662 introspection with a relying-party credential.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type NextFunction, type Request, type Response } from 'express'
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose'
import * as oauth from 'oauth4webapi'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js'
import { getOAuthProtectedResourceMetadataUrl, mcpAuthMetadataRouter } from '@modelcontextprotocol/sdk/server/auth/router.js'
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js'
import type { OAuthTokenVerifier } from '@modelcontextprotocol/sdk/server/auth/provider.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'

export interface McpTestServer {
  /** The MCP endpoint: the RFC 8707 resource an agent asks keyward for. */
  url: string
  close(): Promise<void>
}

const insecure = { [oauth.allowInsecureRequests]: true } as const

/** Starts an MCP server on 127.0.0.1 trusting the authorization server `issuer`; `clock` is the resource server's time. */
export async function startMcpServer(opts: { issuer: string; rpCredential: string; clock: () => Date; requiredScopes: string[] }): Promise<McpTestServer> {
  const issuer = new URL(opts.issuer)
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))
  const jwks = createRemoteJWKSet(new URL(as.jwks_uri!))
  const rs: oauth.Client = { client_id: 'mcp-test-server' }
  const rpAuth: oauth.ClientAuth = (_as, _client, _body, headers) => headers.set('authorization', `Bearer ${opts.rpCredential}`)

  const app = express()
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`

  const verifier: OAuthTokenVerifier = {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      let payload
      try {
        ;({ payload } = await jwtVerify(token, jwks, { typ: 'at+jwt', issuer: as.issuer, audience: url, algorithms: ['ES256'], currentDate: opts.clock(), requiredClaims: ['exp', 'client_id', 'jti'] }))
      } catch (e) {
        throw new InvalidTokenError(e instanceof joseErrors.JWTExpired ? 'Token has expired' : e instanceof joseErrors.JWTClaimValidationFailed ? `Token ${e.claim} invalid` : 'Token invalid')
      }
      const answer = await oauth.introspectionRequest(as, rs, rpAuth, token, insecure)
      const i = await oauth.processIntrospectionResponse(as, rs, answer)
      if (!i.active) throw new InvalidTokenError('Token is not active')
      return {
        token,
        clientId: String(payload.client_id),
        scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
        expiresAt: payload.exp,
        resource: new URL(String(payload.aud)),
        extra: { cnfJkt: (payload.cnf as { jkt?: string } | undefined)?.jkt },
      }
    },
  }

  const dpopScheme = new WeakSet<Request>()
  // The SDK's middleware reads `Bearer`: remember a DPoP scheme and hand it the token.
  const acceptDpopScheme = (req: Request, _res: Response, next: NextFunction): void => {
    const m = /^DPoP (\S+)$/i.exec(req.headers.authorization ?? '')
    if (m) {
      dpopScheme.add(req)
      req.headers['x-dpop-authorization'] = req.headers.authorization
      req.headers.authorization = `Bearer ${m[1]}`
    }
    next()
  }
  // RFC 9449 §7.1: a token bound to a key (cnf.jkt) needs the DPoP scheme and a proof by that key.
  const requireDpopProof = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const refuse = (description: string): void => {
      res.set('WWW-Authenticate', `DPoP error="invalid_token", error_description="${description}"`).status(401).json({ error: 'invalid_token', error_description: description })
    }
    if (!dpopScheme.has(req)) return refuse('this token is DPoP-bound: use the DPoP scheme with a proof')
    const headers = new Headers({ authorization: String(req.headers['x-dpop-authorization']), dpop: String(req.headers.dpop ?? '') })
    try {
      const claims = await oauth.validateJwtAccessToken(as, new globalThis.Request(url, { method: req.method ?? 'POST', headers }), url, {
        requireDPoP: true,
        [oauth.clockSkew]: Math.round((opts.clock().getTime() - Date.now()) / 1000),
        ...insecure,
      })
      if (claims.cnf?.jkt !== req.auth?.extra?.cnfJkt) return refuse('DPoP key mismatch')
    } catch (e) {
      return refuse(`DPoP proof invalid: ${e instanceof Error ? e.message.replace(/["\\]/g, '') : 'unknown'}`)
    }
    next()
  }

  app.use(mcpAuthMetadataRouter({ oauthMetadata: as as never, resourceServerUrl: new URL(url), scopesSupported: opts.requiredScopes, resourceName: 'keyward test tools' }))
  app.post(
    '/mcp',
    express.json(),
    acceptDpopScheme,
    requireBearerAuth({ verifier, requiredScopes: opts.requiredScopes, resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(new URL(url)), expectedResource: new URL(url) }),
    (req: Request, res: Response, next: NextFunction) => void requireDpopProof(req, res, next),
    async (req: Request, res: Response) => {
      const mcp = new McpServer({ name: 'keyward-test-tools', version: '1.0.0' })
      mcp.registerTool('whoami', { description: 'Who the authorization server says the caller is' }, (extra) => ({
        content: [{ type: 'text', text: JSON.stringify({ clientId: extra.authInfo?.clientId, scopes: extra.authInfo?.scopes }) }],
      }))
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
      res.on('close', () => void transport.close().then(() => mcp.close()))
      await mcp.connect(transport)
      await transport.handleRequest(req, res, req.body)
    },
  )
  return {
    url,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
