// Issue 15: keyward as the OAuth 2.0 authorization server of an MCP server, end to end. An agent
// on a software TPM (swtpm, EK certificate from a local CA, enrolled by token) attests, gets its
// Client Attestation from keyward (the Client Attester), obtains an RFC 9068 access token with
// oauth4webapi (Attestation-Based Client Authentication + DPoP, RFC 8707 resource) and calls a
// tool on an MCP server built with @modelcontextprotocol/sdk (bearer-auth middleware, RFC 9728
// metadata) that trusts keyward. Refused: an unattested agent, a token for another resource, a
// token without its DPoP proof, a token after RFC 7009 revocation, after a failed re-attestation,
// and after it expired (both clocks moved); introspection (RFC 7662) answers accordingly.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose'
import * as oauth from 'oauth4webapi'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { startHarness, type Harness } from '../broker/harness.js'
import { startSwtpm, tpmTool, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { createClient, type KeywardClient } from '../../enclave-client/src/index.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import * as A from '../../src/broker/admin-services.js'
import { issueEnrolmentToken } from '../../src/broker/enrolment.js'
import { hashCredential } from '../../src/sealing/credentials.js'
import { parseCertificate } from '../../src/verifiers/common/x509.js'
import { startMcpServer, type McpTestServer } from './mcp-server.js'

const insecure = { [oauth.allowInsecureRequests]: true } as const
const ZERO_PCR = '0'.repeat(64)

const agentPolicy = (tools: string, other: string) => `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: agents
spec:
  tees: [tpm]
  conditions:
    - name: enrolled-agent
      expr: claims.details.akTrust.workload.startsWith("agent-")
    - name: pcr15-clean
      expr: claims.details.pcrs.sha256["15"] == "${ZERO_PCR}"
  grants:
    oauth:
      - { resource: "${tools}", scopes: [tools:call, tools:list], ttl: 5m }
      - { resource: "${other}", scopes: [tools:call] }
`

interface Agent {
  client: KeywardClient
  tpm: Swtpm
}

// One backend: swtpm enrolment is the slow part; the token state's PostgreSQL path is in test/oauth/store.test.ts.
describe.each(['sqlite'] as const)('an attested agent calls an MCP tool with a keyward access token (%s)', (backend) => {
  let h: Harness
  let dir: string
  let tools: McpTestServer
  let other: McpTestServer
  let as: oauth.AuthorizationServer
  let offset = 0
  const agents: Agent[] = []
  let main: Agent
  let second: Agent
  const clock = () => new Date(Date.now() + offset)
  /** Moves the broker's and the resource servers' clocks together. */
  const advance = (ms: number): void => {
    offset += ms
    h.advance(ms)
  }

  async function startAgent(name: string): Promise<Agent> {
    const tpm = await startSwtpm({ ekCert: true })
    h.deps.trust.ekRoots.push(parseCertificate(tpm.caRoot!, 'swtpm root'))
    h.deps.trust.ekIntermediates.push(parseCertificate(tpm.caIntermediate!, 'swtpm intermediate'))
    const client = createClient({ broker: h.url, collector: createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, `${backend}-${name}`) }), retries: 0 })
    const agent = { client, tpm }
    agents.push(agent)
    const { token } = await issueEnrolmentToken(h.deps, name, 600, 'test')
    expect(await client.register(name, { enrolToken: token })).toMatchObject({ status: 'enrolled' })
    return agent
  }

  /** Attestation-based client authentication as an oauth4webapi ClientAuth: the two headers of the draft. */
  const attestAuth = (agent: KeywardClient, clientAttestation: string): oauth.ClientAuth => async (server, _client, _body, headers) => {
    headers.set('OAuth-Client-Attestation', clientAttestation)
    headers.set('OAuth-Client-Attestation-PoP', await agent.clientAttestationPop(server.issuer))
  }

  /** The token request of an agent, with oauth4webapi: client_credentials + resource + scope, DPoP by the session key. */
  async function getToken(agent: KeywardClient, resource: string, scope?: string, given?: { clientAttestation: string; clientId: string }): Promise<oauth.TokenEndpointResponse> {
    const att = given ?? (await agent.clientAttestation())
    const client: oauth.Client = { client_id: att.clientId }
    const DPoP = oauth.DPoP(client, await agent.sessionKeyPair())
    const params = { resource, ...(scope ? { scope } : {}) }
    const res = await oauth.clientCredentialsGrantRequest(as, client, attestAuth(agent, att.clientAttestation), params, { DPoP, ...insecure })
    return oauth.processClientCredentialsResponse(as, client, res)
  }

  /** Calls the whoami tool through the SDK's client; `dpop: false` sends the token as a plain Bearer. */
  async function callTool(agent: KeywardClient, server: McpTestServer, token: string | undefined, dpop = true): Promise<{ ok: true; text: string } | { ok: false; status: number; wwwAuthenticate: string }> {
    let refused: { status: number; wwwAuthenticate: string } | undefined
    const transport = new StreamableHTTPClientTransport(new URL(server.url), {
      fetch: async (url, init) => {
        const headers = new Headers(init?.headers)
        if (token !== undefined) headers.set('authorization', `${dpop ? 'DPoP' : 'Bearer'} ${token}`)
        if (token !== undefined && dpop) headers.set('dpop', await agent.dpopProof(init?.method ?? 'GET', String(url), token))
        const r = await fetch(url, { ...init, headers })
        if (r.status === 401 || r.status === 403) refused = { status: r.status, wwwAuthenticate: r.headers.get('www-authenticate') ?? '' }
        return r
      },
    })
    const mcp = new Client({ name: 'keyward-test-agent', version: '1.0.0' })
    try {
      await mcp.connect(transport)
      const r = await mcp.callTool({ name: 'whoami', arguments: {} })
      const content = r.content as { type: string; text: string }[]
      return { ok: true, text: content[0]!.text }
    } catch (e) {
      if (refused) return { ok: false, ...refused }
      throw e
    } finally {
      await mcp.close().catch(() => undefined)
    }
  }

  async function introspect(token: string): Promise<oauth.IntrospectionResponse> {
    const rp = await A.createCredential(h.deps, 'relying-party', `introspect-${Math.random().toString(36).slice(2, 8)}`, hashCredential)
    const auth: oauth.ClientAuth = (_as, _c, _b, headers) => headers.set('authorization', `Bearer ${rp}`)
    return oauth.processIntrospectionResponse(as, { client_id: 'test' }, await oauth.introspectionRequest(as, { client_id: 'test' }, auth, token, insecure))
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kw-oauth-'))
    h = await startHarness(backend, { limits: { perAddress: { ratePerSecond: 1000, burst: 1000 } } })
    as = await oauth.processDiscoveryResponse(new URL(h.url), await oauth.discoveryRequest(new URL(h.url), { algorithm: 'oauth2', ...insecure }))
    const rp = await A.createCredential(h.deps, 'relying-party', 'mcp-tools', hashCredential)
    ;[tools, other] = await Promise.all([
      startMcpServer({ issuer: h.url, rpCredential: rp, clock, requiredScopes: ['tools:call'] }),
      startMcpServer({ issuer: h.url, rpCredential: rp, clock, requiredScopes: ['tools:call'] }),
    ])
    await A.applyPolicy(h.deps, agentPolicy(tools.url, other.url), 'test')
    ;[main, second] = [await startAgent('agent-main'), await startAgent('agent-second')]
  }, 120_000)

  afterAll(async () => {
    for (const a of agents) {
      await a.client.close()
      await a.tpm.stop()
    }
    await Promise.all([tools?.close(), other?.close()])
    await h?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('an attested agent gets an RFC 9068 token for the MCP server from oauth4webapi and calls a tool; introspection says active', async () => {
    const agent = main.client
    const t = await getToken(agent, tools.url, 'tools:call')
    expect(t.token_type.toLowerCase()).toBe('dpop')
    expect(decodeProtectedHeader(t.access_token).typ).toBe('at+jwt')
    const claims = decodeJwt(t.access_token)
    const key = await agent.sessionKeyPair()
    expect(claims).toMatchObject({ iss: as.issuer, aud: tools.url, sub: `tpm:agent-main`, client_id: `tpm:agent-main`, scope: 'tools:call' })
    expect(claims.cnf).toEqual({ jkt: await calculateJwkThumbprint(await exportJWK(key.publicKey)) })
    // The grant's 5 minutes, capped by the attestation's remaining lifetime.
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(300)
    expect(claims.exp! - claims.iat!).toBeGreaterThan(240)
    expect(typeof claims.jti).toBe('string')
    const call = await callTool(agent, tools, t.access_token)
    expect(call).toMatchObject({ ok: true })
    expect(JSON.parse((call as { text: string }).text)).toEqual({ clientId: `tpm:agent-main`, scopes: ['tools:call'] })
    expect(await introspect(t.access_token)).toMatchObject({ active: true, client_id: `tpm:agent-main`, scope: 'tools:call', aud: tools.url })
    const audit = (await A.allAuditRows(h.deps)).filter((r) => r.type === 'oauth.token' && r.decision === 'allow')
    expect(audit.at(-1)!.detail).toMatchObject({ clientId: `tpm:agent-main`, resource: tools.url, scope: 'tools:call', jti: claims.jti })
  }, 60_000)

  it('refused: no token (401 naming the RFC 9728 metadata), a token for another resource, a token without its DPoP proof, a scope the tool needs but the token lacks', async () => {
    const agent = main.client
    const none = await callTool(agent, tools, undefined)
    expect(none).toMatchObject({ ok: false, status: 401 })
    expect((none as { wwwAuthenticate: string }).wwwAuthenticate).toContain(`resource_metadata="${new URL(tools.url).origin}/.well-known/oauth-protected-resource/mcp"`)
    const prm = (await (await fetch(`${new URL(tools.url).origin}/.well-known/oauth-protected-resource/mcp`)).json()) as { resource: string; authorization_servers: string[] }
    expect(prm).toMatchObject({ resource: tools.url, authorization_servers: [as.issuer] })

    const forOther = await getToken(agent, other.url)
    expect(await callTool(agent, other, forOther.access_token)).toMatchObject({ ok: true })
    expect(await callTool(agent, tools, forOther.access_token)).toMatchObject({ ok: false, status: 401 })

    const t = await getToken(agent, tools.url)
    expect(await callTool(agent, tools, t.access_token, false)).toMatchObject({ ok: false, status: 401 })
    expect(await callTool(agent, tools, t.access_token)).toMatchObject({ ok: true })

    const listOnly = await getToken(agent, tools.url, 'tools:list')
    expect(await callTool(agent, tools, listOnly.access_token)).toMatchObject({ ok: false, status: 403 })

    // Not in the policy's grant: RFC 8707 invalid_target, RFC 6749 invalid_scope; audited with the reason.
    await expect(getToken(agent, 'https://elsewhere.example/mcp')).rejects.toMatchObject({ error: 'invalid_target' })
    await expect(getToken(agent, other.url, 'tools:list')).rejects.toMatchObject({ error: 'invalid_scope' })
    const denied = (await A.allAuditRows(h.deps)).filter((r) => r.type === 'oauth.token' && r.decision === 'deny')
    expect(denied.slice(-2).map((r) => (r.detail as { code: string }).code)).toEqual(['ERR_NOT_GRANTED', 'ERR_SCOPE_INVALID'])
  }, 60_000)

  it('an unattested agent gets no token: a self-made Client Attestation, a PoP by another key, a replayed PoP and a missing DPoP proof are invalid_client / invalid_dpop_proof', async () => {
    const agent = main.client
    const att = await agent.clientAttestation()
    const client: oauth.Client = { client_id: att.clientId }
    const send = async (auth: oauth.ClientAuth, dpop = true) =>
      oauth.processClientCredentialsResponse(
        as,
        client,
        await oauth.clientCredentialsGrantRequest(as, client, auth, { resource: tools.url }, { ...(dpop ? { DPoP: oauth.DPoP(client, await agent.sessionKeyPair()) } : {}), ...insecure }),
      )
    // The agent's own key, its own "attester": the same claims keyward would write, signed by the wrong key.
    const forger = await generateKeyPair('ES256')
    const forged = await new SignJWT({ cnf: { jwk: await exportJWK((await agent.sessionKeyPair()).publicKey) }, keyward_attestation: 'x' })
      .setProtectedHeader({ alg: 'ES256', typ: 'oauth-client-attestation+jwt' })
      .setIssuer(as.issuer).setSubject(att.clientId).setAudience(as.issuer).setIssuedAt().setExpirationTime('5m')
      .sign(forger.privateKey)
    await expect(send(attestAuth(agent, forged))).rejects.toMatchObject({ error: 'invalid_client', status: 401 })
    const otherKey = await generateKeyPair('ES256')
    const popByOther: oauth.ClientAuth = async (server, _c, _b, headers) => {
      headers.set('OAuth-Client-Attestation', att.clientAttestation)
      headers.set('OAuth-Client-Attestation-PoP', await new SignJWT({ jti: crypto.randomUUID() }).setProtectedHeader({ alg: 'ES256', typ: 'oauth-client-attestation-pop+jwt' }).setAudience(server.issuer).setIssuedAt().sign(otherKey.privateKey))
    }
    await expect(send(popByOther)).rejects.toMatchObject({ error: 'invalid_client' })
    const pop = await agent.clientAttestationPop(as.issuer)
    const fixedPop: oauth.ClientAuth = (_s, _c, _b, headers) => {
      headers.set('OAuth-Client-Attestation', att.clientAttestation)
      headers.set('OAuth-Client-Attestation-PoP', pop)
    }
    await expect(send(fixedPop)).resolves.toMatchObject({ token_type: expect.stringMatching(/dpop/i) })
    await expect(send(fixedPop)).rejects.toMatchObject({ error: 'invalid_client', error_description: 'client attestation PoP replayed' })
    await expect(send(attestAuth(agent, att.clientAttestation), false)).rejects.toMatchObject({ error: 'invalid_dpop_proof' })
  }, 60_000)

  it('a token revoked by its client (RFC 7009) is refused by the MCP server and inactive on introspection; another client cannot revoke it', async () => {
    const agent = main.client
    const stranger = second.client
    const t = await getToken(agent, tools.url)
    expect(await callTool(agent, tools, t.access_token)).toMatchObject({ ok: true })
    const revoke = async (who: KeywardClient) => {
      const att = await who.clientAttestation()
      const c: oauth.Client = { client_id: att.clientId }
      return oauth.processRevocationResponse(await oauth.revocationRequest(as, c, attestAuth(who, att.clientAttestation), t.access_token, insecure))
    }
    await expect(revoke(stranger)).rejects.toMatchObject({ status: 403 })
    expect(await introspect(t.access_token)).toMatchObject({ active: true })
    await revoke(agent)
    expect(await introspect(t.access_token)).toEqual({ active: false })
    expect(await callTool(agent, tools, t.access_token)).toMatchObject({ ok: false, status: 401 })
    expect(await callTool(agent, tools, (await getToken(agent, tools.url)).access_token)).toMatchObject({ ok: true })
  }, 60_000)

  it('after a failed re-attestation (PCR 15 extended) the agent gets no further token and its live token turns inactive', async () => {
    const { client: agent, tpm } = second
    const att = await agent.clientAttestation()
    const t = await getToken(agent, tools.url, undefined, att)
    expect(await callTool(agent, tools, t.access_token)).toMatchObject({ ok: true })
    await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`15:sha256=${'ab'.repeat(32)}`])
    await expect(agent.attest()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
    // The Client Attestation it holds no longer authenticates it, and it gets no new one.
    await expect(getToken(agent, tools.url, undefined, att)).rejects.toMatchObject({ error: 'invalid_client', error_description: 'attestation revoked' })
    await expect(agent.clientAttestation()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
    expect(await introspect(t.access_token)).toEqual({ active: false })
    expect(await callTool(agent, tools, t.access_token)).toMatchObject({ ok: false, status: 401 })
    const rows = await A.allAuditRows(h.deps)
    expect(rows.filter((r) => r.type === 'attestation.revoke').at(-1)).toMatchObject({ decision: 'allow', detail: { reason: 'failed re-attestation', workload: `tpm:agent-second` } })
    expect(rows.filter((r) => r.type === 'oauth.token').at(-1)).toMatchObject({ decision: 'deny', detail: { code: 'ERR_CLIENT_INVALID', message: 'attestation revoked' } })
  }, 60_000)

  it('an expired token is refused by the MCP server and inactive on introspection (both clocks moved past exp)', async () => {
    const agent = main.client
    const t = await getToken(agent, tools.url)
    expect(await callTool(agent, tools, t.access_token)).toMatchObject({ ok: true })
    advance(301_000)
    expect(await introspect(t.access_token)).toEqual({ active: false })
    const r = await callTool(agent, tools, t.access_token)
    expect(r).toMatchObject({ ok: false, status: 401 })
    expect((r as { wwwAuthenticate: string }).wwwAuthenticate).toContain('Token has expired')
  }, 60_000)
})
