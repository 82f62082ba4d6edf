// keyward's SPIFFE authority for one trust domain: a self-signed root (published in the bundle),
// an intermediate that signs X509-SVIDs, and a JWT-SVID signing key. All three are P-256 keys
// kept like the token-signing keys: rows of the signing-key table with the private JWK sealed
// under the KEK (so `keys rotate --kek` re-wraps them), shared by every replica. `keys rotate`
// replaces the intermediate and the JWT key; the root is replaced on its own once less than one
// intermediate lifetime of it is left, and an old root stays in the bundle until it expires.
//
// Rows are told apart from token keys by their kid, `spiffe:<trust domain>:<role>:<thumbprint>`,
// so a changed trust domain never signs with another domain's keys.
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as px509 from '@peculiar/x509'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { KeywardError } from '../errors.js'
import type { SigningKeyRow, Store } from '../store/types.js'
import { SIGNING_KEY_LABEL, type Sealer } from '../sealing/sealer.js'
import { fromB64 } from '../util/bytes.js'
import { CA_ALG, createIntermediateCa, createRootCa, toPem, type CaKey } from './x509.js'
import { buildBundle, type SpiffeBundle } from './bundle.js'

export const SPIFFE_KID_PREFIX = 'spiffe:'
/** Token-signing code skips these rows. */
export const isSpiffeKeyRow = (row: Pick<SigningKeyRow, 'kid'>): boolean => row.kid.startsWith(SPIFFE_KID_PREFIX)

type Role = 'root' | 'ca' | 'jwt'
/** The longest X509-SVID lifetime a grant can ask for (src/policy/schema.ts MAX_TTL_SECONDS). */
const MAX_X509_SVID_S = 24 * 3600
/** The longest JWT-SVID lifetime (MAX_JWT_SVID_TTL_SECONDS): a retired JWT key stays published this long, plus a minute. */
const JWT_GRACE_MS = (3600 + 60) * 1000
const subtle = webcrypto.subtle

export interface SpiffeAuthorityOptions {
  store: Store
  sealer: Pick<Sealer, 'sealJson' | 'unsealJson'>
  trustDomain: string
  /** Lifetime of an intermediate; a root lives ten times as long. */
  caTtlSeconds: number
  refreshHintSeconds: number
  clock: () => Date
}

export interface X509Issuer extends CaKey {
  /** The intermediate, then nothing else: roots travel in the bundle. */
  chain: px509.X509Certificate[]
}

export interface SpiffeAuthority {
  readonly trustDomain: string
  /** The intermediate that signs X509-SVIDs now (made, with a root, when there is none valid long enough). */
  x509Issuer(): Promise<X509Issuer>
  /** The key that signs JWT-SVIDs now. */
  jwtSigner(): Promise<{ kid: string; privateKey: webcrypto.CryptoKey }>
  /** The SPIFFE bundle of the trust domain (SPIFFE_Trust_Domain_and_Bundle.md §4). */
  bundle(): Promise<SpiffeBundle>
  /** The X.509 authorities of the bundle as PEM (bundle.pem for workloads). */
  rootsPem(): Promise<string>
  /** New intermediate and JWT key; the old ones stop signing (their SVIDs stay valid). Returns the new kids. */
  rotate(): Promise<{ x509: string; jwt: string }>
}

interface Loaded {
  row: SigningKeyRow
  role: Role
  jwk: JWK & { x5c?: string[] }
  cert?: px509.X509Certificate
  notAfter: number
}

