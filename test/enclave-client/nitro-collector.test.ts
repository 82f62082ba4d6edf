// The Nitro collector's NSM request/response CBOR, and the collector over a fake NSM device that
// answers with a genuine attestation document. The device itself exists only inside an enclave.
import { describe, it, expect } from 'vitest'
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encode } from 'cborg'
import {
  createNitroCollector, decodeAttestationResponse, encodeAttestationRequest, loadNsmAddon, type NsmTransport,
} from '../../enclave-client/src/collectors/nitro.js'
import { decodeCborStrict } from '../../src/protocol/cbor.js'
import { createNitroVerifier } from '../../src/verifiers/nitro/index.js'
import { concatBytes, toHex } from '../../src/util/bytes.js'
import { readManifest, readVector } from '../helpers/vectors.js'
import { errorCodeOf } from '../helpers/errors.js'

const binding = new Uint8Array(32).fill(0xbb)
const nonce = new Uint8Array(32).fill(0xaa)
const spki = new Uint8Array(91).fill(0x30)
const text = (s: string): string => {
  const b = Buffer.from(s)
  return (0x60 + b.length).toString(16) + b.toString('hex')
}


const manifest = readManifest<{ vectors: { file: string; timestamp_ms: number; nonce: { encoding: string } }[] }>('nitro')
const vec = manifest.vectors.find((v) => v.file === 'anjuna-20240124-181425-debug.cbor')!
const genuineDoc = readVector('nitro', vec.file)
const nsmResponse = (doc: Uint8Array): Uint8Array => encode(new Map([['Attestation', new Map([['document', doc]])]]))

describe('NSM Attestation request', () => {
  it('encodes {"Attestation": {nonce, user_data, public_key}} as deterministic CBOR', () => {
    const bytes = encodeAttestationRequest({ binding, nonce, publicKeyDer: spki })
    const expected =
      'a1' + text('Attestation') + 'a3' +
      text('nonce') + '5820' + toHex(nonce) +
      text('user_data') + '5820' + toHex(binding) +
      text('public_key') + '585b' + toHex(spki)
    expect(toHex(bytes)).toBe(expected)
    const m = decodeCborStrict(bytes) as Map<string, Map<string, unknown>>
    expect(m.get('Attestation')!.get('user_data')).toEqual(binding)
  })

  it('sends public_key as null when there is no key', () => {
    const m = decodeCborStrict(encodeAttestationRequest({ binding, nonce })) as Map<string, Map<string, unknown>>
    expect(m.get('Attestation')!.get('public_key')).toBeNull()
    expect(m.get('Attestation')!.get('nonce')).toEqual(nonce)
  })

  it('rejects wrong sizes with ERR_COLLECTOR', async () => {
    expect(await errorCodeOf(() => encodeAttestationRequest({ binding: binding.subarray(1), nonce }))).toBe('ERR_COLLECTOR')
    expect(await errorCodeOf(() => encodeAttestationRequest({ binding, nonce: new Uint8Array(64) }))).toBe('ERR_COLLECTOR')
    expect(await errorCodeOf(() => encodeAttestationRequest({ binding, nonce, publicKeyDer: new Uint8Array(1025) }))).toBe('ERR_COLLECTOR')
    expect(await errorCodeOf(() => encodeAttestationRequest({ binding, nonce, publicKeyDer: new Uint8Array(0) }))).toBe('ERR_COLLECTOR')
  })
})

describe('NSM Attestation response', () => {
  it('returns the document bytes', () => {
    expect(decodeAttestationResponse(nsmResponse(genuineDoc))).toEqual(genuineDoc)
  })

  it('reports NSM errors and malformed responses as ERR_COLLECTOR', async () => {
    const err = encode(new Map([['Error', 'InvalidArgument']]))
    await expect(Promise.resolve().then(() => decodeAttestationResponse(err))).rejects.toThrow(/InvalidArgument/)
    const bad: Uint8Array[] = [
      err,
      new Uint8Array(0),
      concatBytes(nsmResponse(genuineDoc), new Uint8Array([0])),
      nsmResponse(genuineDoc).subarray(0, 100),
      encode(new Map([['Attestation', new Map([['document', new Uint8Array(0)]])]])),
      encode(new Map([['Attestation', new Map([['doc', genuineDoc]])]])),
      encode(new Map([['Attestation', genuineDoc]])),
      encode(new Map<string, unknown>([['Attestation', new Map([['document', genuineDoc]])], ['Error', 'x']]) as never),
      encode(new Map([['DescribePCR', new Map([['lock', false]])]])),
      encode([1, 2]),
      new Uint8Array(0x3001),
    ]
    for (const b of bad) expect(await errorCodeOf(() => decodeAttestationResponse(b)), toHex(b.subarray(0, 12))).toBe('ERR_COLLECTOR')
  })
})

