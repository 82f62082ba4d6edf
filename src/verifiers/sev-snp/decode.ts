// Wire evidence of an SEV-SNP attestation (docs/protocol.md §sev-snp): `{report, vcek?,
// certTable?, chain?}`, base64. The report is parsed and the certificates located, but kept as
// DER: X.509 is parsed in verify(), after the broker has spent the challenge nonce on it.
import { z } from 'zod'
import { asEvidenceError } from '../../errors.js'
import { b64Field, decodeWire } from '../common/wire.js'
import { parseCertTable } from './certs.js'
import { parseAttestationReport, type AttestationReport } from './parse.js'

/**
 * Decoded `evidence` of a sev-snp attest request: the report parsed, the certificates located
 * (GHCB table entries bounds-checked) but kept as DER. X.509 is parsed in verify(): decode runs
 * before the broker spends the challenge nonce so that malformed structure costs no database
 * write, while certificate parsing (ASN.1 of up to seven certificates of up to 1 MiB each, the
 * attacker's choice) runs only once a nonce was spent on it, as for Nitro's cabundle (attest.ts).
 */
export interface SnpEvidence {
  report: AttestationReport
  /** DER of the VCEK or VLEK (from `vcek`, else the certificate table). */
  leafDer?: Uint8Array | undefined
  /** DER of the ASK/ASVK and ARK from the certificate table. */
  intermediateDer?: Uint8Array | undefined
  arkDer?: Uint8Array | undefined
  /** `chain` entries (DER), sorted into intermediate and ARK (self-issued) in verify(); they win over the table. */
  chainDers: Uint8Array[]
}

const MAX_FIELD_BYTES = 768 * 1024
const field = b64Field(MAX_FIELD_BYTES)
const SnpWire = z.strictObject({ report: field, vcek: field.optional(), certTable: field.optional(), chain: z.array(field).max(4).optional() })

/** Parses the wire evidence `{report, vcek?, certTable?, chain?}`; explicit fields win over the table. */
export function decodeSnpEvidence(wire: unknown): SnpEvidence {
  const e = decodeWire('sev-snp', SnpWire, '{report, vcek?, certTable?, chain?}', wire)
  try {
    const report = parseAttestationReport(e.report)
    const out: SnpEvidence = { report, chainDers: e.chain ?? [] }
    if (e.certTable !== undefined) {
      const t = parseCertTable(e.certTable)
      out.leafDer = report.signingKey === 'vlek' ? t.vlek : t.vcek
      out.intermediateDer = t.ask
      out.arkDer = t.ark
    }
    if (e.vcek !== undefined) out.leafDer = e.vcek
    return out
  } catch (err) {
    throw asEvidenceError(err, 'sev-snp evidence')
  }
}
