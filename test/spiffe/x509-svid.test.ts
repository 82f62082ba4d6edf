// X509-SVIDs through the public API (spiffe/spiffe standards/X509-SVID.md, each test named after
// its section): issued in-process to workloads attested with testOnly Nitro evidence, checked
// field by field, verified with `openssl verify -x509_strict` for TLS clients and servers, and
// refused for a CSR whose key is not the attested key, a forged CSR, or an unattested caller.
import 'reflect-metadata'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { X509Certificate as NodeCert } from 'node:crypto'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import * as px509 from '@peculiar/x509'
import type { Harness } from '../broker/harness.js'
import { createApp } from '../../src/broker/app.js'
import * as A from '../../src/broker/admin-services.js'
import { createSessionKey } from '../../enclave-client/src/session-key.js'
import { attestCaller, mutualTls, opensslVerify, pemBlocks, scratch, startSpiffeHarness, x509SvidFor, postAs, SPIFFE_ID, TRUST_DOMAIN, type App, type Caller, type TlsIdentity } from './helpers.js'
import { createSpiffeAuthority } from '../../src/spiffe/authority.js'
import { issueX509SvidFor } from '../../src/spiffe/issue.js'

const ext = <T extends px509.Extension>(c: px509.X509Certificate, type: new (raw: ArrayBuffer) => T): T | null => c.getExtension(type)
const uris = (c: px509.X509Certificate) => (ext(c, px509.SubjectAlternativeNameExtension)?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value)

