// Argument lists for the tpm2-tools 5.x commands the TPM collector runs (pure, unit-tested).
// Each function returns argv for execFile: no shell, no string interpolation of user input
// into a command line. Flags follow the tpm2-tools man pages (tpm2_createek(1), tpm2_createak(1),
// tpm2_load(1), tpm2_quote(1), tpm2_activatecredential(1), tpm2_policysecret(1)).
import { toHex } from '../../../src/util/bytes.js'
import { ClientConfigError } from '../errors.js'

export type TpmKeyAlg = 'rsa' | 'ecc'

export interface Tool {
  tool: string
  args: string[]
}

/** Default quote selection: the SRTM/boot PCRs plus the exec-allowlist PCR 15 (docs/allowlist-state.md). */
export const DEFAULT_PCR_SELECTION = 'sha256:0,1,2,3,4,5,6,7,15'

/** TCG EK Credential Profile 2.0 §2.2.1.5: NV indices of the low-range EK certificates. */
export const EK_CERT_NV_INDEX: Record<TpmKeyAlg, number> = { rsa: 0x01c00002, ecc: 0x01c0000a }

const BANKS = new Set(['sha1', 'sha256', 'sha384', 'sha512', 'sm3_256'])

/**
 * Validates a tpm2-tools PCR selection list (`bank:i,j+bank:k`) and returns it normalized
 * (lowercase, sorted, duplicates removed). PCR indices 0..23 (PC Client: 24 PCRs).
 */
export function parsePcrSelection(sel: string): string {
  const banks = sel.trim().toLowerCase().split('+')
  const seen = new Set<string>()
  const out: string[] = []
  for (const b of banks) {
    const m = /^([a-z0-9_]+):([0-9]+(?:,[0-9]+)*)$/.exec(b)
    if (!m || !BANKS.has(m[1]!)) throw new ClientConfigError(`bad PCR selection "${sel}": expected e.g. sha256:0,1,2,7`)
    if (seen.has(m[1]!)) throw new ClientConfigError(`bad PCR selection "${sel}": bank ${m[1]} listed twice`)
    seen.add(m[1]!)
    const idx = [...new Set(m[2]!.split(',').map(Number))].sort((a, b) => a - b)
    if (idx.some((i) => i > 23)) throw new ClientConfigError(`bad PCR selection "${sel}": PCR index above 23`)
    out.push(`${m[1]}:${idx.join(',')}`)
  }
  return out.join('+')
}

/** Accepts the TCTI forms tpm2-tools knows (`device:/dev/tpmrm0`, `swtpm:host=…,port=…`, `mssim:…`, `tabrmd:…`),
 * never `cmd:`, which runs a program named in the option (an injected option would run code). */
export function checkTcti(tcti: string): string {
  if (!/^(device|swtpm|mssim|tabrmd|libtpms)(:[A-Za-z0-9_./=,:-]*)?$/.test(tcti)) {
    throw new ClientConfigError(`bad TCTI "${tcti}": expected e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321`)
  }
  return tcti
}

/** Whether the TCTI talks to the TPM without a resource manager (transient objects then stay loaded). */
export function needsFlush(tcti: string): boolean {
  return !/^device:\/dev\/tpmrm\d+$/.test(tcti) && !tcti.startsWith('tabrmd')
}

export function createEkArgs(alg: TpmKeyAlg, ctx: string, pub: string): Tool {
  return { tool: 'tpm2_createek', args: ['-c', ctx, '-G', alg, '-u', pub] }
}

export function readPublicArgs(handle: string, pub: string): Tool {
  return { tool: 'tpm2_readpublic', args: ['-c', handle, '-o', pub] }
}

/** A restricted signing key under the EK (tpm2_createak sets fixedTPM|fixedParent|sensitiveDataOrigin|restricted|sign). */
export function createAkArgs(alg: TpmKeyAlg, ek: string, f: { ctx: string; pub: string; priv: string; name: string }): Tool {
  const scheme = alg === 'rsa' ? ['-G', 'rsa', '-g', 'sha256', '-s', 'rsassa'] : ['-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa']
  return { tool: 'tpm2_createak', args: ['-C', ek, '-c', f.ctx, ...scheme, '-u', f.pub, '-r', f.priv, '-n', f.name] }
}

/** The EK's authPolicy is PolicySecret(TPM_RH_ENDORSEMENT) (EK Credential Profile §B.3.3), so its uses need this session. */
export function ekSessionArgs(session: string): Tool[] {
  return [
    { tool: 'tpm2_startauthsession', args: ['--policy-session', '-S', session] },
    { tool: 'tpm2_policysecret', args: ['-S', session, '-c', 'e'] },
  ]
}

export function loadAkArgs(ek: string, session: string, f: { ctx: string; pub: string; priv: string }): Tool {
  return { tool: 'tpm2_load', args: ['-C', ek, '-P', `session:${session}`, '-u', f.pub, '-r', f.priv, '-c', f.ctx] }
}

export function quoteArgs(ak: string, selection: string, binding: Uint8Array, f: { msg: string; sig: string; pcrs: string }): Tool {
  if (binding.length !== 32) throw new ClientConfigError('qualifying data must be the 32-byte binding digest')
  return {
    tool: 'tpm2_quote',
    args: ['-c', ak, '-l', parsePcrSelection(selection), '-q', toHex(binding), '-g', 'sha256', '-m', f.msg, '-s', f.sig, '-o', f.pcrs],
  }
}

export function activateCredentialArgs(ak: string, ek: string, session: string, credential: string, out: string): Tool {
  return { tool: 'tpm2_activatecredential', args: ['-c', ak, '-C', ek, '-i', credential, '-o', out, '-P', `session:${session}`] }
}

export function nvReadArgs(index: number, out: string): Tool {
  return { tool: 'tpm2_nvread', args: ['-C', 'o', `0x${index.toString(16)}`, '-o', out] }
}

export function flushArgs(what: '-t' | '-s' | string): Tool {
  return { tool: 'tpm2_flushcontext', args: [what] }
}
