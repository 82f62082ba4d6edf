// Credential activation end to end against a real swtpm: EK certificate chain (swtpm local CA),
// TPM2_MakeCredential in TypeScript for RSA-2048 and ECC P-256 EKs, tpm2_activatecredential
// recovers the secret; a wrong AK name makes activation fail. Also: quotes by keys that are not
// restricted/fixedTPM signing keys pass tpm2_checkquote but fail keyward with ERR_AK_ATTRIBUTES.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { SHARED_TOOLS, vectorPath } from '../../helpers/vectors.js'
import { KeywardError } from '../../../src/errors.js'
import { toHex } from '../../../src/util/bytes.js'
import { parseCertificate } from '../../../src/verifiers/common/x509.js'
import { akName, parseTpmPublic, parseAkPublic } from '../../../src/verifiers/tpm/index.js'
import { verifyTpmCommand } from '../../../src/cli/verify-tpm.js'
import { checkActivatedCredential, makeCredential } from '../../../src/verifiers/tpm/make-credential.js'
import { ekPublicFromCertificate, verifyEkCertificate } from '../../../src/verifiers/tpm/ek.js'

let tmp = ''
let swtpm: ChildProcess | undefined
let env: NodeJS.ProcessEnv = {}
const EK_HANDLE = '0x81010001'

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))))
    })
  })
}

