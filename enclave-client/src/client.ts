// The workload's client: challenge → evidence committing to the binding digest → attest →
// DPoP-authenticated release of secrets, Vault tokens and tool credentials, each a JWE to the
// session key (docs/protocol.md). Renewal re-attests before the token expires.
import type { webcrypto } from 'node:crypto'
import { z } from 'zod'
import { bindingDigest, ZERO_STATE } from '../../src/protocol/binding.js'
import { fromB64url } from '../../src/util/bytes.js'
import type { Tee } from '../../src/protocol/tee.js'
import * as W from '../../src/protocol/wire.js'
import type { Collector } from './collectors/types.js'
import type { TpmCollector } from './collectors/tpm.js'
import { ClientClosedError, ClientConfigError, DeniedError, ProtocolError, isKeywardError } from './errors.js'
import { decodeJwt, type JSONWebKeySet } from 'jose'
import { createHttpClient, isLoopback, type HttpClient, type TlsOptions } from './http.js'
import { createReleaseVerifier, readJwksFile, type ReleaseExpectation } from './release.js'
import { createCollector, detectPlatform, type CollectorOptions } from './platform.js'
import { requestAgentStatement, runtimeStateDigest, type RuntimeState, type RuntimeStateSource } from './runtime-state.js'
import { createSessionKey, type KeyAlg, type SessionKey } from './session-key.js'
import { CLIENT_ATTESTATION_HEADER, CLIENT_ATTESTATION_POP_HEADER, ClientAttestationAnswer, OAUTH_PATHS, TokenAnswer } from '../../src/protocol/oauth.js'

export interface ClientOptions {
  /** Broker base URL, e.g. https://keyward.internal:8443 */
  broker: string
  /** PEM text or a file path: CA bundle for the broker's certificate. */
  ca?: string | Uint8Array
  /** PEM text or file paths: client certificate and key for mutual TLS. */
  cert?: string | Uint8Array
  key?: string | Uint8Array
  /** A ready collector; otherwise one is built for `platform` (or the detected one). */
  collector?: Collector
  platform?: Tee
  collectorOptions?: CollectorOptions
  keyAlg?: KeyAlg
  /** Per-request timeout in ms (default 10 000). */
  timeoutMs?: number
  /** Retries on network errors, timeouts and 5xx (default 3). Never on a 4xx. */
  retries?: number
  /** Runtime state: the allowlist agent's socket path, or a provider; asked before each attestation. */
  runtimeState?: RuntimeStateSource
  /** The broker's signing keys (a JWKS, or a file path): the trust anchor for released values. Without it they are fetched from the broker over https or loopback. */
  brokerJwks?: string | JSONWebKeySet
  /** Allow http:// to a broker that is not on loopback; needs brokerJwks. */
  insecureHttp?: boolean
  /** Progress lines (never secrets). */
  onProgress?: (line: string) => void
  /** Backoff tuning, mostly for tests. */
  baseDelayMs?: number
  maxDelayMs?: number
  /** Keep the session key's private half exportable, for a child that presents its X509-SVID (run --svid). */
  exportableKey?: boolean
}

export interface X509Svid {
  spiffeId: string
  /** The SVID, then its intermediate (PEM). */
  certificates: string
  /** The trust domain's X.509 authorities (PEM). */
  bundle: string
  /** The attested session key the SVID certifies, PKCS#8 PEM (only with exportableKey). */
  privateKeyPem: string
  expiresAt: Date
}

export interface JwtSvid {
  spiffeId: string
  token: string
  expiresAt: Date
}

export interface Attestation {
  token: string
  /** The EAR claims the broker returned (appraisal per submodule, cnf.jkt, policy). */
  claims: Record<string, unknown>
  expiresAt: Date
  policy: string
}

export interface VaultToken {
  token?: string
  wrapToken?: string
  accessor?: string
  leaseDuration?: number
}

export interface ToolCredential {
  tool: string
  /** 'jwt': a short-lived token keyward minted; 'api-key': a stored API key for the tool. */
  kind: 'jwt' | 'api-key'
  token: string
  /** When a minted token expires; null for stored API keys. */
  expiresAt: Date | null
}

export interface ClientAttestation {
  /** The Client Attestation JWT keyward issued (cnf.jwk = the session key), for the OAuth-Client-Attestation header. */
  clientAttestation: string
  /** The OAuth client_id: the attested workload. */
  clientId: string
  expiresAt: Date
}

