// SPIFFE identities for attested workloads (docs/spiffe.md): the trust domain's bundle
// (https_web profile: anyone may read it), and X509-SVIDs and JWT-SVIDs for a caller that holds
// an attestation token and proves its key with DPoP, under the SPIFFE grant of the policy that
// admitted it. Issuance lives in src/spiffe; every issuance and every refusal of an
// authenticated caller is audited by the release flows (src/broker/release.ts `audited`).
import { Hono } from 'hono'
import { z } from 'zod'
import { KeywardError } from '../../errors.js'
import type { Attested } from '../release.js'
import { sealRelease } from '../release.js'
import { issueJwtSvidFor, issueX509SvidFor, MAX_JWT_AUDIENCES } from '../../spiffe/issue.js'
import type { SpiffeAuthority } from '../../spiffe/authority.js'
import { fromB64 } from '../../util/bytes.js'
import type { Env, RouteContext } from '../http/context.js'
import { jsonBody } from '../http/validate.js'
import { releaseCaller } from '../http/request.js'

export const X509SvidRequest = z
  .object({
    /** A PKCS#10 CSR, DER, base64, signed by the attested key. */
    csr: z.string().min(16).max(16 * 1024).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
  })
  .strict()

export const JwtSvidRequest = z.object({ audience: z.array(z.string().min(1).max(256)).min(1).max(MAX_JWT_AUDIENCES) }).strict()

export function spiffeRoutes({ deps, releases, dpopChallenge }: RouteContext): Hono<Env> {
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

  r.use('/x509-svid', dpopChallenge)
  r.use('/jwt-svid', dpopChallenge)

  // SPIFFE_Trust_Domain_and_Bundle.md §5.2.1 https_web: the bundle is public, its TLS is web PKI.
  r.get('/bundle', async (c) => {
    const b = await authority().bundle()
    c.header('cache-control', `max-age=${Math.min(60, b.spiffe_refresh_hint)}`)
    return c.json(b)
  })

  r.post('/x509-svid', jsonBody(X509SvidRequest), async (c) => {
    const spiffe = authority()
    const req = c.req.valid('json')
    const caller = releaseCaller(c, deps.config)
    const body = await releases.audited('spiffe-x509-svid', 'x509-svid', caller, async (a) => {
      const csr = fromB64(req.csr)
      if (!csr) throw new KeywardError('ERR_BAD_REQUEST', 'invalid CSR: not base64')
      const svid = await issueX509SvidFor(spiffe, grantOf(a), workloadOf(a), csr, deps.clock())
      return {
        subject: a.attestation.jkt,
        body: { spiffeId: svid.spiffeId, certificates: svid.certificates, bundle: svid.bundle, expiresAt: svid.notAfter.toISOString() },
        detail: { spiffeId: svid.spiffeId, serial: svid.serial, notAfter: svid.notAfter.toISOString(), workload: a.attestation.workload },
      }
    })
    return c.json(body)
  })

  // The token is a bearer credential: released like a tool credential, signed and encrypted to the attested key.
  r.post('/jwt-svid', jsonBody(JwtSvidRequest), async (c) => {
    const spiffe = authority()
    const req = c.req.valid('json')
    const caller = releaseCaller(c, deps.config)
    const body = await releases.audited('spiffe-jwt-svid', 'jwt-svid', caller, async (a) => {
      const svid = await issueJwtSvidFor(spiffe, grantOf(a), workloadOf(a), req.audience, deps.clock())
      const jwe = await sealRelease(deps, a, caller.auth.dpop ?? '', { kind: 'jwt-svid', name: svid.spiffeId }, new TextEncoder().encode(svid.token))
      return {
        subject: a.attestation.jkt,
        body: { spiffeId: svid.spiffeId, expiresAt: svid.expiresAt.toISOString(), jwe },
        detail: { spiffeId: svid.spiffeId, audience: req.audience, jti: svid.jti, workload: a.attestation.workload },
      }
    })
    return c.json(body)
  })
  return r
}
