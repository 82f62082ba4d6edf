// The TPM collector against a real software TPM: quotes must pass tpm2_checkquote with the
// binding as qualifying data, and credential activation must recover a tpm2_makecredential secret.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTpmCollector, type TpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import { CollectorError } from '../../enclave-client/src/errors.js'
import { toHex } from '../../src/util/bytes.js'
import { startSwtpm, tpmTool, type Swtpm } from './helpers/swtpm.js'

let tpm: Swtpm
let dir: string
let collector: TpmCollector

beforeAll(async () => {
  tpm = await startSwtpm({ ekCert: true })
  dir = await mkdtemp(join(tmpdir(), 'kw-tpmc-'))
  collector = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state'), eventLogPath: join(dir, 'eventlog.bin') })
})

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function writeB64(name: string, v: unknown): Promise<string> {
  const p = join(dir, name)
  await writeFile(p, Buffer.from(String(v), 'base64'))
  return p
}

async function checkquote(ev: Record<string, unknown>, qualifying: Uint8Array): Promise<boolean> {
  const pem = join(dir, 'ak.pem')
  await tpmTool(tpm.tcti, 'tpm2_readpublic', ['-c', join(dir, 'state', 'ak.ctx'), '-f', 'pem', '-o', pem])
  try {
    await tpmTool(tpm.tcti, 'tpm2_checkquote', [
      '-u', pem,
      '-m', await writeB64('q.msg', ev.quote),
      '-s', await writeB64('q.sig', ev.signature),
      '-f', await writeB64('q.pcrs', ev.pcrs),
      '-g', 'sha256', '-q', toHex(qualifying),
    ])
    return true
  } catch {
    return false
  } finally {
    await tpmTool(tpm.tcti, 'tpm2_flushcontext', ['-t'])
  }
}

describe('TPM collector on swtpm', () => {
  it('quotes with the binding digest as qualifying data, and tpm2_checkquote agrees', async () => {
    const binding = new Uint8Array(randomBytes(32))
    const ev = await collector.collect({ binding, nonce: new Uint8Array(randomBytes(32)) })
    expect(Object.keys(ev).sort()).toEqual(['ak', 'pcrs', 'quote', 'signature'])
    expect(await checkquote(ev, binding)).toBe(true)
    const other = binding.slice()
    other[0]! ^= 1
    expect(await checkquote(ev, other)).toBe(false)
    // The AK in the evidence is the TPM2B_PUBLIC the collector keeps in its state dir.
    expect(Buffer.from(String(ev.ak), 'base64')).toEqual(await readFile(join(dir, 'state', 'ak.pub')))
    // Quote selection is sha256:0-7,15 by default: TPMS_ATTEST carries it (TPML_PCR_SELECTION count 1, sha256, 3 bytes 0xff 0x80 0x00).
    expect(toHex(Buffer.from(String(ev.quote), 'base64'))).toContain('00000001000b03ff8000')
  })

  it('keeps its state dir private and reuses the AK across collector instances', async () => {
    expect((await stat(join(dir, 'state'))).mode & 0o777).toBe(0o700)
    const again = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state'), eventLogPath: null })
    const ev = await again.collect({ binding: new Uint8Array(32).fill(7), nonce: new Uint8Array(32) })
    expect(Buffer.from(String(ev.ak), 'base64')).toEqual(await readFile(join(dir, 'state', 'ak.pub')))
    expect(await checkquote(ev, new Uint8Array(32).fill(7))).toBe(true)
  })

  it('attaches the event log when readable', async () => {
    const log = new Uint8Array(randomBytes(100))
    await writeFile(join(dir, 'eventlog.bin'), log)
    const ev = await collector.collect({ binding: new Uint8Array(32).fill(1), nonce: new Uint8Array(32) })
    expect(Buffer.from(String(ev.eventLog), 'base64')).toEqual(Buffer.from(log))
    await rm(join(dir, 'eventlog.bin'))
  })

  it('registers by credential activation: only this TPM recovers the secret', async () => {
    const reg = await collector.registration()
    expect(reg.ekCert).toBeDefined()
    // The EK certificate from NV holds the EK public key the registration presents.
    const { X509Certificate } = await import('node:crypto')
    const cert = new X509Certificate(Buffer.from(reg.ekCert!, 'base64'))
    const ekPem = join(dir, 'ek.pem')
    await tpmTool(tpm.tcti, 'tpm2_print', ['-t', 'TPM2B_PUBLIC', '-f', 'pem', await writeB64('ek.pub', reg.ekPub)]).then((pem) => writeFile(ekPem, pem))
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(await readFile(ekPem, 'utf8'))

    // A broker stand-in: tpm2_makecredential without a TPM (-T none) for the AK name.
    const secret = new Uint8Array(randomBytes(32))
    const akName = toHex(await readFile(join(dir, 'state', 'ak.name')))
    let activated: string | undefined
    const post = async (path: string, body: unknown): Promise<unknown> => {
      const b = body as Record<string, string>
      if (path === '/v1/tpm/register') {
        expect(b.workload).toBe('svc-a')
        expect(b.akPub).toBe(reg.akPub)
        await writeFile(join(dir, 'secret.bin'), secret)
        await tpmTool(tpm.tcti, 'tpm2_makecredential', ['-T', 'none',
          '-u', await writeB64('ek.pub', b.ekPub), '-s', join(dir, 'secret.bin'), '-n', akName, '-o', join(dir, 'cred.out'),
        ])
        return { activationId: 'act-1', credential: (await readFile(join(dir, 'cred.out'))).toString('base64'), expiresAt: new Date().toISOString() }
      }
      expect(path).toBe('/v1/tpm/activate')
      expect(b.activationId).toBe('act-1')
      activated = b.secret
      return { akName, workload: 'svc-a', status: 'enrolled' }
    }
    expect(await collector.register(post, 'svc-a')).toEqual({ akName, workload: 'svc-a', status: 'enrolled' })
    expect(activated).toBe(Buffer.from(secret).toString('base64'))

    // A credential made for another key name does not activate.
    await tpmTool(tpm.tcti, 'tpm2_makecredential', ['-T', 'none',
      '-u', await writeB64('ek.pub', reg.ekPub), '-s', join(dir, 'secret.bin'), '-n', `000b${'11'.repeat(32)}`, '-o', join(dir, 'bad.out'),
    ])
    await expect(collector.activateCredential(await readFile(join(dir, 'bad.out')))).rejects.toBeInstanceOf(CollectorError)
  })

  it('uses a persistent EK handle (swtpm_setup persists the RSA EK at 0x81010001): same EK as the derived one', async () => {
    const persistent = createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, 'state-persistent'), ekHandle: '0x81010001', eventLogPath: null })
    const reg = await persistent.registration()
    expect(reg.ekPub).toBe((await collector.registration()).ekPub)
    const ev = await persistent.collect({ binding: new Uint8Array(32).fill(3), nonce: new Uint8Array(32) })
    expect(ev.ak).toBe(reg.akPub)
  })

  it('reports tool failures as CollectorError with the tool name', async () => {
    const dead = createTpmCollector({ tcti: 'swtpm:host=127.0.0.1,port=1', stateDir: join(dir, 'dead') })
    const err = await dead.collect({ binding: new Uint8Array(32), nonce: new Uint8Array(32) }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CollectorError)
    expect((err as CollectorError).code).toBe('ERR_COLLECTOR')
    expect((err as CollectorError).detail?.tool).toBe('tpm2_createek')
  })
})
