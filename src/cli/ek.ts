// `keyward ek`: the endorsement-key list. `allow` lets a TPM enrol as a name without approval;
// denials come from `keyward ak revoke NAME --deny-ek` and are lifted with `ek undeny`.
import { readFileSync } from 'node:fs'
import { createPublicKey } from 'node:crypto'
import { KeywardError } from '../errors.js'
import * as E from '../broker/enrolment.js'
import { parseCertificate } from '../verifiers/common/x509.js'
import { parseTpmPublic, publicKeyOf } from '../verifiers/tpm/index.js'
import { parseCommand, type AdminCli } from './enrol.js'

export const EK_USAGE = `keyward ek allow --workload NAME (--ek-cert FILE | --ek-pub FILE | --fingerprint HEX) [--note TEXT]
keyward ek list
keyward ek remove ENTRY_ID
keyward ek undeny HEX          lift a denial (from ak revoke --deny-ek)
--ek-cert: the EK certificate (DER or PEM), matched by its SHA-256 fingerprint;
--ek-pub: the EK public key (PEM SPKI, or TPM2B_PUBLIC as tpm2_createek -u writes), matched by SHA-256 of its SPKI;
options: --data-dir DIR, --config FILE`

/** The digest an EK is listed by, from whichever form the admin has. */
function ekDigest(v: Record<string, string | undefined>): string {
  const given = [v['ek-cert'], v['ek-pub'], v.fingerprint].filter((x) => x !== undefined)
  if (given.length !== 1) throw new KeywardError('ERR_BAD_REQUEST', `give exactly one of --ek-cert, --ek-pub, --fingerprint\n${EK_USAGE}`)
  if (v.fingerprint !== undefined) return E.checkEkDigest(v.fingerprint)
  if (v['ek-cert'] !== undefined) return parseCertificate(new Uint8Array(readFileSync(v['ek-cert'])), 'EK certificate').fingerprint
  const bytes = readFileSync(v['ek-pub']!)
  const text = bytes.toString('latin1')
  const key = text.includes('-----BEGIN PUBLIC KEY-----') ? createPublicKey(text) : publicKeyOf(parseTpmPublic(new Uint8Array(bytes)))
  return E.ekPublicDigest(key)
}

export async function ekCommand(argv: string[], cli: AdminCli): Promise<number> {
  const { values, positionals } = parseCommand(argv, {
    workload: { type: 'string' }, 'ek-cert': { type: 'string' }, 'ek-pub': { type: 'string' }, fingerprint: { type: 'string' }, note: { type: 'string' },
  })
  const [sub, arg, ...extra] = positionals
  if (values.help) return cli.out(EK_USAGE), 0
  const usage = (m: string) => new KeywardError('ERR_BAD_REQUEST', `${m}\n${EK_USAGE}`)
  if (extra.length > 0) throw usage('too many arguments')
  switch (sub) {
    case 'allow': {
      const workload = values.workload
      if (!workload || arg) throw usage('ek allow needs --workload NAME')
      const ek = ekDigest(values)
      return cli.withDeps(values, async (deps) => (cli.out(await E.allowEk(deps, ek, workload, cli.who(), values.note ?? null)), 0))
    }
    case 'list':
      return cli.withDeps(values, async (deps) => (cli.out({ eks: await deps.store.listEkEntries() }), 0))
    case 'remove':
      if (!arg) throw usage('ek remove needs an ENTRY_ID')
      return cli.withDeps(values, async (deps) => (await E.removeEkEntry(deps, arg, cli.who()), cli.out(`removed ${arg}`), 0))
    case 'undeny':
      if (!arg) throw usage('ek undeny needs the denied EK digest (ek list)')
      return cli.withDeps(values, async (deps) => (cli.out({ undenied: E.checkEkDigest(arg), entries: await E.undenyEk(deps, arg, cli.who()) }), 0))
    default:
      throw usage(sub ? `unknown ek command ${sub}` : 'ek needs a command')
  }
}
