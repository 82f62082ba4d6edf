// test-only stand-in for Vault's HTTP API; never used outside tests.
//
// Implements exactly the endpoints keyward calls, with the request and response shapes of the
// Vault API docs (auth/token, auth/approle, sys/wrapping, sys/health, secret/kv/kv-v2,
// secret/transit): the {"errors":[...]} error body, 403 "permission denied", 503 "Vault is
// sealed", response wrapping via X-Vault-Wrap-TTL → wrap_info. Transit does real AES-256-GCM
// ("vault:vN:" + base64(nonce||ciphertext||tag)), derived keys via HKDF-SHA256 over `context`.
// Switches simulate a Vault that is down (connection refused), denying, sealed or slow.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomUUID } from 'node:crypto'

export interface StandInToken {
  id: string
  accessor: string
  policies: string[]
  meta: Record<string, string>
  /** Seconds; 0 = never expires (root). */
  ttl: number
  expiresAt: number | null
  renewable: boolean
  /** 0 = unlimited. */
  numUses: number
  maxTtl: number
  createdAt: number
  path: string
  revoked: boolean
}

interface KvVersionRec {
  data: Record<string, unknown> | null
  created: string
  deleted: string
  destroyed: boolean
}

interface TransitKey {
  type: 'aes256-gcm96'
  derived: boolean
  versions: Buffer[]
}

export interface RequestLogEntry {
  method: string
  path: string
  query: string
  hadToken: boolean
  namespace: string | undefined
  wrapTtl: string | undefined
  body: unknown
}

type Reply = { status: number; body?: unknown }
type Handler = (req: ParsedRequest) => Reply

interface ParsedRequest {
  method: string
  path: string
  query: URLSearchParams
  token: StandInToken | undefined
  body: Record<string, unknown>
}

const err = (status: number, ...errors: string[]): Reply => ({ status, body: { errors } })
const envelope = (extra: Record<string, unknown>): Record<string, unknown> => ({
  request_id: randomUUID(),
  lease_id: '',
  renewable: false,
  lease_duration: 0,
  data: null,
  wrap_info: null,
  warnings: null,
  auth: null,
  ...extra,
})
const randomId = (prefix: string): string => `${prefix}.${randomBytes(18).toString('base64url')}`

export interface VaultStandIn {
  readonly addr: string
  readonly rootToken: string
  /** 'down' refuses connections; 'denied' answers 403; 'sealed' answers 503. */
  setMode(mode: 'up' | 'down' | 'denied' | 'sealed'): Promise<void>
  /** Delay every answer by ms (timeouts). */
  setSlow(ms: number): void
  /** The next n requests (health excluded) answer with this status and errors. */
  failNext(n: number, status: number, errors?: string[]): void
  /** Older Vault answers rotate with 204 and no body. */
  setRotateNoContent(v: boolean): void
  addTokenRole(name: string, role: { allowed_policies: string[]; orphan: boolean; renewable?: boolean }): void
  addAppRole(name: string, role: { policies: string[]; token_ttl: number; token_max_ttl: number }): { roleId: string; secretId: string }
  kvPut(mount: string, path: string, data: Record<string, unknown>): number
  kvDelete(mount: string, path: string, version: number): void
  kvDestroy(mount: string, path: string, version: number): void
  createTransitKey(name: string, opts?: { derived?: boolean }): void
  tokenByAccessor(accessor: string): StandInToken | undefined
  tokenById(id: string): StandInToken | undefined
  readonly log: RequestLogEntry[]
  close(): Promise<void>
}

