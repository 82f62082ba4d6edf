// `keyward verify --tee tpm --ak AK --quote MSG --sig SIG --pcrs PCRS [--nonce HEX] [--eventlog LOG]`:
// offline check of tpm2-tools files. --nonce is compared raw with extraData, as tpm2_checkquote -q
// does (VerifyContext.expectedNonce); the AK is given explicitly, so no registry is consulted.
import { fromHex } from '../util/bytes.js'
import type { TpmEvidence } from '../verifiers/tpm/index.js'
import type { VerifyContext } from '../verifiers/types.js'
import type { VerifiedClaims } from '../protocol/claims.js'
import { UsageError, positionals, str } from './args.js'
import { readInput as read } from './read-input.js'
import { verifyClaims, type TeeVerifyCommand } from './verify-command.js'

const USAGE = 'usage: keyward verify --tee tpm --ak AK --quote MSG --sig SIG --pcrs PCRS [--nonce HEX] [--eventlog LOG]'
const REQUIRED = ['ak', 'quote', 'sig', 'pcrs'] as const

export const tpmVerify: TeeVerifyCommand = {
  usage: USAGE,
  options: { ak: { type: 'string' }, quote: { type: 'string' }, sig: { type: 'string' }, pcrs: { type: 'string' }, nonce: { type: 'string' }, eventlog: { type: 'string' } },
  async claims(args) {
    positionals(args, [], USAGE)
    const v = (f: string): string | undefined => str(args.values[f])
    for (const f of REQUIRED) if (v(f) === undefined) throw new UsageError(`--${f} is required`, USAGE)
    const ctx: VerifyContext = { now: new Date() }
    const nonceHex = v('nonce')
    if (nonceHex !== undefined) {
      const n = fromHex(nonceHex.replace(/^0x/i, ''))
      if (!n) throw new UsageError('--nonce must be hex', USAGE)
      ctx.expectedNonce = n
    }
    const tpm = await import('../verifiers/tpm/index.js')
    const evidence: TpmEvidence = {
      ak: tpm.parseAkPublic(read(v('ak')!, '--ak')),
      attest: tpm.parseAttest(read(v('quote')!, '--quote')),
      signature: tpm.parseSignature(read(v('sig')!, '--sig')),
      pcrs: tpm.parsePcrsFile(read(v('pcrs')!, '--pcrs')),
    }
    const eventlog = v('eventlog')
    if (eventlog !== undefined) evidence.eventLog = tpm.parseEventLog(read(eventlog, '--eventlog'))
    return tpm.createTpmVerifier().verify(evidence, ctx)
  },
}

/** `keyward verify --tee ...` without the printing: argv in, claims or a KeywardError out. */
export const verifyTpmCommand = (argv: string[]): Promise<VerifiedClaims> => verifyClaims(tpmVerify, argv)
