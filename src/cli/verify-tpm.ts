// `keyward verify --tee tpm --ak AK --quote MSG --sig SIG --pcrs PCRS [--nonce HEX] [--eventlog LOG]`:
// offline check of tpm2-tools files. --nonce is compared raw with extraData, as tpm2_checkquote -q
// does; the AK is given explicitly, so no registry is consulted.
import { readFileSync } from 'node:fs'
import { KeywardError } from '../errors.js'
import { fromHex } from '../util/bytes.js'
import type { VerifyCommand } from './verify.js'
import { parseAkPublic, parseAttest, parseEventLog, parsePcrsFile, parseSignature, verifyTpmEvidence, type TpmEvidence, type TpmVerifyOptions } from '../verifiers/tpm/index.js'

const FLAGS = ['--ak', '--quote', '--sig', '--pcrs', '--nonce', '--eventlog'] as const
type Flag = (typeof FLAGS)[number]

function parseArgs(argv: string[]): Partial<Record<Flag, string>> {
  const out: Partial<Record<Flag, string>> = {}
  for (let i = 0; i < argv.length; i += 2) {
    const f = argv[i] as Flag
    const v = argv[i + 1]
    if (!(FLAGS as readonly string[]).includes(f) || v === undefined) throw new KeywardError('ERR_BAD_REQUEST', `verify --tee tpm: unexpected argument ${argv[i]}`)
    if (out[f] !== undefined) throw new KeywardError('ERR_BAD_REQUEST', `verify --tee tpm: ${f} given twice`)
    out[f] = v
  }
  for (const f of ['--ak', '--quote', '--sig', '--pcrs'] as const) {
    if (out[f] === undefined) throw new KeywardError('ERR_BAD_REQUEST', `verify --tee tpm: ${f} is required`)
  }
  return out
}

function read(path: string, flag: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `${flag}: cannot read ${path}`, { cause: e })
  }
}

export const verifyTpmCommand: VerifyCommand = async (argv) => {
  const a = parseArgs(argv)
  const evidence: TpmEvidence = {
    ak: parseAkPublic(read(a['--ak']!, '--ak')),
    attest: parseAttest(read(a['--quote']!, '--quote')),
    signature: parseSignature(read(a['--sig']!, '--sig')),
    pcrs: parsePcrsFile(read(a['--pcrs']!, '--pcrs')),
  }
  if (a['--eventlog'] !== undefined) evidence.eventLog = parseEventLog(read(a['--eventlog'], '--eventlog'))
  const opts: TpmVerifyOptions = {}
  if (a['--nonce'] !== undefined) {
    const n = fromHex(a['--nonce'].replace(/^0x/i, ''))
    if (!n) throw new KeywardError('ERR_BAD_REQUEST', '--nonce must be hex')
    opts.expected = { value: n, code: 'ERR_NONCE_MISMATCH' }
  }
  return verifyTpmEvidence(evidence, opts)
}