describe('nitro collector', () => {
  function fakeDevice(respond: (req: Uint8Array) => Uint8Array): { open: (p: string) => NsmTransport; log: { path: string; req?: Uint8Array; closed: boolean }[] } {
    const log: { path: string; req?: Uint8Array; closed: boolean }[] = []
    return {
      log,
      open: (path) => {
        const entry: { path: string; req?: Uint8Array; closed: boolean } = { path, closed: false }
        log.push(entry)
        return {
          request: (req) => {
            entry.req = req
            return respond(req)
          },
          close: () => {
            entry.closed = true
          },
        }
      },
    }
  }

  it('returns {document: base64} that the Nitro verifier accepts, and closes the device', async () => {
    const dev = fakeDevice(() => nsmResponse(genuineDoc))
    const c = createNitroCollector({ devicePath: '/dev/nsm-test', openTransport: dev.open })
    expect(c.tee).toBe('nitro')
    const evidence = await c.collect({ binding, nonce, publicKeyDer: spki })
    expect(dev.log).toHaveLength(1)
    expect(dev.log[0]!.path).toBe('/dev/nsm-test')
    expect(dev.log[0]!.closed).toBe(true)
    expect(dev.log[0]!.req).toEqual(encodeAttestationRequest({ binding, nonce, publicKeyDer: spki }))
    const nitroVerifier = createNitroVerifier()
    const claims = await nitroVerifier.verify(nitroVerifier.decode(evidence), { now: new Date(vec.timestamp_ms) })
    expect(claims.tee).toBe('nitro')
  })

  it('maps device failures and NSM errors to ERR_COLLECTOR and still closes the device', async () => {
    const failing = fakeDevice(() => {
      throw Object.assign(new Error('ioctl(NSM_IO_REQUEST): Input/output error'), { code: 'NSM_ERRNO_5' })
    })
    expect(await errorCodeOf(createNitroCollector({ openTransport: failing.open }).collect({ binding, nonce }))).toBe('ERR_COLLECTOR')
    expect(failing.log[0]!.closed).toBe(true)
    const nsmErr = fakeDevice(() => encode(new Map([['Error', 'InputTooLarge']])))
    expect(await errorCodeOf(createNitroCollector({ openTransport: nsmErr.open }).collect({ binding, nonce }))).toBe('ERR_COLLECTOR')
    const noOpen = createNitroCollector({ openTransport: () => { throw new Error('open: No such file or directory') } })
    expect(await errorCodeOf(noOpen.collect({ binding, nonce }))).toBe('ERR_COLLECTOR')
  })

  it('is available only where the device exists', async () => {
    expect(await createNitroCollector({ devicePath: '/nonexistent/nsm' }).available()).toBe(false)
    const dir = mkdtempSync(join(tmpdir(), 'keyward-nsm-'))
    try {
      writeFileSync(join(dir, 'nsm'), '')
      expect(await createNitroCollector({ devicePath: join(dir, 'nsm') }).available()).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('without /dev/nsm (or without the built addon) collecting fails with ERR_COLLECTOR, not a crash', async () => {
    expect(await errorCodeOf(() => loadNsmAddon('/nonexistent/nsm.node'))).toBe('ERR_COLLECTOR')
    expect(await errorCodeOf(createNitroCollector({ devicePath: '/nonexistent/nsm' }).collect({ binding, nonce }))).toBe('ERR_COLLECTOR')
  })

  const built = fileURLToPath(new URL('../../enclave-client/native/nsm/build/Release/nsm.node', import.meta.url))
  it.skipIf(!existsSync(built))('the built addon loads and reports errno from the device [needs:nsm]', () => {
    const a = loadNsmAddon(built)
    expect(() => a.open('/nonexistent/nsm')).toThrow(expect.objectContaining({ code: 'NSM_ERRNO_2' }))
    const fd = a.open('/dev/null')
    try {
      // /dev/null has no NSM ioctl: ENOTTY
      expect(() => a.request(fd, new Uint8Array([0xa0]))).toThrow(expect.objectContaining({ code: 'NSM_ERRNO_25' }))
      expect(() => a.request(fd, new Uint8Array(0))).toThrow(RangeError)
    } finally {
      a.close(fd)
    }
  })
})
