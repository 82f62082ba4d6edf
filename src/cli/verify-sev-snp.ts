// `keyward verify --tee sev-snp REPORT [--vcek FILE] [--chain FILE]... [--cert-table FILE]
//   [--crl FILE]... [--kds-dir DIR] [--at TIME] [--report-data HEX] [--allow-masked-chip-id]`
// Offline check of a raw 1184-byte ATTESTATION_REPORT. --vcek is the VCEK or VLEK (DER or PEM);
// --chain files (PEM or DER, a PEM file may hold several) supply the ASK/ASVK and ARK; without
// them the shipped AMD certificates for the product are used. --report-data is either the
// 32-byte binding digest (REPORT_DATA[0..32], rest zero) or all 64 bytes of REPORT_DATA.
import { readFileSync } from 'node:fs'
import { KeywardError } from '../errors.js'
import { constantTimeEqual, fromHex } from '../util/bytes.js'
import { parseCertificate, parsePemBundle, type CertInfo } from '../verifiers/common/x509.js'
import { createSevSnpVerifier } from '../verifiers/sev-snp/index.js'
import type { VerifyContext } from '../verifiers/types.js'
import type { VerifyCommand } from './verify.js'

const VALUE_FLAGS = ['--vcek', '--chain', '--cert-table', '--crl', '--kds-dir', '--at', '--report-data'] as const
const REPEATABLE = new Set(['--chain', '--crl'])
const BOOL_FLAGS = ['--allow-masked-chip-id'] as const

interface Args {
  report: string
  values: Map<string, string[]>
  bools: Set<string>
}

function parseArgs(argv: string[]): Args {
  const values = new Map<string, string[]>()
  const bools = new Set<string>()
  let report: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if ((BOOL_FLAGS as readonly string[]).includes(a)) {
      bools.add(a)
    } else if ((VALUE_FLAGS as readonly string[]).includes(a)) {
      const v = argv[++i]
      if (v === undefined) throw new KeywardError('ERR_BAD_REQUEST', `verify --tee sev-snp: ${a} needs a value`)
      const list = values.get(a) ?? []
      if (list.length > 0 && !REPEATABLE.has(a)) throw new KeywardError('ERR_BAD_REQUEST', `verify --tee sev-snp: ${a} given twice`)
      list.push(v)
      values.set(a, list)
    } else if (!a.startsWith('--') && report === undefined) {
      report = a
    } else {
      throw new KeywardError('ERR_BAD_REQUEST', `verify --tee sev-snp: unexpected argument ${a}`)
    }
  }
  if (report === undefined) throw new KeywardError('ERR_BAD_REQUEST', 'verify --tee sev-snp: REPORT file is required')
  return { report, values, bools }
}

function read(path: string, flag: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `${flag}: cannot read ${path}`, { cause: e })
  }
}

/** Certificates of a file: PEM (one or more) or a single DER certificate. */
function readCerts(path: string, flag: string): CertInfo[] {
  const b = read(path, flag)
  const text = Buffer.from(b).toString('latin1')
  return text.includes('-----BEGIN CERTIFICATE-----') ? parsePemBundle(text, flag) : [parseCertificate(b, flag)]
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

export const verifySevSnpCommand: VerifyCommand = async (argv) => {
  const a = parseArgs(argv)
  const one = (f: string): string | undefined => a.values.get(f)?.[0]
  const evidence: Record<string, unknown> = { report: b64(read(a.report, 'REPORT')) }
  const vcek = one('--vcek')
  if (vcek !== undefined) {
    const leaf = readCerts(vcek, '--vcek')
    if (leaf.length !== 1) throw new KeywardError('ERR_BAD_REQUEST', '--vcek must hold one certificate')
    evidence.vcek = b64(new Uint8Array(leaf[0]!.cert.raw))
  }
  const chain = (a.values.get('--chain') ?? []).flatMap((p) => readCerts(p, '--chain'))
  if (chain.length > 0) evidence.chain = chain.map((c) => b64(new Uint8Array(c.cert.raw)))
  const table = one('--cert-table')
  if (table !== undefined) evidence.certTable = b64(read(table, '--cert-table'))

  const at = one('--at')
  const now = at === undefined ? new Date() : new Date(at)
  if (Number.isNaN(now.getTime())) throw new KeywardError('ERR_BAD_REQUEST', '--at must be an ISO 8601 time')
  const ctx: VerifyContext = { now }
  const crls = (a.values.get('--crl') ?? []).map((p) => read(p, '--crl'))
  let fullReportData: Uint8Array | undefined
  const rd = one('--report-data')
  if (rd !== undefined) {
    const b = fromHex(rd.replace(/^0x/i, ''))
    if (!b || (b.length !== 32 && b.length !== 64)) throw new KeywardError('ERR_BAD_REQUEST', '--report-data must be 32 or 64 bytes of hex')
    if (b.length === 32) ctx.expectedBinding = b
    else fullReportData = b
  }
  const kdsDir = one('--kds-dir')
  const verifier = createSevSnpVerifier({
    crls,
    allowMaskedChipId: a.bools.has('--allow-masked-chip-id'),
    ...(kdsDir !== undefined ? { kdsDir } : {}),
  })
  const claims = await verifier.verify(verifier.decode(evidence), ctx)
  if (fullReportData && !constantTimeEqual(claims.bindingData, fullReportData)) {
    throw new KeywardError('ERR_BINDING_MISMATCH', 'REPORT_DATA differs from --report-data')
  }
  return claims
}
