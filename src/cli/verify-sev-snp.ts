// `keyward verify --tee sev-snp REPORT [--vcek FILE] [--chain FILE]... [--cert-table FILE]
//   [--crl FILE]... [--kds-dir DIR] [--at TIME] [--report-data HEX] [--allow-masked-chip-id]`
// Offline check of a raw 1184-byte ATTESTATION_REPORT. --vcek is the VCEK or VLEK (DER or PEM);
// --chain files (PEM or DER, a PEM file may hold several) supply the ASK/ASVK and ARK; without
// them the shipped AMD certificates for the product are used. --report-data is either the
// 32-byte binding digest (REPORT_DATA[0..32], rest zero) or all 64 bytes of REPORT_DATA.
import { KeywardError } from '../errors.js'
import { constantTimeEqual, fromHex } from '../util/bytes.js'
import { parseCertificate, parsePemBundle, type CertInfo } from '../verifiers/common/x509.js'
import type { VerifyContext } from '../verifiers/types.js'
import type { VerifiedClaims } from '../protocol/claims.js'
import { UsageError, parseAtTime, positionals, str, strings } from './args.js'
import { readInput as read } from './read-input.js'
import { verifyClaims, type TeeVerifyCommand } from './verify-command.js'

const USAGE = 'usage: keyward verify --tee sev-snp REPORT [--vcek FILE] [--chain FILE]... [--cert-table FILE] [--crl FILE]... [--kds-dir DIR] [--at TIME] [--report-data HEX] [--allow-masked-chip-id]'

/** Certificates of a file: PEM (one or more) or a single DER certificate. */
function readCerts(path: string, flag: string): CertInfo[] {
  const b = read(path, flag)
  const text = Buffer.from(b).toString('latin1')
  return text.includes('-----BEGIN CERTIFICATE-----') ? parsePemBundle(text, flag) : [parseCertificate(b, flag)]
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

export const sevSnpVerify: TeeVerifyCommand = {
  usage: USAGE,
  options: {
    vcek: { type: 'string' },
    chain: { type: 'string', multiple: true },
    'cert-table': { type: 'string' },
    crl: { type: 'string', multiple: true },
    'kds-dir': { type: 'string' },
    at: { type: 'string' },
    'report-data': { type: 'string' },
    'allow-masked-chip-id': { type: 'boolean' },
  },
  claims: (args) => verifySevSnp(args.values, positionals(args, ['REPORT'], USAGE)[0]!),
}

async function verifySevSnp(values: Parameters<TeeVerifyCommand['claims']>[0]['values'], report: string): Promise<VerifiedClaims> {
  const one = (f: string): string | undefined => str(values[f])
  const evidence: Record<string, unknown> = { report: b64(read(report, 'REPORT')) }
  const vcek = one('vcek')
  if (vcek !== undefined) {
    const leaf = readCerts(vcek, '--vcek')
    if (leaf.length !== 1) throw new KeywardError('ERR_BAD_REQUEST', '--vcek must hold one certificate')
    evidence.vcek = b64(new Uint8Array(leaf[0]!.cert.raw))
  }
  const chain = strings(values.chain).flatMap((p) => readCerts(p, '--chain'))
  if (chain.length > 0) evidence.chain = chain.map((c) => b64(new Uint8Array(c.cert.raw)))
  const table = one('cert-table')
  if (table !== undefined) evidence.certTable = b64(read(table, '--cert-table'))

  const at = one('at')
  const now = at === undefined ? new Date() : parseAtTime(at)
  const ctx: VerifyContext = { now }
  const crls = strings(values.crl).map((p) => read(p, '--crl'))
  let fullReportData: Uint8Array | undefined
  const rd = one('report-data')
  if (rd !== undefined) {
    const b = fromHex(rd.replace(/^0x/i, ''))
    if (!b || (b.length !== 32 && b.length !== 64)) throw new UsageError('--report-data must be 32 or 64 bytes of hex', USAGE)
    if (b.length === 32) ctx.expectedBinding = b
    else fullReportData = b
  }
  const kdsDir = one('kds-dir')
  const { createSevSnpVerifier } = await import('../verifiers/sev-snp/index.js')
  const verifier = createSevSnpVerifier({
    crls,
    allowMaskedChipId: values['allow-masked-chip-id'] === true,
    ...(kdsDir !== undefined ? { kdsDir } : {}),
  })
  const claims = await verifier.verify(verifier.decode(evidence), ctx)
  if (fullReportData && !constantTimeEqual(claims.bindingData, fullReportData)) {
    throw new KeywardError('ERR_BINDING_MISMATCH', 'REPORT_DATA differs from --report-data')
  }
  return claims
}

/** `keyward verify --tee ...` without the printing: argv in, claims or a KeywardError out. */
export const verifySevSnpCommand = (argv: string[]): Promise<VerifiedClaims> => verifyClaims(sevSnpVerify, argv)