/** Runs a tpm2-tools command, then flushes transient objects (no resource manager with swtpm). */
function tpm(args: string[], ok = true): boolean {
  const r = spawnSync(args[0]!, args.slice(1), { env, stdio: 'pipe', cwd: tmp })
  spawnSync('tpm2_flushcontext', ['-t'], { env, stdio: 'pipe' })
  if (ok && r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr.toString()}`)
  return r.status === 0
}

function activate(akCtx: string, ekCtx: string, credFile: string, out: string): boolean {
  tpm(['tpm2_startauthsession', '--policy-session', '-S', 'sess.ctx'])
  const ok = tpm(['tpm2_policysecret', '-S', 'sess.ctx', '-c', 'e'], false)
    && tpm(['tpm2_activatecredential', '-c', akCtx, '-C', ekCtx, '-i', credFile, '-o', out, '-P', 'session:sess.ctx'], false)
  spawnSync('tpm2_flushcontext', ['sess.ctx'], { env, stdio: 'pipe', cwd: tmp })
  return ok
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'kw-tpm-cred-'))
  // Manufacturing: swtpm_setup with EK + platform certificates from a local CA (kept in tmp/ca).
  execFileSync(join(SHARED_TOOLS, 'tpm-quote.sh'), ['-o', join(tmp, 'prov'), '-a', 'rsa', '--ek-cert', '--ca-dir', join(tmp, 'ca'), '--state', join(tmp, 'state')], { stdio: 'pipe', timeout: 60_000 })
  for (let attempt = 0; attempt < 5 && !swtpm; attempt++) {
    const port = await freePort()
    const p = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${join(tmp, 'state')}`, '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear'], { stdio: 'ignore' })
    for (let i = 0; i < 100; i++) {
      if (p.exitCode !== null) break
      if (spawnSync('swtpm_ioctl', ['--tcp', `127.0.0.1:${port + 1}`, '-c'], { stdio: 'pipe' }).status === 0) {
        swtpm = p
        env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` }
        break
      }
      await new Promise((r) => setTimeout(r, 20))
    }
    if (!swtpm && p.exitCode === null) p.kill()
  }
  if (!swtpm) throw new Error('could not start swtpm')
  tpm(['tpm2_readpublic', '-c', EK_HANDLE, '-o', 'ek.pub', '-n', 'ek.name'])
  tpm(['tpm2_createak', '-C', EK_HANDLE, '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pub', '-n', 'ak.name'])
  tpm(['tpm2_createak', '-C', EK_HANDLE, '-c', 'ak2.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak2.pub', '-n', 'ak2.name'])
}, 120_000)

afterAll(() => {
  if (swtpm && swtpm.exitCode === null) swtpm.kill('SIGTERM')
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

const f = (n: string) => join(tmp, n)
const bytes = (n: string) => new Uint8Array(readFileSync(f(n)))
const ca = () => ({ roots: [parseCertificate(readFileSync(f('prov/ca-root.pem'), 'utf8'))], chain: [readFileSync(f('prov/ca-intermediate.pem'), 'utf8')] })

describe('EK certificate', () => {
  it('chains to the swtpm local CA and carries the EK public key', () => {
    const { roots, chain } = ca()
    const ek = parseTpmPublic(bytes('ek.pub'))
    const v = verifyEkCertificate({ certificate: bytes('prov/ek.cert.der'), chain, ekPublic: ek }, { roots, now: new Date() })
    expect(v.path.length).toBe(3)
  })
  it('an EK certificate from an untrusted CA is ERR_EK_UNTRUSTED', () => {
    const gce = [parseCertificate(readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/ca/tpm_ek_root_1.cer')))]
    const otherSwtpmCa = [parseCertificate(readFileSync(vectorPath('tpm', 'swtpm/rsa/ca-root.pem'), 'utf8'))]
    for (const roots of [gce, otherSwtpmCa]) {
      expect(() => verifyEkCertificate({ certificate: bytes('prov/ek.cert.der'), chain: ca().chain }, { roots, now: new Date() }))
        .toThrow(expect.objectContaining({ code: 'ERR_EK_UNTRUSTED' }))
    }
    // the vectors' swtpm EK certificate is from yet another local CA
    expect(() => verifyEkCertificate({ certificate: readFileSync(vectorPath('tpm', 'swtpm/rsa/ek.cert.der')) }, { roots: ca().roots, intermediates: [parseCertificate(ca().chain[0]!)], now: new Date() }))
      .toThrow(expect.objectContaining({ code: 'ERR_EK_UNTRUSTED' }))
  })
  it('an EK public that differs from the certificate key is ERR_EK_UNTRUSTED', () => {
    const { roots, chain } = ca()
    expect(() => verifyEkCertificate({ certificate: bytes('prov/ek.cert.der'), chain, ekPublic: parseTpmPublic(bytes('ak.pub')) }, { roots, now: new Date() }))
      .toThrow(expect.objectContaining({ code: 'ERR_EK_UNTRUSTED' }))
  })
  it('an EK certificate outside its validity is rejected', () => {
    const { roots, chain } = ca()
    expect(() => verifyEkCertificate({ certificate: bytes('prov/ek.cert.der'), chain }, { roots, now: new Date('2000-01-01T00:00:00Z') }))
      .toThrow(expect.objectContaining({ code: 'ERR_EK_UNTRUSTED', detail: expect.objectContaining({ reason: 'ERR_CERT_EXPIRED' }) }))
  })
  it('the default template rebuilt from the certificate gives the TPM\'s EK name', () => {
    const fromCert = ekPublicFromCertificate(parseCertificate(bytes('prov/ek.cert.der')))
    expect(toHex(akName(fromCert))).toBe(toHex(bytes('ek.name')))
  })
  it('GCE: a Google vTPM certificate chains to tpm_ek_root_1 via tpm_ek_intermediate_2', () => {
    const roots = [parseCertificate(readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/ca/tpm_ek_root_1.cer')))]
    const intermediates = [parseCertificate(readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/ca/tpm_ek_intermediate_2.crt')))]
    // The chain holds; being an AK certificate (digitalSignature), it is then refused by the EK profile (ek-profile.test.ts).
    expect(() => verifyEkCertificate({ certificate: readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/nonce9009/ak.cert.der')) }, { roots, intermediates, now: new Date('2022-01-01T00:00:00Z') }))
      .toThrow(expect.objectContaining({ code: 'ERR_EK_PROFILE' }))
    expect(() => verifyEkCertificate({ certificate: readFileSync(vectorPath('tpm', 'gce-cos85-vtpm/nonce9009/ak.cert.der')) }, { roots, now: new Date('2022-01-01T00:00:00Z') }))
      .toThrow(expect.objectContaining({ code: 'ERR_EK_UNTRUSTED' }))
  })
})

describe('MakeCredential → tpm2_activatecredential', () => {
  it('RSA-2048 EK (0x81010001), RSA AK: the TPM recovers the secret', () => {
    const secret = new Uint8Array(randomBytes(32))
    const mc = makeCredential(parseTpmPublic(bytes('ek.pub')), akName(parseTpmPublic(bytes('ak.pub'))), secret)
    writeFileSync(f('cred.bin'), mc.file)
    expect(activate('ak.ctx', EK_HANDLE, 'cred.bin', 'out.bin')).toBe(true)
    expect(toHex(bytes('out.bin'))).toBe(toHex(secret))
    expect(() => checkActivatedCredential(secret, bytes('out.bin'))).not.toThrow()
    expect(() => checkActivatedCredential(secret, new Uint8Array(32))).toThrow(expect.objectContaining({ code: 'ERR_CREDENTIAL_ACTIVATION' }))
  })
  it('the EK public rebuilt from the EK certificate works too, for an ECC AK', () => {
    const secret = new Uint8Array(randomBytes(16))
    const ek = ekPublicFromCertificate(parseCertificate(bytes('prov/ek.cert.der')))
    writeFileSync(f('cred2.bin'), makeCredential(ek, bytes('ak2.name'), secret).file)
    expect(activate('ak2.ctx', EK_HANDLE, 'cred2.bin', 'out2.bin')).toBe(true)
    expect(toHex(bytes('out2.bin'))).toBe(toHex(secret))
  })
  it('a credential made for another AK name cannot be activated', () => {
    const secret = new Uint8Array(randomBytes(32))
    const name = akName(parseTpmPublic(bytes('ak.pub')))
    name[5]! ^= 1
    writeFileSync(f('cred3.bin'), makeCredential(parseTpmPublic(bytes('ek.pub')), name, secret).file)
    expect(activate('ak.ctx', EK_HANDLE, 'cred3.bin', 'out3.bin')).toBe(false)
    // and one made for AK 2 cannot be activated with AK 1
    writeFileSync(f('cred4.bin'), makeCredential(parseTpmPublic(bytes('ek.pub')), bytes('ak2.name'), secret).file)
    expect(activate('ak.ctx', EK_HANDLE, 'cred4.bin', 'out4.bin')).toBe(false)
  })
  it('ECC P-256 EK: the TPM recovers the secret', () => {
    tpm(['tpm2_createek', '-c', 'eccek.ctx', '-G', 'ecc', '-u', 'eccek.pub'])
    tpm(['tpm2_createak', '-C', 'eccek.ctx', '-c', 'ak3.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak3.pub', '-n', 'ak3.name'])
    const ek = parseTpmPublic(bytes('eccek.pub'))
    expect(ek.type).toBe('ecc')
    const secret = new Uint8Array(randomBytes(32))
    writeFileSync(f('cred5.bin'), makeCredential(ek, akName(parseTpmPublic(bytes('ak3.pub'))), secret).file)
    expect(activate('ak3.ctx', 'eccek.ctx', 'cred5.bin', 'out5.bin')).toBe(true)
    expect(toHex(bytes('out5.bin'))).toBe(toHex(secret))
    const wrong = bytes('ak3.name')
    wrong[wrong.length - 1]! ^= 1
    writeFileSync(f('cred6.bin'), makeCredential(ek, wrong, secret).file)
    expect(activate('ak3.ctx', 'eccek.ctx', 'cred6.bin', 'out6.bin')).toBe(false)
  })
  it('tpm2_makecredential -T none output has the same file layout and activates (harness cross-check)', () => {
    writeFileSync(f('secret.txt'), 'cross-check-secret')
    tpm(['tpm2_makecredential', '-T', 'none', '-u', 'ek.pub', '-s', 'secret.txt', '-n', toHex(bytes('ak.name')), '-o', 'cred7.bin'])
    const theirs = bytes('cred7.bin')
    const ours = makeCredential(parseTpmPublic(bytes('ek.pub')), bytes('ak.name'), new TextEncoder().encode('cross-check-secret')).file
    expect(ours.length).toBe(theirs.length)
    expect(toHex(ours.subarray(0, 10))).toBe(toHex(theirs.subarray(0, 10)))
    expect(activate('ak.ctx', EK_HANDLE, 'cred7.bin', 'out7.bin')).toBe(true)
    expect(readFileSync(f('out7.bin'), 'utf8')).toBe('cross-check-secret')
  })
  it('rejects a non-storage EK and oversized credentials', () => {
    expect(() => makeCredential(parseTpmPublic(bytes('ak.pub')), bytes('ak.name'), new Uint8Array(16))).toThrow(expect.objectContaining({ code: 'ERR_EK_UNTRUSTED' }))
    expect(() => makeCredential(parseTpmPublic(bytes('ek.pub')), bytes('ak.name'), new Uint8Array(33))).toThrow(KeywardError)
  })
})

describe('quotes by keys that are not attestation keys', () => {
  const quoteWith = (attrs: string, tag: string): string[] => {
    tpm(['tpm2_createprimary', '-C', 'o', '-c', `${tag}p.ctx`])
    tpm(['tpm2_create', '-C', `${tag}p.ctx`, '-G', 'rsa2048:rsassa-sha256:null', '-a', attrs, '-u', `${tag}.pub`, '-r', `${tag}.priv`])
    tpm(['tpm2_load', '-C', `${tag}p.ctx`, '-u', `${tag}.pub`, '-r', `${tag}.priv`, '-c', `${tag}.ctx`])
    tpm(['tpm2_readpublic', '-c', `${tag}.ctx`, '-f', 'pem', '-o', `${tag}.pem`])
    tpm(['tpm2_quote', '-c', `${tag}.ctx`, '-l', 'sha256:0,23', '-q', 'abcd', '-g', 'sha256', '-m', `${tag}.msg`, '-s', `${tag}.sig`, '-o', `${tag}.pcrs`])
    return ['--ak', f(`${tag}.pub`), '--quote', f(`${tag}.msg`), '--sig', f(`${tag}.sig`), '--pcrs', f(`${tag}.pcrs`), '--nonce', 'abcd']
  }
  const checkquote = (tag: string) => spawnSync('tpm2_checkquote', ['-u', f(`${tag}.pem`), '-m', f(`${tag}.msg`), '-s', f(`${tag}.sig`), '-f', f(`${tag}.pcrs`), '-g', 'sha256', '-q', 'abcd'], { stdio: 'pipe' }).status === 0
  it.each([
    ['unrestricted', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign', 'restricted'],
    ['not fixedTPM', 'sensitivedataorigin|userwithauth|restricted|sign', 'fixedTPM'],
  ])('%s key: tpm2_checkquote accepts the signature, keyward is ERR_AK_ATTRIBUTES', async (tag, attrs, missing) => {
    const args = quoteWith(attrs, tag.replace(/\s/g, ''))
    expect(checkquote(tag.replace(/\s/g, ''))).toBe(true)
    await expect(verifyTpmCommand(args)).rejects.toMatchObject({ code: 'ERR_AK_ATTRIBUTES', detail: { missing: expect.arrayContaining([missing]) } })
    // given only as PEM, attributes are unknown: the quote verifies but says so
    const pem = [...args]
    pem[1] = f(`${tag.replace(/\s/g, '')}.pem`)
    const claims = await verifyTpmCommand(pem)
    expect(claims.details.akAttributesVerified).toBe(false)
    expect(parseAkPublic(bytes(`${tag.replace(/\s/g, '')}.pub`)).public).toBeDefined()
  })
})
