// AMD endorsement-key certificates: the VCEK/VLEK extensions (AMD 57230 "Versioned Chip
// Endorsement Key (VCEK) Certificate and KDS Interface Specification", Table "VCEK Certificate
// Extensions"; the VLEK specification adds cspID) and the GHCB certificate table of an extended
// report (AMD 56421 "SEV-ES Guest-Hypervisor Communication Block Standardization", SNP extended
// guest request). Parsing only: nothing here is trusted until verify.ts checks signatures.
import 'reflect-metadata'
import * as px509 from '@peculiar/x509'
import { EvidenceMalformedError, KeywardError } from '../../errors.js'
import { toHex } from '../../util/bytes.js'
import type { CertInfo } from '../common/x509.js'
import { CERT_TABLE_ENTRY_SIZE, CERT_TABLE_GUID, OID, type SnpProduct } from './layout.js'

export interface AmdCertExtensions {
  structVersion: number | undefined
  /** productName1 as written, e.g. "Milan-B0", "Genoa", "Turin". */
  productName: string
  /** The product family named by productName1 (the part before "-"), when known. */
  product: SnpProduct | undefined
  blSPL: number
  teeSPL: number
  snpSPL: number
  ucodeSPL: number
  /** Turin VCEKs only (1.3.6.1.4.1.3704.1.3.9). */
  fmcSPL: number | undefined
  /** VCEK only: the raw hwID octets (64 bytes; Turin: 8 bytes = CHIP_ID[0..8]). */
  hwId: Uint8Array | undefined
  /** VLEK only: the cloud provider that loaded the key. */
  cspId: string | undefined
}

/** One DER TLV at `pos` (definite lengths only); throws on anything truncated or malformed. */
function readTlv(b: Uint8Array, pos: number, what: string): { tag: number; start: number; end: number } {
  if (pos + 2 > b.length) throw new EvidenceMalformedError(`${what}: truncated DER`)
  const tag = b[pos]!
  let len = b[pos + 1]!
  let start = pos + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 3 || start + n > b.length) throw new EvidenceMalformedError(`${what}: bad DER length`)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!
    start += n
  }
  const end = start + len
  if (end > b.length) throw new EvidenceMalformedError(`${what}: truncated DER value`)
  return { tag, start, end }
}

function derInteger(v: Uint8Array, what: string): number {
  const t = readTlv(v, 0, what)
  if (t.tag !== 0x02 || t.end !== v.length || t.end === t.start || t.end - t.start > 5) {
    throw new EvidenceMalformedError(`${what}: not a small DER INTEGER`)
  }
  if (v[t.start]! & 0x80) throw new EvidenceMalformedError(`${what}: negative INTEGER`)
  let n = 0
  for (let i = t.start; i < t.end; i++) n = n * 256 + v[i]!
  if (n > 0xff && what.endsWith('SPL')) throw new EvidenceMalformedError(`${what}: SPL ${n} exceeds a byte`)
  return n
}

function derString(v: Uint8Array, what: string): string {
  const t = readTlv(v, 0, what)
  // IA5String (0x16) per AMD 57230; UTF8String (0x0C) and PrintableString (0x13) tolerated.
  if ((t.tag !== 0x16 && t.tag !== 0x0c && t.tag !== 0x13) || t.end !== v.length) {
    throw new EvidenceMalformedError(`${what}: not a DER string`)
  }
  return Buffer.from(v.subarray(t.start, t.end)).toString('utf8')
}

const extCache = new Map<string, AmdCertExtensions>()

/**
 * Reads the AMD extensions of a VCEK or VLEK. Every TCB component a VCEK/VLEK must carry
 * (bl, tee, snp, ucode) is required; hwID is taken as the raw extension octets (AMD 57230), so a
 * DER-wrapped hwID fails to match CHIP_ID later rather than being unwrapped here.
 */
