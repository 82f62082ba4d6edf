// A KBS protocol client written from trustee kbs/docs/kbs_attestation_protocol.md that behaves as
// guest-components' rcar_client.rs and keypair.rs do (commit in test/fixtures/kbs/README.md):
// - Request {version "0.4.0", tee, extra-params {supported-hash-algorithms}}; the Challenge's
//   extra-params.selected-hash-algorithm picks the hash (sha384 when absent);
// - the runtime data {nonce, tee-pubkey} and the primary runtime data {tee-pubkey, nonce,
//   additional-evidence} hashed over RFC 8785 JSON (serde_json_canonicalizer), additional evidence "";
// - Attestation {init-data: null, runtime-data, tee-evidence {primary_evidence, additional_evidence}};
// - a cookie jar (reqwest's cookie store); a resource GET answered 401 re-runs the handshake and
//   retries, up to 3 attempts; 404 is "resource not found";
// - tee keys: EC P-256 (the default) or P-521 for ECDH-ES+A256KW, RSA for RSA-OAEP-256; the
//   Response's AAD recomputed from the parsed protected header as kbs-types does, then the JWE
//   decrypted with jose.
// Its JCS is its own (from RFC 8785), not the broker's.
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { flattenedDecrypt, type FlattenedJWE } from 'jose'

export type TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256' | 'ECDH-ES+A256KW-P521' | 'RSA-OAEP-256'
export type Fetch = (path: string, init: { method: string; headers: Record<string, string>; body?: string }) => Promise<Response>
/** The attester: primary evidence for the runtime-data digest (attester/src/*: get_evidence). */
export type EvidenceProvider = (runtimeDigest: Uint8Array) => Promise<unknown>

export class KbsError extends Error {
  constructor(
    readonly status: number,
    readonly info: { type: string; detail: string },
  ) {
    super(`${status} ${info.type}: ${info.detail}`)
  }
}

