// `keyward verify --tee nitro FILE [--at TIME] [--nonce HEX] [--user-data HEX]`: checks a raw
// CBOR attestation document (as /dev/nsm returns it) offline. --at evaluates certificate validity
// at a recorded time (ISO-8601, or epoch seconds / milliseconds); default now. --nonce and
// --user-data require the document's nonce / user_data to equal the given bytes.
import { fromHex } from '../util/bytes.js'
import type { VerifyContext } from '../verifiers/types.js'
import type { VerifiedClaims } from '../protocol/claims.js'
import { UsageError, parseAtTime, positionals, str } from './args.js'
import { readInput } from './read-input.js'
import { verifyClaims, type TeeVerifyCommand } from './verify-command.js'

const USAGE = 'usage: keyward verify --tee nitro FILE [--at TIME] [--nonce HEX] [--user-data HEX]'

function hexArg(flag: string, v: string | undefined): Uint8Array | undefined {
  if (v === undefined) return undefined
  const b = fromHex(v)
  if (b === undefined) throw new UsageError(`${flag} needs a hex value`, USAGE)
  return b
}

export const nitroVerify: TeeVerifyCommand = {
  usage: USAGE,
  options: { at: { type: 'string' }, nonce: { type: 'string' }, 'user-data': { type: 'string' } },
  async claims(args) {
    const [file] = positionals(args, ['FILE'], USAGE)
    const at = str(args.values.at)
    const ctx: VerifyContext = { now: at === undefined ? new Date() : parseAtTime(at) }
    const nonce = hexArg('--nonce', str(args.values.nonce))
    const userData = hexArg('--user-data', str(args.values['user-data']))
    if (nonce) ctx.expectedNonce = nonce
    if (userData) ctx.expectedBinding = userData
    const bytes = readInput(file!, 'FILE')
    const { createNitroVerifier, parseNitroDocument } = await import('../verifiers/nitro/index.js')
    return createNitroVerifier().verify(parseNitroDocument(bytes), ctx)
  },
}

/** `keyward verify --tee ...` without the printing: argv in, claims or a KeywardError out. */
export const verifyNitroCommand = (argv: string[]): Promise<VerifiedClaims> => verifyClaims(nitroVerify, argv)
