// Issue 13 item 8: an EK certificate must be an EK certificate by the TCG EK Credential Profile
// (extendedKeyUsage tcg-kp-EKCertificate 2.23.133.8.1; keyUsage keyEncipherment for RSA,
// keyAgreement for ECC), not any certificate a trusted TPM CA issued (e.g. an AK certificate).
// Checked on the swtpm vectors (what swtpm_localca issues), on certificates a testOnly CA issues
// for the vectors' real EK key, and through POST /v1/tpm/register on SQLite and PostgreSQL.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { vectorPath } from '../../helpers/vectors.js'
import { parseCertificate } from '../../../src/verifiers/common/x509.js'
import { checkEkProfile, ekPublicFromCertificate, verifyEkCertificate } from '../../../src/verifiers/tpm/ek.js'
import { startHarness, type Harness } from '../../broker/harness.js'
import { errorCode } from '../../helpers/errors.js'

let tmp = ''
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: tmp, stdio: 'pipe' })

/** A testOnly CA issues a certificate for `pubkeyPem` with the given extensions (openssl x509 -new -force_pubkey). */
function issue(name: string, pubkeyPem: string, ext: string): string {
  writeFileSync(join(tmp, `${name}.pub.pem`), pubkeyPem)
  writeFileSync(join(tmp, `${name}.cnf`), `basicConstraints=critical,CA:FALSE\n${ext}\n`)
  openssl('x509', '-new', '-subj', `/CN=testOnly-${name}`, '-force_pubkey', `${name}.pub.pem`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-extfile', `${name}.cnf`, '-days', '30', '-out', `${name}.pem`)
  return readFileSync(join(tmp, `${name}.pem`), 'utf8')
}

const rsaEkPem = () => readFileSync(vectorPath('tpm', 'swtpm/rsa/ek.pub.pem'), 'utf8')
const EKU = 'extendedKeyUsage=2.23.133.8.1'

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'kw-ek-profile-'))
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=testOnly-ek-ca', '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec.key')
  openssl('pkey', '-in', 'ec.key', '-pubout', '-out', 'ec.pub.pem')
})
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

describe('TCG EK Credential Profile', () => {
  it.each(['swtpm/rsa/ek.cert.der', 'swtpm/rsa/ek-ecc384.cert.der', 'swtpm/ecc/ek.cert.der', 'swtpm/ecc/ek-ecc384.cert.der'])('swtpm_localca issues %s to the profile', (f) => {
    const cert = parseCertificate(readFileSync(vectorPath('tpm', f)))
    expect(cert.extKeyUsage).toContain('2.23.133.8.1')
    expect(() => checkEkProfile(cert)).not.toThrow()
    const dir = f.split('/').slice(0, 2).join('/')
    const chain = [readFileSync(vectorPath('tpm', dir, 'ca-intermediate.pem'), 'utf8')]
    const roots = [parseCertificate(readFileSync(vectorPath('tpm', dir, 'ca-root.pem'), 'utf8'))]
    expect(verifyEkCertificate({ certificate: readFileSync(vectorPath('tpm', f)), chain }, { roots, now: new Date() }).path).toHaveLength(3)
  })
  it('a GCE AK certificate (tcg-kp-EKCertificate, but digitalSignature) chains to the GCE EK root and is not an EK certificate', () => {
    const roots = [parseCertificate(readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/ca/tpm_ek_root_1.cer')))]
    const intermediates = [parseCertificate(readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/ca/tpm_ek_intermediate_2.crt')))]
    const ak = readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/nonce9009/ak.cert.der'))
    expect(errorCode(() => verifyEkCertificate({ certificate: ak }, { roots, intermediates, now: new Date('2022-01-01T00:00:00Z') }))).toBe('ERR_EK_PROFILE')
  })
  it.each([
    ['RSA, no extendedKeyUsage', 'rsa', 'keyUsage=critical,keyEncipherment', 'ERR_EK_PROFILE'],
    ['RSA, TLS server extendedKeyUsage', 'rsa', 'keyUsage=critical,keyEncipherment\nextendedKeyUsage=serverAuth', 'ERR_EK_PROFILE'],
    ['RSA, keyAgreement instead of keyEncipherment', 'rsa', `keyUsage=critical,keyAgreement\n${EKU}`, 'ERR_EK_PROFILE'],
    ['RSA, no keyUsage', 'rsa', EKU, 'ERR_EK_PROFILE'],
    ['ECC, keyEncipherment instead of keyAgreement', 'ec', `keyUsage=critical,keyEncipherment\n${EKU}`, 'ERR_EK_PROFILE'],
    ['RSA, to the profile', 'rsa', `keyUsage=critical,keyEncipherment\n${EKU}`, 'OK'],
    ['ECC, to the profile', 'ec', `keyUsage=critical,keyAgreement\n${EKU}`, 'OK'],
  ])('%s', (name, alg, ext, code) => {
    const pem = issue(name.replace(/\W+/g, '-'), alg === 'rsa' ? rsaEkPem() : readFileSync(join(tmp, 'ec.pub.pem'), 'utf8'), ext)
    const roots = [parseCertificate(readFileSync(join(tmp, 'ca.pem'), 'utf8'))]
    expect(errorCode(() => verifyEkCertificate({ certificate: pem }, { roots, now: new Date() }))).toBe(code)
  })
})

describe.each(['sqlite', 'postgres'] as const)('POST /v1/tpm/register refuses EK certificates outside the profile (%s)', (backend) => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(backend)
    h.deps.trust.ekRoots.push(parseCertificate(readFileSync(join(tmp, 'ca.pem'), 'utf8')))
  }, 60_000)
  afterAll(async () => {
    await h?.stop()
  })

  async function register(certPem: string): Promise<{ status: number; code?: string }> {
    const cert = parseCertificate(certPem)
    const ekRaw = ekPublicFromCertificate(cert).raw
    const ekPub = Buffer.concat([Buffer.from([ekRaw.length >> 8, ekRaw.length & 0xff]), Buffer.from(ekRaw)])
    const body = {
      workload: `ek-profile-${backend}`,
      ekPub: ekPub.toString('base64'),
      ekCert: Buffer.from(cert.cert.raw).toString('base64'),
      akPub: readFileSync(vectorPath('tpm', 'swtpm/rsa/ak.pub')).toString('base64'),
    }
    const r = await fetch(`${h.url}/v1/tpm/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const j = (await r.json()) as { error?: { code: string } }
    return { status: r.status, code: j.error?.code }
  }

  it('the same EK key: a certificate to the profile starts activation; without the EK usage it is 403 ERR_EK_PROFILE', async () => {
    expect(await register(issue(`ok-${backend}`, rsaEkPem(), `keyUsage=critical,keyEncipherment\n${EKU}`))).toEqual({ status: 200, code: undefined })
    expect(await register(issue(`no-eku-${backend}`, rsaEkPem(), 'keyUsage=critical,keyEncipherment'))).toEqual({ status: 403, code: 'ERR_EK_PROFILE' })
    expect(await register(issue(`signing-${backend}`, rsaEkPem(), `keyUsage=critical,digitalSignature\n${EKU}`))).toEqual({ status: 403, code: 'ERR_EK_PROFILE' })
  })
})