/** RFC 8785 §3.2: members sorted by UTF-16 code units; strings and numbers as ECMAScript serializes them. */
export function jcs(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v)
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`
  const o = v as Record<string, unknown>
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${jcs(o[k])}`)
    .join(',')}}`
}

/** kbs-types ProtectedHeader::generate_aad: alg, enc, then the other members (serde_json Map: sorted, or in received order with preserve_order). */
export function kbsTypesAad(protectedB64: string, preserveOrder: boolean): string {
  const h = JSON.parse(Buffer.from(protectedB64, 'base64url').toString('utf8')) as Record<string, unknown>
  const { alg, enc, ...rest } = h
  const sortDeep = (v: unknown): unknown =>
    v === null || typeof v !== 'object' || Array.isArray(v) ? v : Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]))
  const other = preserveOrder ? rest : (sortDeep(rest) as Record<string, unknown>)
  return Buffer.from(JSON.stringify({ alg, enc, ...other })).toString('base64url')
}

export class TeeKeyPair {
  readonly privateKey: KeyObject
  readonly pubkey: Record<string, string>
  constructor(readonly algorithm: TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256') {
    if (algorithm === 'RSA-OAEP-256') {
      const kp = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const j = kp.publicKey.export({ format: 'jwk' })
      this.privateKey = kp.privateKey
      this.pubkey = { kty: 'RSA', alg: 'RSA-OAEP-256', n: j.n!, e: j.e! }
    } else {
      const crv = algorithm.endsWith('P521') ? 'P-521' : 'P-256'
      const kp = generateKeyPairSync('ec', { namedCurve: crv === 'P-521' ? 'secp521r1' : 'prime256v1' })
      const j = kp.publicKey.export({ format: 'jwk' })
      this.privateKey = kp.privateKey
      this.pubkey = { kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: j.x!, y: j.y! }
    }
  }

  /** keypair.rs decrypt_response: the AAD as kbs-types recomputes it must be the one the sender used. */
  async decryptResponse(r: FlattenedJWE & { protected: string }): Promise<Uint8Array> {
    for (const preserve of [false, true]) {
      if (kbsTypesAad(r.protected, preserve) !== r.protected) throw new Error(`kbs-types would recompute another AAD (preserve_order=${preserve})`)
    }
    const { plaintext } = await flattenedDecrypt(r, this.privateKey, { keyManagementAlgorithms: ['ECDH-ES+A256KW', 'RSA-OAEP-256'], contentEncryptionAlgorithms: ['A256GCM'] })
    return plaintext
  }
}

export interface RcarClientOptions {
  fetch: Fetch
  tee: string
  evidence: EvidenceProvider
  key?: TeeKeyPair
  /** What the Request offers (rcar_client.rs: HashAlgorithm::list_all()). */
  hashAlgorithms?: string[]
}

export class RcarClient {
  readonly key: TeeKeyPair
  readonly cookies = new Map<string, string>()
  token: string | undefined
  /** Every request made, for tests that check what the client sent. */
  readonly sent: { path: string; body?: unknown }[] = []

  constructor(private readonly o: RcarClientOptions) {
    this.key = o.key ?? new TeeKeyPair()
  }

  private async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { ...headers }
    if (body !== undefined) h['content-type'] = 'application/json'
    if (this.cookies.size > 0) h.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    this.sent.push({ path, ...(body === undefined ? {} : { body }) })
    const r = await this.o.fetch(path, { method, headers: h, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    for (const sc of r.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';')
      const [name, value] = [pair!.slice(0, pair!.indexOf('=')).trim(), pair!.slice(pair!.indexOf('=') + 1).trim()]
      const p = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path='))
      if (p && !path.startsWith(p.slice(5))) continue
      this.cookies.set(name, value)
    }
    return r
  }

  private static async fail(r: Response): Promise<never> {
    throw new KbsError(r.status, (await r.json()) as { type: string; detail: string })
  }

  /** rcar_handshake: auth, challenge, evidence over the runtime-data digest, attest; stores the token. */
  async handshake(over: { primary?: (digest: Uint8Array, rd: Record<string, unknown>) => Promise<unknown>; nonce?: (n: string) => string } = {}): Promise<string> {
    const req = { version: '0.4.0', tee: this.o.tee, 'extra-params': { 'supported-hash-algorithms': this.o.hashAlgorithms ?? ['sha256', 'sha384', 'sha512', 'sm3'] } }
    const a = await this.request('POST', '/kbs/v0/auth', req)
    if (a.status !== 200) await RcarClient.fail(a)
    const ch = (await a.json()) as { nonce: string; 'extra-params': Record<string, unknown> | string }
    const selected = typeof ch['extra-params'] === 'object' ? ch['extra-params']['selected-hash-algorithm'] : undefined
    const hash = typeof selected === 'string' ? selected.toLowerCase() : 'sha384'
    const runtimeData = { nonce: over.nonce ? over.nonce(ch.nonce) : ch.nonce, 'tee-pubkey': this.key.pubkey }
    const additional = ''
    const primaryRd = { 'tee-pubkey': runtimeData['tee-pubkey'], nonce: runtimeData.nonce, 'additional-evidence': additional }
    const digest = new Uint8Array(createHash(hash).update(jcs(primaryRd)).digest())
    const primary = over.primary ? await over.primary(digest, primaryRd) : await this.o.evidence(digest)
    const att = { 'init-data': null, 'runtime-data': runtimeData, 'tee-evidence': { primary_evidence: primary, additional_evidence: additional } }
    const r = await this.request('POST', '/kbs/v0/attest', att)
    if (r.status !== 200) await RcarClient.fail(r)
    this.token = ((await r.json()) as { token: string }).token
    return this.token
  }

  /** get_resource for `kbs:///repo/type/tag` with the session cookie (RCAR client). */
  async getResource(uri: string): Promise<Uint8Array> {
    const path = `/kbs/v0/resource/${uri.replace(/^kbs:\/\/\//, '')}`
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await this.request('GET', path)
      if (r.status === 200) return this.key.decryptResponse((await r.json()) as FlattenedJWE & { protected: string })
      if (r.status === 401) {
        await r.json()
        await this.handshake()
        continue
      }
      await RcarClient.fail(r)
    }
    throw new Error('unauthorized after 3 attempts')
  }

  /** token_client.rs: the resource with `Authorization: Bearer <token>` and no cookie. */
  async getResourceWithToken(uri: string, token = this.token!): Promise<Uint8Array> {
    const path = `/kbs/v0/resource/${uri.replace(/^kbs:\/\/\//, '')}`
    const r = await this.o.fetch(path, { method: 'GET', headers: { authorization: `Bearer ${token}` } })
    if (r.status !== 200) await RcarClient.fail(r)
    return this.key.decryptResponse((await r.json()) as FlattenedJWE & { protected: string })
  }
}