export interface AccessToken {
  /** An RFC 9068 access token bound to the session key: use it with DPoP proofs (`dpopProof`). */
  accessToken: string
  tokenType: string
  scope: string
  resource: string
  expiresAt: Date
}

export interface EvidenceRequest {
  tee: Tee
  nonce: string
  key: Record<string, unknown>
  evidence: Record<string, unknown>
  runtimeState?: RuntimeState
}

export interface Renewal {
  stop(): void
}

export interface KeywardClient {
  readonly broker: string
  /** The platform in use (after the first attestation or evidence call). */
  platform(): Promise<Tee>
  attest(): Promise<Attestation>
  /** The /v1/attest body for a nonce (or a fresh challenge): what `attest()` would send. */
  evidence(nonce?: Uint8Array): Promise<EvidenceRequest>
  getSecret(name: string): Promise<Uint8Array>
  /** A Vault token for the policy's Vault grant (`role` picks one when the policy grants several). */
  vaultToken(opts?: { wrap?: boolean; role?: string }): Promise<VaultToken>
  credential(tool: string): Promise<ToolCredential>
  /** The Client Attestation for OAuth Attestation-Based Client Authentication (docs/agents.md). */
  clientAttestation(): Promise<ClientAttestation>
  /** A Client Attestation PoP JWT for an authorization server (its issuer identifier). */
  clientAttestationPop(issuer: string, challenge?: string): Promise<string>
  /** An OAuth access token for `resource` (an MCP server URL) from keyward's token endpoint, DPoP-bound to the session key. */
  accessToken(resource: string, opts?: { scope?: string }): Promise<AccessToken>
  /** A DPoP proof by the session key (RFC 9449), e.g. for a call to an MCP server with an access token. */
  dpopProof(method: string, url: string, accessToken?: string, nonce?: string): Promise<string>
  /** The session key pair as WebCrypto keys (private one non-extractable), for OAuth client libraries. */
  sessionKeyPair(): Promise<{ privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey }>
  /** An X509-SVID for the attested session key (the policy's SPIFFE grant; needs exportableKey). */
  x509Svid(): Promise<X509Svid>
  /** A JWT-SVID for audiences the policy's SPIFFE grant lists. */
  jwtSvid(audience: string[]): Promise<JwtSvid>
  /** TPM only: registers the AK for `workload` by credential activation. */
  register(workload: string, opts?: { enrolToken?: string }): Promise<{ akName: string; workload: string; status: 'enrolled' | 'pending' | 'rejected'; reason?: string }>
  /** Re-attests every intervalMs, and always before the token expires. Errors go to onError; renewal continues. */
  startRenewal(intervalMs: number, onError: (e: Error) => void, onRenew?: (a: Attestation) => void): Renewal
  close(): Promise<void>
}

const AsMetadata = z.object({ issuer: z.string().url(), token_endpoint: z.string().url() })
const X509SvidAnswer = z.object({ spiffeId: z.string().startsWith('spiffe://'), certificates: z.string().includes('BEGIN CERTIFICATE'), bundle: z.string().includes('BEGIN CERTIFICATE'), expiresAt: z.string() })
const JwtSvidAnswer = z.object({ spiffeId: z.string().startsWith('spiffe://'), expiresAt: z.string(), jwe: z.string() })

/** Refresh this long before expiry: a fifth of the lifetime, between 1 s and 60 s. */
function renewMargin(lifetimeMs: number): number {
  return Math.min(60_000, Math.max(1000, lifetimeMs / 5))
}