describe('X.509-SVIDs', () => {
  let h: Harness
  let app: App
  let caller: Caller
  let issued: { spiffeId: string; certificates: string; bundle: string; expiresAt: string }
  let leaf: px509.X509Certificate
  let inter: px509.X509Certificate
  let roots: px509.X509Certificate[]
  beforeAll(async () => {
    h = await startSpiffeHarness()
    app = createApp(h.deps)
    caller = await attestCaller(app, h)
    const r = await x509SvidFor(app, caller)
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    issued = r.body as typeof issued
    const chain = pemBlocks(issued.certificates)
    expect(chain).toHaveLength(2)
    leaf = new px509.X509Certificate(chain[0]!)
    inter = new px509.X509Certificate(chain[1]!)
    roots = pemBlocks(issued.bundle).map((p) => new px509.X509Certificate(p))
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('§2 SPIFFE ID: exactly one URI SAN, the ID the policy grant yields for the attested workload', () => {
    expect(issued.spiffeId).toBe(SPIFFE_ID)
    expect(uris(leaf)).toEqual([SPIFFE_ID])
  })

  it('§3.1 leaf certificates: a non-root path; with an empty subject the URI SAN is critical', () => {
    expect(new URL(uris(leaf)[0]!).pathname.length).toBeGreaterThan(1)
    expect(leaf.subject).toBe('')
    expect(ext(leaf, px509.SubjectAlternativeNameExtension)!.critical).toBe(true)
  })

  it('§3.2 signing certificates: cA and keyCertSign, the trust domain ID without a path; the bundle root is self-signed', async () => {
    for (const ca of [inter, ...roots]) {
      expect(ext(ca, px509.BasicConstraintsExtension)!.ca).toBe(true)
      expect(uris(ca)).toEqual([`spiffe://${TRUST_DOMAIN}`])
    }
    expect(roots).toHaveLength(1)
    expect(roots[0]!.subject).toBe(roots[0]!.issuer)
    expect(inter.issuer).toBe(roots[0]!.subject)
  })

  it('§4.1 basic constraints: cA=false on the leaf (critical), cA=true with a path length on signing certificates', () => {
    const bc = ext(leaf, px509.BasicConstraintsExtension)!
    expect(bc.ca).toBe(false)
    expect(bc.critical).toBe(true)
    expect(ext(inter, px509.BasicConstraintsExtension)!.pathLength).toBe(0)
  })

  it('§4.3 key usage: critical everywhere; the leaf has digitalSignature and neither keyCertSign nor cRLSign; signing certificates keyCertSign', () => {
    const ku = ext(leaf, px509.KeyUsagesExtension)!
    expect(ku.critical).toBe(true)
    expect(ku.usages).toBe(px509.KeyUsageFlags.digitalSignature)
    for (const ca of [inter, ...roots]) {
      const k = ext(ca, px509.KeyUsagesExtension)!
      expect(k.critical).toBe(true)
      expect(k.usages & px509.KeyUsageFlags.keyCertSign).toBeTruthy()
      expect(k.usages & px509.KeyUsageFlags.digitalSignature).toBeFalsy()
    }
  })

  it('§4.4 extended key usage: id-kp-serverAuth and id-kp-clientAuth on the leaf', () => {
    expect(ext(leaf, px509.ExtendedKeyUsageExtension)!.usages.sort()).toEqual([px509.ExtendedKeyUsage.serverAuth, px509.ExtendedKeyUsage.clientAuth].sort())
  })

  it('the certified key is the attested key, and the lifetime is the grant’s (2 h) within the intermediate’s', () => {
    expect(Buffer.from(leaf.publicKey.rawData).equals(Buffer.from(caller.key.spki))).toBe(true)
    const hours = (leaf.notAfter.getTime() - h.deps.clock().getTime()) / 3600_000
    expect(hours).toBeGreaterThan(1.99)
    expect(hours).toBeLessThanOrEqual(2)
    expect(leaf.notAfter.getTime()).toBeLessThanOrEqual(inter.notAfter.getTime())
    expect(new Date(issued.expiresAt).getTime()).toBe(leaf.notAfter.getTime())
  })

  it('§5.1 path validation: openssl verify -x509_strict accepts the chain for TLS clients and servers', async () => {
    const [l, i] = pemBlocks(issued.certificates)
    const dir = scratch({ 'leaf.pem': l!, 'chain.pem': i!, 'bundle.pem': issued.bundle })
    for (const purpose of ['sslclient', 'sslserver'] as const) {
      const v = await opensslVerify(dir, purpose)
      expect(v.out).toContain(': OK')
      expect(v.ok).toBe(true)
    }
    // And refuses it without the intermediate, or once it has expired.
    writeFileSync(join(dir, 'chain.pem'), issued.bundle)
    expect((await opensslVerify(dir, 'sslclient')).ok).toBe(false)
    writeFileSync(join(dir, 'chain.pem'), i!)
    expect((await opensslVerify(dir, 'sslserver', new Date(leaf.notAfter.getTime() + 1000))).ok).toBe(false)
  })

  it('§5.2 leaf validation as go-spiffe x509svid.Verify does it (svid/x509svid/verify.go): one URI SAN, not a CA, no keyCertSign/cRLSign, chain to a bundle authority', () => {
    const node = new NodeCert(pemBlocks(issued.certificates)[0]!)
    expect(node.ca).toBe(false)
    expect(node.checkIssued(new NodeCert(pemBlocks(issued.certificates)[1]!))).toBe(true)
    expect(node.verify(new NodeCert(pemBlocks(issued.certificates)[1]!).publicKey)).toBe(true)
    expect(new NodeCert(pemBlocks(issued.certificates)[1]!).verify(new NodeCert(pemBlocks(issued.bundle)[0]!).publicKey)).toBe(true)
  })

  describe('abuse', () => {
    const auditTail = async (n = 1) => (await A.allAuditRows(h.deps)).slice(-n)

    it('a CSR whose key is not the attested key is refused (ERR_BINDING_MISMATCH) and the denial audited', async () => {
      const other = await createSessionKey('ES256')
      const r = await x509SvidFor(app, caller, await other.certificationRequest())
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('ERR_BINDING_MISMATCH')
      const [row] = await auditTail()
      expect(row).toMatchObject({ type: 'release:spiffe-x509-svid', decision: 'deny', subject: caller.key.jkt, detail: { code: 'ERR_BINDING_MISMATCH' } })
    })

    it('a CSR carrying the attested key but not signed by it is refused (ERR_SIGNATURE_INVALID)', async () => {
      const csr = await caller.key.certificationRequest()
      csr[csr.length - 5]! ^= 0x01
      const r = await x509SvidFor(app, caller, csr)
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('ERR_SIGNATURE_INVALID')
    })

    it('a CSR that is not DER is a 400 and no crash', async () => {
      const r = await x509SvidFor(app, caller, new TextEncoder().encode('not a certification request at all'))
      expect(r.status).toBe(400)
      expect(r.body.error.code).toBe('ERR_BAD_REQUEST')
    })

    it('an unattested caller gets nothing: no token is 401, a token without its key is 401; neither is audited', async () => {
      const before = (await A.allAuditRows(h.deps)).length
      const csr = Buffer.from(await caller.key.certificationRequest()).toString('base64')
      const none = await postAs(app, undefined, '/v1/spiffe/x509-svid', { csr })
      expect(none.status).toBe(401)
      expect(none.body.error.code).toBe('ERR_UNAUTHORIZED')
      const thief = { key: await createSessionKey('ES256'), token: caller.token }
      const stolen = await postAs(app, thief, '/v1/spiffe/x509-svid', { csr })
      expect(stolen.status).toBe(401)
      expect(stolen.body.error.code).toBe('ERR_DPOP_INVALID')
      expect((await A.allAuditRows(h.deps)).length).toBe(before)
    })

    it('an issuance is audited with the SPIFFE ID and serial, never the certificate', async () => {
      const r = await x509SvidFor(app, caller)
      expect(r.status).toBe(200)
      const [row] = await auditTail()
      const serial = new px509.X509Certificate(pemBlocks(r.body.certificates)[0]!).serialNumber
      expect(row).toMatchObject({ type: 'release:spiffe-x509-svid', decision: 'allow', subject: caller.key.jkt, detail: { spiffeId: SPIFFE_ID, serial } })
      expect(JSON.stringify(row)).not.toContain('BEGIN CERTIFICATE')
    })
  })

  it('a real TLS handshake (node:tls): two attested workloads trust each other through the bundle; an SVID from another trust domain is refused both ways', async () => {
    const identity = async (c: Caller): Promise<TlsIdentity> => {
      const r = await x509SvidFor(app, c)
      return { key: c.key.privateKeyPem(), cert: r.body.certificates, ca: r.body.bundle }
    }
    const a = await identity(caller)
    const b = await identity(await attestCaller(app, h))
    const ids = { server: SPIFFE_ID, client: SPIFFE_ID }
    await expect(mutualTls(a, b, ids)).resolves.toEqual({ serverSaw: SPIFFE_ID, clientSaw: SPIFFE_ID })

    // Another keyward deployment (trust domain other.example) certifies a workload of its own: same
    // path, same kind of key, but its authority is not in example.org's bundle.
    const other = createSpiffeAuthority({ store: h.deps.store, sealer: h.deps.sealer, trustDomain: 'other.example', caTtlSeconds: 86400 * 30, refreshHintSeconds: 300, clock: h.deps.clock })
    const key = await createSessionKey('ES256', { exportable: true })
    const grant = { id: 'spiffe://other.example/nitro/{workload}', audiences: [], jwtTtlSeconds: 60, x509TtlSeconds: 3600 }
    const foreign = await issueX509SvidFor(other, grant, { tee: 'nitro', workload: 'nitro:x', jkt: key.jkt }, await key.certificationRequest(), h.deps.clock())
    const intruder: TlsIdentity = { key: key.privateKeyPem(), cert: foreign.certificates, ca: a.ca }
    await expect(mutualTls(a, intruder, { server: SPIFFE_ID, client: 'spiffe://other.example/nitro/x' })).rejects.toThrow()
    await expect(mutualTls(intruder, b, { server: 'spiffe://other.example/nitro/x', client: SPIFFE_ID })).rejects.toThrow(/certificate/)
    // The foreign trust domain's keys never sign for example.org, and its root is not in our bundle.
    expect(pemBlocks((await x509SvidFor(app, caller)).body.bundle)).toEqual(pemBlocks(a.ca))
  })

  it('keys rotate: a new intermediate signs new SVIDs, the root and the bundle stay, SVIDs issued before still verify', async () => {
    const before = await x509SvidFor(app, caller)
    await A.rotateSigningKey(h.deps)
    const after = await x509SvidFor(app, caller)
    expect(after.status).toBe(200)
    const [, oldInter] = pemBlocks(before.body.certificates)
    const [newLeaf, newInter] = pemBlocks(after.body.certificates)
    expect(newInter).not.toBe(oldInter)
    expect(after.body.bundle).toBe(before.body.bundle)
    const dir = scratch({ 'leaf.pem': pemBlocks(before.body.certificates)[0]!, 'chain.pem': oldInter!, 'bundle.pem': after.body.bundle })
    expect((await opensslVerify(dir, 'sslclient')).ok).toBe(true)
    writeFileSync(join(dir, 'leaf.pem'), newLeaf!)
    writeFileSync(join(dir, 'chain.pem'), newInter!)
    expect((await opensslVerify(dir, 'sslserver')).ok).toBe(true)
  })
  it('keys rotate --kek re-wraps the SPIFFE keys with the token keys: another replica (a fresh authority) still signs with them', async () => {
    const before = (await x509SvidFor(app, caller)).body
    const r = await A.rotateKek(h.deps)
    expect(r.failed).toEqual([])
    expect(r.signingKeys).toBeGreaterThanOrEqual(4) // token key(s), root, intermediates, JWT keys
    const replica = createSpiffeAuthority({ store: h.deps.store, sealer: h.deps.sealer, clock: h.deps.clock, trustDomain: TRUST_DOMAIN, caTtlSeconds: h.deps.config.spiffe!.caTtlSeconds, refreshHintSeconds: 300 })
    const grant = { id: `spiffe://${TRUST_DOMAIN}/nitro/{workload}`, audiences: [], jwtTtlSeconds: 60, x509TtlSeconds: 3600 }
    const svid = await issueX509SvidFor(replica, grant, { tee: 'nitro', workload: 'nitro:abc', jkt: caller.key.jkt }, await caller.key.certificationRequest(), h.deps.clock())
    expect(pemBlocks(svid.certificates)[1]).toBe(pemBlocks(before.certificates)[1])
    expect(svid.bundle).toBe(before.bundle)
  })
})