export function createSpiffeAuthority(o: SpiffeAuthorityOptions): SpiffeAuthority {
  const prefix = `${SPIFFE_KID_PREFIX}${o.trustDomain}:`
  const privateKeys = new Map<string, webcrypto.CryptoKey>()
  const now = () => o.clock().getTime()

  async function load(): Promise<Loaded[]> {
    const out: Loaded[] = []
    for (const row of await o.store.listSigningKeys()) {
      if (!row.kid.startsWith(prefix)) continue
      const role = row.kid.slice(prefix.length).split(':')[0] as Role
      const jwk = JSON.parse(row.publicJwk) as Loaded['jwk']
      const der = jwk.x5c?.[0] === undefined ? undefined : fromB64(jwk.x5c[0])
      const cert = der ? new px509.X509Certificate(der) : undefined
      out.push({ row, role, jwk, ...(cert ? { cert } : {}), notAfter: cert ? cert.notAfter.getTime() : Number.MAX_SAFE_INTEGER })
    }
    // Newest first.
    return out.sort((a, b) => b.row.createdAt - a.row.createdAt)
  }

  async function privateKey(l: Loaded): Promise<webcrypto.CryptoKey> {
    let k = privateKeys.get(l.row.kid)
    if (!k) {
      const jwk = await o.sealer.unsealJson<webcrypto.JsonWebKey>(SIGNING_KEY_LABEL, l.row.sealedPrivate)
      k = await subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
      privateKeys.set(l.row.kid, k)
    }
    return k
  }

  /** Stores a fresh key (and the certificate `certify` makes for it); returns the row's kid. */
  async function createKey(role: Role, certify?: (keys: webcrypto.CryptoKeyPair, name: string) => Promise<px509.X509Certificate>): Promise<string> {
    const keys = (await subtle.generateKey(CA_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
    const pub = (await subtle.exportKey('jwk', keys.publicKey)) as JWK
    const thumb = await calculateJwkThumbprint({ kty: pub.kty!, crv: pub.crv!, x: pub.x!, y: pub.y! }, 'sha256')
    const cert = certify ? await certify(keys, `keyward SPIFFE ${role === 'root' ? 'root' : 'CA'} ${thumb.slice(0, 16)}`) : undefined
    const publicJwk: JWK = {
      kty: 'EC',
      crv: 'P-256',
      x: pub.x!,
      y: pub.y!,
      // X509-SVID.md §6.1 no kid and x5c for x509-svid entries; JWT-SVID.md §6.1 a kid for jwt-svid ones.
      ...(cert ? { use: 'x509-svid', x5c: [Buffer.from(cert.rawData).toString('base64')] } : { use: 'jwt-svid', kid: thumb }),
    }
    const kid = `${prefix}${role}:${thumb}`
    await o.store.putSigningKey({
      kid,
      alg: 'ES256',
      publicJwk: JSON.stringify(publicJwk),
      sealedPrivate: await o.sealer.sealJson(SIGNING_KEY_LABEL, await subtle.exportKey('jwk', keys.privateKey)),
      createdAt: now(),
      retiredAt: null,
    })
    privateKeys.set(kid, await subtle.importKey('jwk', await subtle.exportKey('jwk', keys.privateKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']))
    return kid
  }

  const caTtlMs = o.caTtlSeconds * 1000
  const live = (l: Loaded, role: Role, validFor: number) => l.role === role && l.row.retiredAt === null && l.notAfter > now() + validFor

  /** A root that outlives one more intermediate, made when there is none. */
  async function currentRoot(all: Loaded[]): Promise<CaKey> {
    let root = all.find((l) => live(l, 'root', caTtlMs))
    if (!root) {
      const t = now()
      await createKey('root', (keys, name) => createRootCa({ trustDomain: o.trustDomain, keys, name, notBefore: new Date(t - 60_000), notAfter: new Date(t + 10 * caTtlMs) }))
      root = (await load()).find((l) => live(l, 'root', caTtlMs))
      if (!root) throw new KeywardError('ERR_INTERNAL', 'no SPIFFE root')
    }
    return { cert: root.cert!, privateKey: await privateKey(root) }
  }

  async function newIntermediate(all: Loaded[]): Promise<string> {
    const root = await currentRoot(all)
    const t = now()
    return createKey('ca', (keys, name) =>
      createIntermediateCa({ trustDomain: o.trustDomain, publicKey: keys.publicKey, name, root, notBefore: new Date(t - 60_000), notAfter: new Date(Math.min(t + caTtlMs, root.cert.notAfter.getTime())) }),
    )
  }

  return {
    trustDomain: o.trustDomain,

    async x509Issuer() {
      let all = await load()
      // An intermediate must outlive the longest SVID it may sign.
      let ca = all.find((l) => live(l, 'ca', MAX_X509_SVID_S * 1000))
      if (!ca) {
        await newIntermediate(all)
        all = await load()
        ca = all.find((l) => live(l, 'ca', MAX_X509_SVID_S * 1000))
        if (!ca) throw new KeywardError('ERR_INTERNAL', 'no SPIFFE intermediate')
      }
      return { cert: ca.cert!, privateKey: await privateKey(ca), chain: [ca.cert!] }
    },

    async jwtSigner() {
      let k = (await load()).find((l) => live(l, 'jwt', 0))
      if (!k) {
        await createKey('jwt')
        k = (await load()).find((l) => live(l, 'jwt', 0))
        if (!k) throw new KeywardError('ERR_INTERNAL', 'no JWT-SVID key')
      }
      return { kid: k.jwk.kid!, privateKey: await privateKey(k) }
    },

    async bundle() {
      let all = await load()
      if (!all.some((l) => live(l, 'root', 0))) {
        await currentRoot(all)
        all = await load()
      }
      const t = now()
      return buildBundle(
        all.map((l) => ({
          jwk: l.jwk,
          kind: l.role === 'jwt' ? 'jwt-svid' : l.role === 'root' ? 'x509-svid' : 'intermediate',
          from: l.row.createdAt,
          // A root is published until it expires; a JWT key until its last token has.
          until: l.role === 'jwt' ? (l.row.retiredAt === null ? Number.MAX_SAFE_INTEGER : l.row.retiredAt + JWT_GRACE_MS) : l.notAfter,
        })),
        t,
        o.refreshHintSeconds,
      )
    },

    async rootsPem() {
      const t = now()
      const roots = (await load()).filter((l) => l.role === 'root' && l.notAfter > t && l.cert !== undefined)
      return toPem(roots.map((l) => l.cert!))
    },

    async rotate() {
      const all = await load()
      const at = now()
      const x509 = await newIntermediate(all)
      const jwt = await createKey('jwt')
      for (const l of all) if ((l.role === 'ca' || l.role === 'jwt') && l.row.retiredAt === null) await o.store.retireSigningKey(l.row.kid, at)
      return { x509, jwt }
    },
  }
}
