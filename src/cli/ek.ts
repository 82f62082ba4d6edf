// `keyward ek`: the endorsement-key list. `allow` lets a TPM enrol as a name without approval;
// denials come from `keyward ak revoke NAME --deny-ek` and are lifted with `ek undeny`.
import { readFileSync } from 'node:fs'
import { createPublicKey } from 'node:crypto'
import * as E from '../broker/enrolment.js'
import { parseCertificate } from '../verifiers/common/x509.js'
import { parseTpmPublic, publicKeyOf } from '../verifiers/tpm/index.js'
import { UsageError, positionals, str, type CommandGroup, type ParsedArgs } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, out, who, withDeps } from './store-deps.js'

const ALLOW = `usage: keyward ek allow --workload NAME (--ek-cert FILE | --ek-pub FILE | --fingerprint HEX) [--note TEXT]
  --ek-cert: the EK certificate (DER or PEM), matched by its SHA-256 fingerprint;
  --ek-pub: the EK public key (PEM SPKI, or TPM2B_PUBLIC as tpm2_createek -u writes), matched by SHA-256 of its SPKI`
const LIST = 'usage: keyward ek list'
const REMOVE = 'usage: keyward ek remove ENTRY_ID'
const UNDENY = 'usage: keyward ek undeny HEX          lift a denial (from ak revoke --deny-ek)'

/** The digest an EK is listed by, from whichever form the admin has. */
function ekDigest(v: ParsedArgs['values']): string {
  const cert = str(v['ek-cert'])
  const pub = str(v['ek-pub'])
  const fingerprint = str(v.fingerprint)
  if ([cert, pub, fingerprint].filter((x) => x !== undefined).length !== 1) throw new UsageError('give exactly one of --ek-cert, --ek-pub, --fingerprint', ALLOW)
  if (fingerprint !== undefined) return E.checkEkDigest(fingerprint)
  if (cert !== undefined) return parseCertificate(new Uint8Array(readFileSync(cert)), 'EK certificate').fingerprint
  const bytes = readFileSync(pub!)
  const text = bytes.toString('latin1')
  const key = text.includes('-----BEGIN PUBLIC KEY-----') ? createPublicKey(text) : publicKeyOf(parseTpmPublic(new Uint8Array(bytes)))
  return E.ekPublicDigest(key)
}

const ek: CommandGroup = {
  usage: [ALLOW, LIST, REMOVE, UNDENY].map((u) => u.replace(/^usage: /, '       ')).join('\n').replace(/^ {7}/, 'usage: ') + `\n${STORE_USAGE}`,
  commands: {
    allow: {
      usage: ALLOW,
      options: { ...STORE_OPTIONS, workload: { type: 'string' }, 'ek-cert': { type: 'string' }, 'ek-pub': { type: 'string' }, fingerprint: { type: 'string' }, note: { type: 'string' } },
      run: (args) => {
        positionals(args, [], ALLOW)
        const workload = str(args.values.workload)
        if (!workload) throw new UsageError('ek allow needs --workload NAME', ALLOW)
        const digest = ekDigest(args.values)
        return withDeps(args.values, async (deps) => (out(await E.allowEk(deps, digest, workload, who(), str(args.values.note) ?? null)), 0))
      },
    },
    list: {
      usage: LIST,
      options: STORE_OPTIONS,
      run: (args) => {
        positionals(args, [], LIST)
        return withDeps(args.values, async (deps) => (out({ eks: await deps.store.listEkEntries() }), 0))
      },
    },
    remove: {
      usage: REMOVE,
      options: STORE_OPTIONS,
      run: (args) => {
        const [id] = positionals(args, ['ENTRY_ID'], REMOVE)
        return withDeps(args.values, async (deps) => (await E.removeEkEntry(deps, id!, who()), out(`removed ${id}`), 0))
      },
    },
    undeny: {
      usage: UNDENY,
      options: STORE_OPTIONS,
      run: (args) => {
        const [hex] = positionals(args, ['HEX'], UNDENY)
        return withDeps(args.values, async (deps) => (out({ undenied: E.checkEkDigest(hex!), entries: await E.undenyEk(deps, hex!, who()) }), 0))
      },
    },
  },
}
export default ek
