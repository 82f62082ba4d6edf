// `keyward verify --tee nitro`: the command module over the shared vectors.
import { describe, it, expect } from 'vitest'
import { verifyNitroCommand } from '../../../src/cli/verify-nitro.js'
import { parseAtTime } from '../../../src/cli/args.js'
import { readManifest, vectorPath } from '../../helpers/vectors.js'
import { errorCodeOf } from '../../helpers/errors.js'

const manifest = readManifest<{ vectors: { file: string; timestamp_ms: number; timestamp_iso: string; genuine: boolean; expected: string }[] }>('nitro')
const v = manifest.vectors.find((x) => x.file === 'pycape-20220714-204607-debug.cbor')!
const file = vectorPath('nitro', v.file)

const codeOf = (argv: string[]): Promise<string> => errorCodeOf(() => verifyNitroCommand(argv))

describe('verify --tee nitro', () => {
  it('verifies a recorded document at its time given as ISO-8601, epoch seconds or epoch ms', async () => {
    const c = await verifyNitroCommand([file, '--at', v.timestamp_iso])
    expect(c.details['timestamp']).toBe(v.timestamp_ms)
    expect(await codeOf(['--at', String(Math.floor(v.timestamp_ms / 1000)), file])).toBe('OK')
    expect(await codeOf([file, '--at', String(v.timestamp_ms)])).toBe('OK')
  })

  it('defaults to now, where the recorded document has expired', async () => {
    expect(await codeOf([file])).toBe('ERR_CERT_EXPIRED')
  })

  it('checks --nonce and --user-data', async () => {
    const c = await verifyNitroCommand([file, '--at', v.timestamp_iso])
    const nonce = Buffer.from(c.nonce!).toString('hex')
    expect(await codeOf([file, '--at', v.timestamp_iso, '--nonce', nonce])).toBe('OK')
    const flipped = (parseInt(nonce.slice(0, 2), 16) ^ 0xff).toString(16).padStart(2, '0') + nonce.slice(2)
    expect(await codeOf([file, '--at', v.timestamp_iso, '--nonce', flipped])).toBe('ERR_NONCE_MISMATCH')
    expect(await codeOf([file, '--at', v.timestamp_iso, '--user-data', 'ab'])).toBe('ERR_BINDING_MISMATCH')
  })

  it('rejects a bad command line with ERR_USAGE and an unreadable file with ERR_BAD_REQUEST', async () => {
    for (const argv of [[], [file, '--at'], [file, '--at', 'yesterday'], [file, '--nonce', 'xyz'], [file, file], [file, '--bogus'], [file, '--at', v.timestamp_iso, '--at', v.timestamp_iso]]) {
      expect(await codeOf(argv), argv.join(' ')).toBe('ERR_USAGE')
    }
    expect(await codeOf(['/nonexistent/doc.cbor'])).toBe('ERR_BAD_REQUEST')
    expect(parseAtTime('2021-03-17T22:01:55.685Z').getTime()).toBe(1616018515685)
  })
})
