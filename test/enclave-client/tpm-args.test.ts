// Request encoding of the TPM collector: the tpm2-tools argv it builds, the order of tool calls
// (EK, AK, quote, flush without a resource manager) and the evidence JSON it assembles.
import { describe, it, expect } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '../../enclave-client/src/collectors/tpm-args.js'
import { createTpmCollector, type ToolRunner } from '../../enclave-client/src/collectors/tpm.js'
import { ClientConfigError, ProtocolError } from '../../enclave-client/src/errors.js'

describe('tpm2-tools argument lists', () => {
  it('normalizes and validates PCR selections', () => {
    expect(A.parsePcrSelection(A.DEFAULT_PCR_SELECTION)).toBe('sha256:0,1,2,3,4,5,6,7,15')
    expect(A.parsePcrSelection('SHA256:7,0,7+sha1:3')).toBe('sha256:0,7+sha1:3')
    for (const bad of ['', 'sha256', 'sha256:', 'sha256:24', 'md5:1', 'sha256:1;rm -rf /', 'sha256:1+sha256:2', 'sha256:-1']) {
      expect(() => A.parsePcrSelection(bad), bad).toThrow(ClientConfigError)
    }
  })

  it('accepts TCTI strings tpm2-tools knows and nothing shell-like', () => {
    expect(A.checkTcti('device:/dev/tpmrm0')).toBe('device:/dev/tpmrm0')
    expect(A.checkTcti('swtpm:host=127.0.0.1,port=2321')).toBe('swtpm:host=127.0.0.1,port=2321')
    for (const bad of ['', 'device:/dev/tpm0;id', 'foo:bar', 'swtpm:host=$(x)']) expect(() => A.checkTcti(bad), bad).toThrow(ClientConfigError)
    expect(A.needsFlush('device:/dev/tpmrm0')).toBe(false)
    expect(A.needsFlush('device:/dev/tpm0')).toBe(true)
    expect(A.needsFlush('swtpm:host=127.0.0.1,port=1')).toBe(true)
  })

  it('quotes with the binding as hex qualifying data, SHA-256 signature hash and all three outputs', () => {
    const binding = new Uint8Array(32).map((_, i) => i)
    const t = A.quoteArgs('ak.ctx', 'sha256:7,0', binding, { msg: 'm', sig: 's', pcrs: 'p' })
    expect(t).toEqual({
      tool: 'tpm2_quote',
      args: ['-c', 'ak.ctx', '-l', 'sha256:0,7', '-q', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', '-g', 'sha256', '-m', 'm', '-s', 's', '-o', 'p'],
    })
    expect(() => A.quoteArgs('ak.ctx', 'sha256:0', new Uint8Array(31), { msg: 'm', sig: 's', pcrs: 'p' })).toThrow(ClientConfigError)
  })

  it('creates restricted signing AKs per algorithm and uses the EK policy session', () => {
    const f = { ctx: 'c', pub: 'u', priv: 'r', name: 'n' }
    expect(A.createAkArgs('rsa', 'ek', f).args).toEqual(['-C', 'ek', '-c', 'c', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'u', '-r', 'r', '-n', 'n'])
    expect(A.createAkArgs('ecc', 'ek', f).args).toEqual(['-C', 'ek', '-c', 'c', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'u', '-r', 'r', '-n', 'n'])
    expect(A.createEkArgs('ecc', 'e.ctx', 'e.pub')).toEqual({ tool: 'tpm2_createek', args: ['-c', 'e.ctx', '-G', 'ecc', '-u', 'e.pub'] })
    expect(A.ekSessionArgs('s.ctx')).toEqual([
      { tool: 'tpm2_startauthsession', args: ['--policy-session', '-S', 's.ctx'] },
      { tool: 'tpm2_policysecret', args: ['-S', 's.ctx', '-c', 'e'] },
    ])
    expect(A.activateCredentialArgs('ak', 'ek', 's.ctx', 'in', 'out').args).toEqual(['-c', 'ak', '-C', 'ek', '-i', 'in', '-o', 'out', '-P', 'session:s.ctx'])
    expect(A.loadAkArgs('ek', 's.ctx', { ctx: 'c', pub: 'u', priv: 'r' }).args).toEqual(['-C', 'ek', '-P', 'session:s.ctx', '-u', 'u', '-r', 'r', '-c', 'c'])
    expect(A.nvReadArgs(A.EK_CERT_NV_INDEX.rsa, 'o').args).toEqual(['-C', 'o', '0x1c00002', '-o', 'o'])
  })
})

/** A fake TPM: records each call and writes the files the real tools would. */
function fakeRunner(calls: string[], envs: string[]): ToolRunner {
  return async (t, env) => {
    calls.push(t.tool)
    envs.push(String(env.TPM2TOOLS_TCTI))
    const out = (flag: string): string | undefined => {
      const i = t.args.indexOf(flag)
      return i >= 0 ? t.args[i + 1] : undefined
    }
    if (t.tool === 'tpm2_createek') await writeFile(out('-u')!, 'EKPUB')
    if (t.tool === 'tpm2_createak') {
      await writeFile(out('-u')!, 'AKPUB')
      await writeFile(out('-r')!, 'AKPRIV')
    }
    if (t.tool === 'tpm2_quote') {
      await writeFile(out('-m')!, `MSG:${out('-q')}`)
      await writeFile(out('-s')!, 'SIG')
      await writeFile(out('-o')!, 'PCRS')
    }
    if (t.tool === 'tpm2_getcap') return '- 0x1C00002\n'
    if (t.tool === 'tpm2_nvread') await writeFile(out('-o')!, Buffer.from([0x30, 0x03, 1, 2, 3, 0, 0, 0]))
    if (t.tool === 'tpm2_activatecredential') await writeFile(out('-o')!, 'RECOVERED')
    return ''
  }
}

describe('TPM collector call sequence', () => {
  it('derives the EK, creates the AK once, quotes and assembles base64 evidence (swtpm: flushes)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-tpmargs-'))
    const calls: string[] = []
    const envs: string[] = []
    await writeFile(join(dir, 'log'), 'EVENTS')
    const c = createTpmCollector({ tcti: 'swtpm:host=127.0.0.1,port=5', stateDir: join(dir, 's'), eventLogPath: join(dir, 'log'), runner: fakeRunner(calls, envs) })
    const ev = await c.collect({ binding: new Uint8Array(32).fill(0xab), nonce: new Uint8Array(32) })
    expect(calls).toEqual(['tpm2_createek', 'tpm2_flushcontext', 'tpm2_createak', 'tpm2_flushcontext', 'tpm2_quote', 'tpm2_flushcontext'])
    expect(new Set(envs)).toEqual(new Set(['swtpm:host=127.0.0.1,port=5']))
    const b = (s: string): string => Buffer.from(s).toString('base64')
    expect(ev).toEqual({ ak: b('AKPUB'), quote: b(`MSG:${'ab'.repeat(32)}`), signature: b('SIG'), pcrs: b('PCRS'), eventLog: b('EVENTS') })
    calls.length = 0
    await c.collect({ binding: new Uint8Array(32), nonce: new Uint8Array(32) })
    expect(calls).toEqual(['tpm2_quote', 'tpm2_flushcontext'])
    // A second collector (new process) loads the stored AK under a fresh EK policy session.
    calls.length = 0
    const c2 = createTpmCollector({ tcti: 'device:/dev/tpmrm0', stateDir: join(dir, 's'), eventLogPath: null, runner: fakeRunner(calls, envs) })
    const ev2 = await c2.collect({ binding: new Uint8Array(32), nonce: new Uint8Array(32) })
    expect(calls).toEqual(['tpm2_createek', 'tpm2_startauthsession', 'tpm2_policysecret', 'tpm2_load', 'tpm2_flushcontext', 'tpm2_quote'])
    expect(ev2.eventLog).toBeUndefined()
    await rm(dir, { recursive: true, force: true })
  })

  it('registers: EK/AK publics, EK certificate trimmed to its DER length, activation through the broker', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-tpmargs-'))
    const calls: string[] = []
    const c = createTpmCollector({ tcti: 'device:/dev/tpmrm0', stateDir: dir, eventLogPath: null, runner: fakeRunner(calls, []) })
    const posts: Array<[string, unknown]> = []
    const r = await c.register(async (path, body) => {
      posts.push([path, body])
      return path.endsWith('register') ? { activationId: 'a1', credential: Buffer.from('CRED').toString('base64'), expiresAt: 'x' } : { akName: '000b00', workload: 'w', status: 'pending' }
    }, 'w', 'kwe.token')
    expect(r).toEqual({ akName: '000b00', workload: 'w', status: 'pending' })
    expect(posts[0]).toEqual(['/v1/tpm/register', { workload: 'w', enrolToken: 'kwe.token', ekPub: Buffer.from('EKPUB').toString('base64'), akPub: Buffer.from('AKPUB').toString('base64'), ekCert: Buffer.from([0x30, 3, 1, 2, 3]).toString('base64') }])
    expect(posts[1]).toEqual(['/v1/tpm/activate', { activationId: 'a1', secret: Buffer.from('RECOVERED').toString('base64') }])
    expect(calls.slice(-4)).toEqual(['tpm2_startauthsession', 'tpm2_policysecret', 'tpm2_activatecredential', 'tpm2_flushcontext'])
    await expect(c.register(async () => ({ activationId: 'a', credential: '!!' }), 'w')).rejects.toBeInstanceOf(ProtocolError)
    await expect(c.register(async () => ({ nope: 1 }), 'w')).rejects.toBeInstanceOf(ProtocolError)
    await rm(dir, { recursive: true, force: true })
  })
})