export function createClient(o: ClientOptions): KeywardClient {
  const progress = o.onProgress ?? (() => undefined)
  const http: HttpClient = createHttpClient({
    broker: o.broker,
    insecureHttp: o.insecureHttp,
    timeoutMs: o.timeoutMs,
    retries: o.retries,
    baseDelayMs: o.baseDelayMs,
    maxDelayMs: o.maxDelayMs,
    tls: { ca: o.ca, cert: o.cert, key: o.key } satisfies TlsOptions,
    onRetry: ({ attempt, delayMs, error, path }) => progress(`retry ${attempt} of ${path} in ${delayMs} ms: ${error.message}`),
  })
  const pinned = typeof o.brokerJwks === 'string' ? readJwksFile(o.brokerJwks) : o.brokerJwks
  if (!pinned && new URL(http.broker).protocol === 'http:' && !isLoopback(new URL(http.broker))) {
    throw new ClientConfigError('--insecure-http needs --broker-jwks: signing keys fetched over plain HTTP could be anyone’s')
  }
  const releases = createReleaseVerifier({
    pinned,
    fetchJwks: () => http.request({ method: 'GET', path: '/.well-known/jwks.json' }, z.unknown()),
  })
  let closed = false
  let keyP: Promise<SessionKey> | undefined
  let collectorP: Promise<Collector> | undefined
  let current: Attestation | undefined
  let attestedAt = 0
  let inflight: Promise<Attestation> | undefined
  const timers = new Set<Renewal>()

  const sessionKey = (): Promise<SessionKey> => (keyP ??= createSessionKey(o.keyAlg ?? 'ES256', { exportable: o.exportableKey === true }))

  function collector(): Promise<Collector> {
    collectorP ??= (async () => {
      if (o.collector) return o.collector
      const tee = o.platform ?? (await detectPlatform())
      if (!tee) throw new ClientConfigError('no TEE platform found (no /dev/nsm, configfs-tsm or /dev/tpmrm0); pass one explicitly')
      return createCollector(tee, o.collectorOptions)
    })().catch((e: unknown) => {
      collectorP = undefined
      throw e
    })
    return collectorP
  }

  /** Asked afresh for every attestation: the agent signs its current state for this nonce and key. */
  async function runtimeState(nonce: Uint8Array, jkt: Uint8Array): Promise<RuntimeState | undefined> {
    const s = o.runtimeState
    if (s === undefined) return undefined
    return typeof s === 'string' ? requestAgentStatement(s, { nonce, jkt }) : s({ nonce, jkt })
  }

  function live(): void {
    if (closed) throw new ClientClosedError()
  }

  async function buildRequest(nonce: Uint8Array): Promise<EvidenceRequest> {
    const [key, col] = await Promise.all([sessionKey(), collector()])
    const state = await runtimeState(nonce, key.jktBytes)
    const binding = bindingDigest(nonce, key.jktBytes, runtimeStateDigest(state) ?? ZERO_STATE)
    const evidence = await col.collect({ binding, nonce, publicKeyDer: key.spki })
    return {
      tee: col.tee,
      nonce: Buffer.from(nonce).toString('base64url'),
      key: { ...key.publicJwk },
      evidence,
      ...(state && { runtimeState: state }),
    }
  }

  async function challenge(retries?: number): Promise<Uint8Array> {
    const c = await http.request({ method: 'POST', path: '/v1/challenge', body: {}, retries }, W.ChallengeResponse)
    const nonce = fromB64url(c.nonce)
    if (!nonce || nonce.length !== 32) throw new ProtocolError('challenge nonce is not 32 bytes of base64url')
    return nonce
  }

  async function attestOnce(): Promise<Attestation> {
    live()
    // The nonce is single use: a retry restarts from a fresh challenge, so the whole flow retries.
    const a = await http.withRetries('/v1/attest', async () => {
      const nonce = await challenge(0) // the enclosing loop retries
      const body = await buildRequest(nonce)
      progress(`attesting with ${body.tee} evidence`)
      // The DPoP proof over the attest request (nonce = the challenge) shows the broker we hold the
      // key, so a denial of our own evidence may revoke our Vault tokens and nobody else's can.
      const key = await sessionKey()
      const headers = async (url: string) => ({ dpop: await key.dpopProof('POST', url, undefined, body.nonce) })
      const r = await http.request({ method: 'POST', path: '/v1/attest', body, retries: 0, headers }, W.AttestResponse)
      const expiresAt = new Date(r.expiresAt)
      if (Number.isNaN(expiresAt.getTime())) throw new ProtocolError('attest answer has no valid expiresAt')
      return { token: r.token, claims: r.claims, expiresAt, policy: r.policy }
    })
    current = a
    attestedAt = Date.now()
    progress(`attested: policy ${a.policy || '(unnamed)'}, token expires ${a.expiresAt.toISOString()}`)
    return a
  }

  function attest(): Promise<Attestation> {
    inflight ??= attestOnce().finally(() => (inflight = undefined))
    return inflight
  }

  /** A token valid for at least a few more seconds, attesting when needed. */
  async function token(): Promise<string> {
    if (!current || current.expiresAt.getTime() - Date.now() < 5000) await attest()
    return current!.token
  }

  /** A DPoP-authenticated request with the attestation token (re-attesting once when the broker refuses the token). */
  async function authorized<T>(method: 'GET' | 'POST', path: string, body: unknown, schema: z.ZodType<T>): Promise<{ answer: T; dpopJti: string }> {
    live()
    const key = await sessionKey()
    let dpopJti = ''
    // POSTs mint something (a Vault token, a credential): never sent twice once they may have arrived.
    const send = (tok: string): Promise<T> =>
      http.request(
        {
          method,
          path,
          body,
          idempotent: method === 'GET',
          headers: async (url) => {
            const proof = await key.dpopProof(method, url, tok, http.dpopNonce())
            dpopJti = String(decodeJwt(proof).jti)
            return { authorization: `DPoP ${tok}`, dpop: proof }
          },
        },
        schema,
      )
    const tok = await token()
    let answer: T
    try {
      answer = await send(tok)
    } catch (e) {
      // The broker wants a server nonce (RFC 9449 §8): it sent one with the refusal; retry once.
      if (e instanceof DeniedError && e.code === 'ERR_DPOP_NONCE') {
        answer = await send(tok)
      } else {
        // The broker no longer accepts this token (expired by its clock, or its attestation was
        // revoked): attest afresh once, so the current policy decides, then try again.
        if (!(e instanceof DeniedError) || e.code !== 'ERR_TOKEN_INVALID' || current?.token !== tok) throw e
        progress('token refused by the broker, re-attesting')
        current = undefined
        answer = await send(await token())
      }
    }
    return { answer, dpopJti }
  }

  /** A DPoP-authenticated request for a release; its answer's JWE is opened and verified as `kind`/`name`. */
  async function release<T extends { jwe: string }>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
    what: Pick<ReleaseExpectation, 'kind' | 'name'> | ((answer: T) => Pick<ReleaseExpectation, 'kind' | 'name'>),
  ): Promise<{ answer: T; value: Uint8Array; version?: number }> {
    const key = await sessionKey()
    const { answer, dpopJti } = await authorized(method, path, body, schema)
    const signed = new TextDecoder().decode(await key.decrypt(answer.jwe))
    const expected = typeof what === 'function' ? what(answer) : what
    const { value, version } = await releases.open(signed, { ...expected, dpopJti, jkt: key.jkt })
    return { answer, value, version }
  }

  async function clientAttestation(): Promise<ClientAttestation> {
    const { answer: r } = await authorized('POST', OAUTH_PATHS.clientAttestation, {}, ClientAttestationAnswer)
    return { clientAttestation: r.client_attestation, clientId: r.client_id, expiresAt: new Date(r.expires_at) }
  }

  const client: KeywardClient = {
    broker: http.broker,

    async platform() {
      return (await collector()).tee
    },

    attest,

    async evidence(nonce) {
      live()
      return buildRequest(nonce ?? (await challenge()))
    },

    async getSecret(name) {
      const { answer, value, version } = await release('GET', `/v1/secrets/${encodeURIComponent(name)}`, undefined, W.ReleaseResponse, { kind: 'secret', name })
      if (answer.version !== version) throw new ProtocolError('released version differs from the signed one')
      progress(`released secret ${name} version ${version}`)
      return value
    },

    async vaultToken(opts = {}) {
      const body = { ...(opts.wrap === undefined ? {} : { wrap: opts.wrap }), ...(opts.role ? { role: opts.role } : {}) }
      const { value } = await release('POST', '/v1/vault/token', body, W.VaultTokenResponse, { kind: 'vault-token', name: 'vault' })
      let v: unknown
      try {
        v = JSON.parse(new TextDecoder().decode(value))
      } catch {
        throw new ProtocolError('Vault token payload is not JSON')
      }
      const parsed = W.VaultTokenPayload.safeParse(v)
      if (!parsed.success || (!parsed.data.token && !parsed.data.wrapToken)) throw new ProtocolError('Vault token payload has no token')
      return parsed.data
    },

    async credential(tool) {
      const { answer: r, value } = await release('POST', `/v1/credentials/${encodeURIComponent(tool)}`, {}, W.ToolCredentialResponse, { kind: 'tool-credential', name: tool })
      return { tool, kind: r.kind, token: new TextDecoder().decode(value), expiresAt: r.expiresAt === null ? null : new Date(r.expiresAt) }
    },

    clientAttestation,

    async clientAttestationPop(issuer, challenge) {
      return (await sessionKey()).clientAttestationPop(issuer, challenge)
    },

    async accessToken(resource, opts = {}) {
      // RFC 8414 discovery on the broker: the issuer identifier is the PoP's audience.
      const as = await http.request({ method: 'GET', path: OAUTH_PATHS.metadata }, AsMetadata)
      if (new URL(as.token_endpoint).origin !== new URL(http.broker).origin) throw new ProtocolError('the token endpoint is not on the broker')
      const att = await clientAttestation()
      const key = await sessionKey()
      const form = { grant_type: 'client_credentials', resource, ...(opts.scope !== undefined ? { scope: opts.scope } : {}) }
      const send = (): Promise<z.infer<typeof TokenAnswer>> =>
        http.request(
          {
            method: 'POST',
            path: new URL(as.token_endpoint).pathname,
            form,
            idempotent: false,
            headers: async (url) => ({
              [CLIENT_ATTESTATION_HEADER]: att.clientAttestation,
              [CLIENT_ATTESTATION_POP_HEADER]: await key.clientAttestationPop(as.issuer),
              dpop: await key.dpopProof('POST', url, undefined, http.dpopNonce()),
            }),
          },
          TokenAnswer,
        )
      const r = await send()
      progress(`access token for ${resource}: scope ${r.scope ?? '(none)'}, ${r.expires_in} s`)
      return { accessToken: r.access_token, tokenType: r.token_type, scope: r.scope ?? '', resource, expiresAt: new Date(Date.now() + r.expires_in * 1000) }
    },

    async dpopProof(method, url, accessToken, nonce) {
      return (await sessionKey()).dpopProof(method, url, accessToken, nonce)
    },

    async sessionKeyPair() {
      return (await sessionKey()).cryptoKeyPair
    },

    async x509Svid() {
      if (o.exportableKey !== true) throw new ClientConfigError('an X509-SVID for the session key needs exportableKey (the child presents that key)')
      const key = await sessionKey()
      const csr = Buffer.from(await key.certificationRequest()).toString('base64')
      const { answer } = await authorized('POST', '/v1/spiffe/x509-svid', { csr }, X509SvidAnswer)
      const expiresAt = new Date(answer.expiresAt)
      if (Number.isNaN(expiresAt.getTime())) throw new ProtocolError('X509-SVID answer has no valid expiresAt')
      progress(`X509-SVID for ${answer.spiffeId}, expires ${expiresAt.toISOString()}`)
      return { spiffeId: answer.spiffeId, certificates: answer.certificates, bundle: answer.bundle, privateKeyPem: key.privateKeyPem(), expiresAt }
    },

    async jwtSvid(audience) {
      const { answer, value } = await release('POST', '/v1/spiffe/jwt-svid', { audience }, JwtSvidAnswer, (a) => ({ kind: 'jwt-svid', name: a.spiffeId }))
      return { spiffeId: answer.spiffeId, token: new TextDecoder().decode(value), expiresAt: new Date(answer.expiresAt) }
    },

    async register(workload, opts = {}) {
      live()
      const col = await collector()
      if (col.tee !== 'tpm' || !('register' in col)) throw new ClientConfigError('registration by credential activation needs the TPM collector')
      const post = (path: string, body: unknown): Promise<unknown> => http.request({ method: 'POST', path, body }, z.unknown())
      const r = await (col as TpmCollector).register(post, workload, opts.enrolToken)
      if (r.status === 'enrolled') progress(`registered AK ${r.akName}: enrolled as workload ${r.workload}`)
      else progress(`registered AK ${r.akName} for workload ${r.workload}: ${r.status === 'pending' ? 'pending approval' : r.status}${r.reason ? ` (${r.reason})` : ''}`)
      return r
    },

    startRenewal(intervalMs, onError, onRenew) {
      if (!(intervalMs > 0)) throw new ClientConfigError('renewal interval must be positive')
      let timer: NodeJS.Timeout | undefined
      let stopped = false
      const schedule = (failed: boolean): void => {
        if (stopped || closed) return
        let delay = intervalMs
        if (current) {
          const left = current.expiresAt.getTime() - Date.now()
          delay = Math.min(delay, Math.max(0, left - renewMargin(current.expiresAt.getTime() - attestedAt)))
        }
        // After a failure try again soon (the current token may still be valid), not in a tight loop.
        if (failed) delay = Math.min(intervalMs, Math.max(1000, delay))
        timer = setTimeout(tick, delay)
        timer.unref()
      }
      const tick = (): void => {
        attest().then(
          (a) => {
            onRenew?.(a)
            schedule(false)
          },
          (e: unknown) => {
            onError(isKeywardError(e) || e instanceof Error ? e : new Error(String(e)))
            schedule(true)
          },
        )
      }
      schedule(false)
      const r: Renewal = {
        stop() {
          stopped = true
          if (timer) clearTimeout(timer)
          timers.delete(r)
        },
      }
      timers.add(r)
      return r
    },

    async close() {
      if (closed) return
      closed = true
      for (const t of [...timers]) t.stop()
      await http.close()
    },
  }
  return client
}