export function readAmdExtensions(leaf: CertInfo): AmdCertExtensions {
  const hit = extCache.get(leaf.fingerprint)
  if (hit) return hit
  let exts: px509.Extension[]
  try {
    exts = new px509.X509Certificate(leaf.cert.raw).extensions
  } catch (e) {
    throw new EvidenceMalformedError('VCEK/VLEK: unreadable extensions', { cause: e })
  }
  const byOid = new Map<string, Uint8Array>()
  for (const e of exts) {
    if (byOid.has(e.type)) throw new EvidenceMalformedError(`VCEK/VLEK: duplicate extension ${e.type}`)
    byOid.set(e.type, new Uint8Array(e.value))
  }
  const need = (oid: string, name: string): Uint8Array => {
    const v = byOid.get(oid)
    if (!v) throw new KeywardError('ERR_CHAIN_INVALID', `VCEK/VLEK: missing ${name} extension (${oid})`)
    return v
  }
  const productName = derString(need(OID.PRODUCT_NAME, 'productName1'), 'productName1')
  const family = productName.split('-')[0]
  const sv = byOid.get(OID.STRUCT_VERSION)
  const fmc = byOid.get(OID.FMC_SPL)
  const csp = byOid.get(OID.CSP_ID)
  const out: AmdCertExtensions = {
    structVersion: sv ? derInteger(sv, 'structVersion') : undefined,
    productName,
    product: family === 'Milan' || family === 'Genoa' || family === 'Turin' ? family : undefined,
    blSPL: derInteger(need(OID.BL_SPL, 'blSPL'), 'blSPL'),
    teeSPL: derInteger(need(OID.TEE_SPL, 'teeSPL'), 'teeSPL'),
    snpSPL: derInteger(need(OID.SNP_SPL, 'snpSPL'), 'snpSPL'),
    ucodeSPL: derInteger(need(OID.UCODE_SPL, 'ucodeSPL'), 'ucodeSPL'),
    fmcSPL: fmc ? derInteger(fmc, 'fmcSPL') : undefined,
    hwId: byOid.get(OID.HW_ID),
    cspId: csp ? derString(csp, 'cspID') : undefined,
  }
  if (extCache.size > 1024) extCache.clear()
  extCache.set(leaf.fingerprint, out)
  return out
}

export interface CertTable {
  vcek?: Uint8Array
  vlek?: Uint8Array
  ask?: Uint8Array
  ark?: Uint8Array
}

function guidString(b: Uint8Array): string {
  const h = toHex(b)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

/**
 * Parses the certificate table an extended guest request (or configfs-tsm `auxblob`) returns:
 * entries of {GUID[16], offset u32le, length u32le} ended by an all-zero entry, offsets relative
 * to the table start (AMD 56421, SNP Extended Guest Request). GUIDs in RFC 4122 byte order.
 * Unknown GUIDs are ignored; a duplicate known GUID, an entry pointing into the header or
 * outside the buffer, or a missing terminator is ERR_EVIDENCE_MALFORMED.
 */
export function parseCertTable(buf: Uint8Array): CertTable {
  const out: CertTable = {}
  const known = new Map<string, keyof CertTable>([
    [CERT_TABLE_GUID.VCEK, 'vcek'],
    [CERT_TABLE_GUID.VLEK, 'vlek'],
    [CERT_TABLE_GUID.ASK, 'ask'],
    [CERT_TABLE_GUID.ARK, 'ark'],
  ])
  const entries: { key: keyof CertTable | undefined; offset: number; length: number }[] = []
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let pos = 0
  for (;;) {
    if (pos + CERT_TABLE_ENTRY_SIZE > buf.length) throw new EvidenceMalformedError('certificate table: no terminating entry')
    const guid = buf.subarray(pos, pos + 16)
    const offset = view.getUint32(pos + 16, true)
    const length = view.getUint32(pos + 20, true)
    pos += CERT_TABLE_ENTRY_SIZE
    if (offset === 0 && length === 0 && guid.every((x) => x === 0)) break
    entries.push({ key: known.get(guidString(guid)), offset, length })
  }
  for (const e of entries) {
    if (e.key === undefined) continue
    if (e.offset < pos || e.offset + e.length > buf.length || e.length === 0) {
      throw new EvidenceMalformedError('certificate table: entry outside the table')
    }
    if (out[e.key]) throw new EvidenceMalformedError(`certificate table: duplicate ${e.key.toUpperCase()} entry`)
    out[e.key] = buf.slice(e.offset, e.offset + e.length)
  }
  return out
}

/** Builds a certificate table (the inverse of parseCertTable); used by tests and tools. */
export function buildCertTable(certs: CertTable): Uint8Array {
  const items = (Object.entries(certs) as [keyof CertTable, Uint8Array | undefined][]).filter(
    (e): e is [keyof CertTable, Uint8Array] => e[1] !== undefined,
  )
  const header = (items.length + 1) * CERT_TABLE_ENTRY_SIZE
  const total = header + items.reduce((n, [, v]) => n + v.length, 0)
  const out = new Uint8Array(total)
  const view = new DataView(out.buffer)
  let data = header
  items.forEach(([k, v], i) => {
    const guid = CERT_TABLE_GUID[k.toUpperCase() as keyof typeof CERT_TABLE_GUID].replace(/-/g, '')
    out.set(Buffer.from(guid, 'hex'), i * CERT_TABLE_ENTRY_SIZE)
    view.setUint32(i * CERT_TABLE_ENTRY_SIZE + 16, data, true)
    view.setUint32(i * CERT_TABLE_ENTRY_SIZE + 20, v.length, true)
    out.set(v, data)
    data += v.length
  })
  return out
}

export { readTlv }