export async function startVaultStandIn(opts: { now?: () => number } = {}): Promise<VaultStandIn> {
  const now = opts.now ?? Date.now
  const tokens = new Map<string, StandInToken>()
  const byAccessor = new Map<string, StandInToken>()
  const wrapped = new Map<string, Reply>()
  const tokenRoles = new Map<string, { allowed_policies: string[]; orphan: boolean; renewable: boolean }>()
  const appRoles = new Map<string, { roleId: string; secretId: string; policies: string[]; token_ttl: number; token_max_ttl: number }>()
  const kv = new Map<string, KvVersionRec[]>()
  const transit = new Map<string, TransitKey>()
  const log: RequestLogEntry[] = []
  const sockets = new Set<Socket>()
  let mode: 'up' | 'down' | 'denied' | 'sealed' = 'up'
  let slowMs = 0
  let failing = { n: 0, status: 500, errors: ['internal error'] }
  let rotateNoContent = false

  function mintToken(t: Omit<StandInToken, 'id' | 'accessor' | 'expiresAt' | 'createdAt' | 'revoked'>): StandInToken {
    const tok: StandInToken = {
      ...t,
      id: randomId('hvs'),
      accessor: randomBytes(12).toString('base64url'),
      createdAt: now(),
      expiresAt: t.ttl > 0 ? now() + t.ttl * 1000 : null,
      revoked: false,
    }
    tokens.set(tok.id, tok)
    byAccessor.set(tok.accessor, tok)
    return tok
  }
  const root = mintToken({ policies: ['root'], meta: {}, ttl: 0, renewable: false, numUses: 0, maxTtl: 0, path: 'auth/token/root' })

  const live = (t: StandInToken | undefined): t is StandInToken => !!t && !t.revoked && (t.expiresAt === null || t.expiresAt > now())
  const authBlock = (t: StandInToken): Record<string, unknown> => ({
    client_token: t.id,
    accessor: t.accessor,
    policies: ['default', ...t.policies.filter((p) => p !== 'default')],
    token_policies: t.policies,
    metadata: t.meta,
    lease_duration: t.ttl,
    renewable: t.renewable,
    entity_id: '',
    token_type: 'service',
    orphan: true,
    num_uses: t.numUses,
  })
  const durationOf = (v: unknown): number | undefined => {
    if (typeof v === 'number') return v
    if (typeof v !== 'string') return undefined
    const m = /^(\d+)(s|m|h)?$/.exec(v)
    return m ? Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1) : undefined
  }

  // --- transit (Vault API docs, secret/transit) ---
  function transitKeyFor(k: TransitKey, version: number, ctxB64: unknown): Buffer | Reply {
    const base = k.versions[version - 1]
    if (!base) return err(400, 'invalid ciphertext: key version not found')
    if (!k.derived) return base // a non-derived key ignores `context`
    if (typeof ctxB64 !== 'string' || ctxB64 === '') {
      return err(400, "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key")
    }
    return Buffer.from(hkdfSync('sha256', base, Buffer.alloc(0), Buffer.from(ctxB64, 'base64'), 32))
  }
  function encrypt(k: TransitKey, plaintext: Buffer, ctx: unknown): Reply {
    const version = k.versions.length
    const key = transitKeyFor(k, version, ctx)
    if (!Buffer.isBuffer(key)) return key
    const nonce = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', key, nonce)
    const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()])
    return { status: 200, body: envelope({ data: { ciphertext: `vault:v${version}:${Buffer.concat([nonce, ct]).toString('base64')}`, key_version: version } }) }
  }
  function decrypt(k: TransitKey, ciphertext: unknown, ctx: unknown): Buffer | Reply {
    const m = typeof ciphertext === 'string' ? /^vault:v(\d+):([A-Za-z0-9+/]+={0,2})$/.exec(ciphertext) : null
    if (!m) return err(400, 'invalid ciphertext: no prefix')
    const key = transitKeyFor(k, Number(m[1]), ctx)
    if (!Buffer.isBuffer(key)) return key
    const raw = Buffer.from(m[2] as string, 'base64')
    if (raw.length < 28) return err(400, 'invalid ciphertext: too short')
    try {
      const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
      d.setAuthTag(raw.subarray(raw.length - 16))
      return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()])
    } catch {
      return err(400, 'cipher: message authentication failed')
    }
  }
  const keyInfo = (name: string, k: TransitKey): Record<string, unknown> => ({
    name,
    type: k.type,
    derived: k.derived,
    kdf: k.derived ? 'hkdf_sha256' : undefined,
    keys: Object.fromEntries(k.versions.map((_, i) => [String(i + 1), 1_700_000_000 + i])),
    latest_version: k.versions.length,
    min_decryption_version: 1,
    min_encryption_version: 0,
    supports_encryption: true,
    supports_decryption: true,
    supports_derivation: true,
    deletion_allowed: false,
    exportable: false,
  })

  const routes: Array<[string, RegExp, Handler]> = [
    ['POST', /^auth\/approle\/login$/, (r) => {
      const role = [...appRoles.entries()].find(([, v]) => v.roleId === r.body.role_id)
      if (!role || role[1].secretId !== r.body.secret_id) return err(400, 'invalid role or secret ID')
      const t = mintToken({ policies: role[1].policies, meta: { role_name: role[0] }, ttl: role[1].token_ttl, renewable: true, numUses: 0, maxTtl: role[1].token_max_ttl, path: 'auth/approle/login' })
      return { status: 200, body: envelope({ auth: authBlock(t) }) }
    }],
    ['GET', /^auth\/token\/lookup-self$/, (r) => {
      const t = r.token as StandInToken
      const ttl = t.expiresAt === null ? 0 : Math.max(0, Math.round((t.expiresAt - now()) / 1000))
      return { status: 200, body: envelope({ data: { accessor: t.accessor, creation_time: Math.floor(t.createdAt / 1000), creation_ttl: t.ttl, display_name: 'token', expire_time: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(), explicit_max_ttl: 0, id: t.id, meta: t.meta, num_uses: t.numUses, orphan: true, path: t.path, policies: t.policies, renewable: t.renewable, ttl, type: 'service' } }) }
    }],
    ['POST', /^auth\/token\/renew-self$/, (r) => {
      const t = r.token as StandInToken
      if (!t.renewable) return err(400, 'lease is not renewable')
      const want = durationOf(r.body.increment) ?? t.ttl
      const cap = t.maxTtl > 0 ? Math.max(0, Math.floor((t.createdAt + t.maxTtl * 1000 - now()) / 1000)) : want
      const granted = Math.min(want, cap)
      t.expiresAt = now() + granted * 1000
      const warnings = granted < want ? [`TTL of "${want}s" exceeded the effective max_ttl of "${granted}s"; TTL value is capped accordingly`] : null
      return { status: 200, body: envelope({ auth: { ...authBlock(t), lease_duration: granted }, warnings }) }
    }],
    ['POST', /^auth\/token\/create\/([^/]+)$/, (r) => {
      const roleName = (r.path.split('/').pop() as string)
      const role = tokenRoles.get(roleName)
      if (!role) return err(400, `unknown role ${roleName}`)
      const policies = Array.isArray(r.body.policies) ? (r.body.policies as unknown[]).map(String) : []
      const bad = policies.filter((p) => !role.allowed_policies.includes(p))
      if (bad.length) return err(400, `token policies (${JSON.stringify(bad)}) must be subset of the role's allowed_policies`)
      const meta = (r.body.meta ?? {}) as Record<string, unknown>
      if (typeof meta !== 'object' || Object.values(meta).some((v) => typeof v !== 'string')) return err(400, "'meta' must be a map of strings")
      const ttl = durationOf(r.body.ttl ?? '768h')
      if (ttl === undefined) return err(400, 'invalid ttl')
      const t = mintToken({ policies, meta: meta as Record<string, string>, ttl, renewable: r.body.renewable !== false && role.renewable, numUses: Number(r.body.num_uses ?? 0), maxTtl: 0, path: `auth/token/create/${roleName}` })
      return { status: 200, body: envelope({ auth: authBlock(t) }) }
    }],
    ['POST', /^auth\/token\/revoke-accessor$/, (r) => {
      const t = byAccessor.get(String(r.body.accessor))
      if (!t || t.revoked) return err(400, 'invalid accessor')
      t.revoked = true
      return { status: 204 }
    }],
    ['POST', /^auth\/token\/lookup-accessor$/, (r) => {
      const t = byAccessor.get(String(r.body.accessor))
      if (!live(t)) return err(400, 'invalid accessor')
      return { status: 200, body: envelope({ data: { accessor: t.accessor, meta: t.meta, policies: t.policies, num_uses: t.numUses, ttl: t.ttl, renewable: t.renewable, path: t.path } }) }
    }],
    ['POST', /^sys\/wrapping\/unwrap$/, (r) => {
      const t = r.token as StandInToken
      const inner = wrapped.get(t.id)
      if (!inner) return err(400, 'wrapping token is not valid or does not exist')
      wrapped.delete(t.id)
      t.revoked = true
      return inner
    }],
    ['GET', /^transit\/keys\/([^/]+)$/, (r) => {
      const name = r.path.split('/')[2] as string
      const k = transit.get(name)
      return k ? { status: 200, body: envelope({ data: keyInfo(name, k) }) } : err(404)
    }],
    ['POST', /^transit\/keys\/([^/]+)\/rotate$/, (r) => {
      const name = r.path.split('/')[2] as string
      const k = transit.get(name)
      if (!k) return err(400, 'key not found')
      k.versions.push(randomBytes(32))
      return rotateNoContent ? { status: 204 } : { status: 200, body: envelope({ data: keyInfo(name, k) }) }
    }],
    ['POST', /^transit\/(encrypt|decrypt|rewrap)\/([^/]+)$/, (r) => {
      const [, op, name] = r.path.split('/') as [string, string, string]
      const k = transit.get(name)
      if (!k) return op === 'encrypt' ? err(400, 'encryption key not found') : err(400, 'encryption key not found')
      if (op === 'encrypt') {
        if (typeof r.body.plaintext !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(r.body.plaintext)) return err(400, 'failed to base64-decode plaintext')
        return encrypt(k, Buffer.from(r.body.plaintext, 'base64'), r.body.context)
      }
      const pt = decrypt(k, r.body.ciphertext, r.body.context)
      if (!Buffer.isBuffer(pt)) return pt
      if (op === 'decrypt') return { status: 200, body: envelope({ data: { plaintext: pt.toString('base64') } }) }
      return encrypt(k, pt, r.body.context)
    }],
    ['GET', /^([^/]+)\/data\/(.+)$/, (r) => {
      const [mount, ...rest] = r.path.split('/')
      const versions = kv.get(`${mount}/${rest.slice(1).join('/')}`)
      if (!versions || versions.length === 0) return err(404)
      const v = r.query.has('version') && r.query.get('version') !== '0' ? Number(r.query.get('version')) : versions.length
      const rec = versions[v - 1]
      if (!rec) return err(404)
      const body = envelope({ data: { data: rec.data, metadata: { created_time: rec.created, custom_metadata: null, deletion_time: rec.deleted, destroyed: rec.destroyed, version: v } } })
      // KV v2 answers a deleted or destroyed version with 404 and the metadata.
      return { status: rec.data === null ? 404 : 200, body: rec.data === null ? { ...body, errors: [] } : body }
    }],
    ['POST', /^([^/]+)\/data\/(.+)$/, (r) => {
      const [mount, ...rest] = r.path.split('/')
      const version = api.kvPut(mount as string, rest.slice(1).join('/'), (r.body.data ?? {}) as Record<string, unknown>)
      return { status: 200, body: envelope({ data: { created_time: new Date(now()).toISOString(), custom_metadata: null, deletion_time: '', destroyed: false, version } }) }
    }],
  ]

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const url = new URL(req.url ?? '/', 'http://stand-in')
    const path = url.pathname.replace(/^\/v1\//, '')
    let body: Record<string, unknown> = {}
    if (chunks.length) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
      } catch {
        return send(res, err(400, 'failed to parse JSON input'))
      }
    }
    const tokenHeader = req.headers['x-vault-token']
    const wrapTtl = req.headers['x-vault-wrap-ttl']
    log.push({ method: req.method ?? '', path, query: url.search, hadToken: typeof tokenHeader === 'string', namespace: req.headers['x-vault-namespace'] as string | undefined, wrapTtl: wrapTtl as string | undefined, body })
    if (slowMs) await new Promise((r) => setTimeout(r, slowMs))
    if (path === 'sys/health') {
      const sealed = mode === 'sealed'
      return send(res, { status: sealed ? 503 : 200, body: { initialized: true, sealed, standby: false, performance_standby: false, replication_performance_mode: 'disabled', replication_dr_mode: 'disabled', server_time_utc: Math.floor(now() / 1000), version: '1.17.2', cluster_name: 'vault-cluster-stand-in', cluster_id: 'stand-in' } })
    }
    if (mode === 'sealed') return send(res, err(503, 'Vault is sealed'))
    if (mode === 'denied') return send(res, err(403, 'permission denied'))
    if (failing.n > 0) {
      failing.n--
      return send(res, err(failing.status, ...failing.errors))
    }
    const route = routes.find(([m, re]) => (m === req.method || (m === 'POST' && req.method === 'PUT')) && re.test(path))
    if (!route) return send(res, err(404))
    let token: StandInToken | undefined
    if (path !== 'auth/approle/login') {
      token = typeof tokenHeader === 'string' ? tokens.get(tokenHeader) : undefined
      if (!live(token)) return send(res, err(403, 'permission denied'))
      if (token.numUses > 0 && --token.numUses === 0) token.revoked = true
    }
    let reply = route[2]({ method: req.method ?? '', path, query: url.searchParams, token, body })
    const ttl = typeof wrapTtl === 'string' ? durationOf(wrapTtl) : undefined
    if (ttl && reply.status === 200 && path !== 'sys/wrapping/unwrap') {
      const w = mintToken({ policies: ['response-wrapping'], meta: {}, ttl, renewable: false, numUses: 1, maxTtl: 0, path: 'sys/wrapping/wrap' })
      w.numUses = 0 // consumed by unwrap instead
      wrapped.set(w.id, reply)
      const innerAuth = (reply.body as { auth?: { accessor?: string } | null }).auth
      reply = { status: 200, body: envelope({ wrap_info: { token: w.id, accessor: w.accessor, ttl, creation_time: new Date(now()).toISOString(), creation_path: path, ...(innerAuth?.accessor ? { wrapped_accessor: innerAuth.accessor } : {}) } }) }
    }
    send(res, reply)
  }

  function send(res: ServerResponse, r: Reply): void {
    if (r.status === 204 || r.body === undefined) {
      res.writeHead(r.status)
      res.end()
      return
    }
    const b = JSON.stringify(r.body)
    res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) })
    res.end(b)
  }

  let server: Server = createServer()
  let port = 0
  async function listen(): Promise<void> {
    server = createServer((req, res) => {
      handle(req, res).catch(() => send(res, err(500, 'stand-in failure')))
    })
    server.on('connection', (s) => {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
    })
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r))
    port = (server.address() as AddressInfo).port
  }
  async function shut(): Promise<void> {
    for (const s of sockets) s.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  }
  await listen()

  const api: VaultStandIn = {
    get addr() {
      return `http://127.0.0.1:${port}`
    },
    rootToken: root.id,
    log,
    async setMode(m) {
      if (m === 'down' && mode !== 'down') await shut()
      if (m !== 'down' && mode === 'down') await listen()
      mode = m
    },
    setSlow(ms) {
      slowMs = ms
    },
    failNext(n, status, errors = ['internal error']) {
      failing = { n, status, errors }
    },
    setRotateNoContent(v) {
      rotateNoContent = v
    },
    addTokenRole(name, role) {
      tokenRoles.set(name, { renewable: true, ...role })
    },
    addAppRole(name, role) {
      const ids = { roleId: randomUUID(), secretId: randomUUID() }
      appRoles.set(name, { ...ids, ...role })
      return ids
    },
    kvPut(mount, path, data) {
      const key = `${mount}/${path}`
      const versions = kv.get(key) ?? []
      versions.push({ data, created: new Date(now()).toISOString(), deleted: '', destroyed: false })
      kv.set(key, versions)
      return versions.length
    },
    kvDelete(mount, path, version) {
      const rec = kv.get(`${mount}/${path}`)?.[version - 1]
      if (rec) Object.assign(rec, { data: null, deleted: new Date(now()).toISOString() })
    },
    kvDestroy(mount, path, version) {
      const rec = kv.get(`${mount}/${path}`)?.[version - 1]
      if (rec) Object.assign(rec, { data: null, destroyed: true })
    },
    createTransitKey(name, o = {}) {
      transit.set(name, { type: 'aes256-gcm96', derived: o.derived ?? false, versions: [randomBytes(32)] })
    },
    tokenByAccessor: (a) => byAccessor.get(a),
    tokenById: (id) => tokens.get(id),
    async close() {
      if (mode !== 'down') await shut()
    },
  }
  return api
}
