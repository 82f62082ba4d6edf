// `keyward verify --tee nitro FILE [--at TIME] [--nonce HEX] [--user-data HEX]`: checks a raw
// CBOR attestation document (as /dev/nsm returns it) offline. --at evaluates certificate validity
// at a recorded time (ISO-8601, or epoch seconds / milliseconds); default now. --nonce and
// --user-data require the document's nonce / user_data to equal the given bytes.
import { readFileSync } from 'node:fs'
import { KeywardError } from '../errors.js'
import { fromHex } from '../util/bytes.js'
import { nitroVerifier } from '../verifiers/nitro/index.js'
import type { VerifyContext } from '../verifiers/types.js'
import type { VerifyCommand } from './verify.js'

const USAGE = 'usage: keyward verify --tee nitro FILE [--at TIME] [--nonce HEX] [--user-data HEX]'

/** ISO-8601, or an integer epoch: up to 10 digits are seconds, more are milliseconds. */
export function parseAtTime(s: string): Date {
  let d: Date
  if (/^\d+$/.test(s)) d = new Date(s.length <= 10 ? Number(s) * 1000 : Number(s))
  else if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s)) d = new Date(s)
  else d = new Date(Number.NaN)
  if (Number.isNaN(d.getTime())) throw new KeywardError('ERR_BAD_REQUEST', `--at: not an ISO-8601 time or epoch: ${s}`)
  return d
}

function hexArg(flag: string, v: string | undefined): Uint8Array {
  const b = v === undefined ? undefined : fromHex(v)
  if (b === undefined) throw new KeywardError('ERR_BAD_REQUEST', `${flag} needs a hex value`)
  return b
}

export const verifyNitroCommand: VerifyCommand = async (argv) => {
  const ctx: VerifyContext = { now: new Date() }
  let file: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const next = (): string | undefined => argv[++i]
    if (a === '--at') {
      const v = next()
      if (v === undefined) throw new KeywardError('ERR_BAD_REQUEST', '--at needs a time')
      ctx.now = parseAtTime(v)
    } else if (a === '--nonce') ctx.expectedNonce = hexArg(a, next())
    else if (a === '--user-data') ctx.expectedBinding = hexArg(a, next())
    else if (a.startsWith('-') || file !== undefined) throw new KeywardError('ERR_BAD_REQUEST', `unexpected argument ${a}; ${USAGE}`)
    else file = a
  }
  if (file === undefined) throw new KeywardError('ERR_BAD_REQUEST', USAGE)
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(readFileSync(file))
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `cannot read ${file}`, { cause: e })
  }
  return nitroVerifier.verify(nitroVerifier.parse(bytes), ctx)
}
