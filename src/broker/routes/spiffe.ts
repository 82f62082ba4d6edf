// SPIFFE identities for attested workloads (docs/spiffe.md): the trust domain's bundle
// (https_web profile: anyone may read it), and X509-SVIDs and JWT-SVIDs for a caller that holds
// an attestation token and proves its key with DPoP, under the SPIFFE grant of the policy that
// admitted it. Issuance lives in src/spiffe; every issuance and every refusal of an
// authenticated caller is audited by `audited` (app.ts releaseAudited).
import { Hono, type Context } from 'hono'
import { z } from 'zod'
import { KeywardError } from '../../errors.js'
import type { BrokerDeps } from '../deps.js'
import type { Attested } from '../release.js'
import { sealRelease } from '../release.js'
import { dpopChallenge, dpopNonces } from '../dpop.js'
import { issueJwtSvidFor, issueX509SvidFor, MAX_JWT_AUDIENCES } from '../../spiffe/issue.js'
import type { SpiffeAuthority } from '../../spiffe/authority.js'
import { fromB64 } from '../../util/bytes.js'

type Env = { Variables: { requestId: string } }
type Outcome = { subject: string; body: Record<string, unknown>; detail?: Record<string, unknown> }

export interface SpiffeRouteHelpers {
  jsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>>
  /** Authenticates the caller (attestation token + DPoP), runs `fn`, audits the release or the refusal. */
  audited(kind: string, what: string, c: Context<Env>, fn: (a: Attested) => Promise<Outcome>): Promise<Response>
}

export const X509SvidRequest = z
  .object({
    /** A PKCS#10 CSR, DER, base64, signed by the attested key. */
    csr: z.string().min(16).max(16 * 1024).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
  })
  .strict()

export const JwtSvidRequest = z.object({ audience: z.array(z.string().min(1).max(256)).min(1).max(MAX_JWT_AUDIENCES) }).strict()

export function spiffeRoutes(deps: BrokerDeps, h: SpiffeRouteHelpers): Hono<Env> {
  const r = new Hono<Env>()
  const authority = (): SpiffeAuthority => {
    if (!deps.spiffe) throw new KeywardError('ERR_NOT_FOUND', 'SPIFFE identities are not configured on this broker')
    return deps.spiffe
  }
  const grantOf = (a: Attested) => {
    const g = a.grants.spiffe[0]
    if (!g) throw new KeywardError('ERR_NOT_GRANTED', 'the admitting policy grants no SPIFFE identity')
    return g
  }
  const workloadOf = (a: Attested) => ({ tee: a.attestation.tee, workload: a.attestation.workload, jkt: a.attestation.jkt })

  const nonces = dpopNonces(deps.store, deps.config.nonceTtlSeconds * 1000, deps.clock)
  r.use('/x509-svid', dpopChallenge(nonces.issue))
  r.use('/jwt-svid', dpopChallenge(nonces.issue))

  // SPIFFE_Trust_Domain_and_Bundle.md §5.2.1 https_web: the bundle is public, its TLS is web PKI.
  r.get('/bundle', async (c) => {
    const b = await authority().bundle()
    c.header('cache-control', `max-age=${Math.min(60, b.spiffe_refresh_hint)}`)
    return c.json(b)
  })

  r.post('/x509-svid', async (c) => {
    const spiffe = authority()
    const req = await h.jsonBody(c, X509SvidRequest)
    return h.audited('spiffe-x509-svid', 'x509-svid', c, async (a) => {
      const csr = fromB64(req.csr)
      if (!csr) throw new KeywardError('ERR_BAD_REQUEST', 'invalid CSR: not base64')
      const svid = await issueX509SvidFor(spiffe, grantOf(a), workloadOf(a), csr, deps.clock())
      return {
        subject: a.attestation.jkt,
        body: { spiffeId: svid.spiffeId, certificates: svid.certificates, bundle: svid.bundle, expiresAt: svid.notAfter.toISOString() },
        detail: { spiffeId: svid.spiffeId, serial: svid.serial, notAfter: svid.notAfter.toISOString(), workload: a.attestation.workload },
      }
    })
  })

  // The token is a bearer credential: released like a tool credential, signed and encrypted to the attested key.
  r.post('/jwt-svid', async (c) => {
    const spiffe = authority()
    const req = await h.jsonBody(c, JwtSvidRequest)
    return h.audited('spiffe-jwt-svid', 'jwt-svid', c, async (a) => {
      const svid = await issueJwtSvidFor(spiffe, grantOf(a), workloadOf(a), req.audience, deps.clock())
      const jwe = await sealRelease(deps, a, c.req.header('dpop') ?? '', { kind: 'jwt-svid', name: svid.spiffeId }, new TextEncoder().encode(svid.token))
      return {
        subject: a.attestation.jkt,
        body: { spiffeId: svid.spiffeId, expiresAt: svid.expiresAt.toISOString(), jwe },
        detail: { spiffeId: svid.spiffeId, audience: req.audience, jti: svid.jti, workload: a.attestation.workload },
      }
    })
  })
  return r
}
