// A disk cache of AMD Key Distribution Service (KDS) certificates, laid out like the KDS URLs
// (AMD 57230 §"KDS Interface"), so a broker without internet works from pre-loaded files:
//
//   {dir}/vcek/v1/{product}/{hwid-hex}/blSPL={bl}&teeSPL={tee}&snpSPL={snp}&ucodeSPL={uc}[&fmcSPL={fmc}].der
//   {dir}/{vcek|vlek}/v1/{product}/cert_chain.pem      (ASK or ASVK, then ARK)
//   {dir}/{vcek|vlek}/v1/{product}/crl.der
//
// for https://kdsintf.amd.com/vcek/v1/{product}/{hwid}?blSPL=..., .../cert_chain, .../crl.
// The network is used only through an injected `fetch`; without one the cache is read-only.
// Nothing read from here is trusted: the verifier checks every certificate against pinned roots.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { KeywardError } from '../../errors.js'
import { toHex } from '../../util/bytes.js'
import { parseCertificate, parsePemBundle } from '../common/x509.js'
import type { SnpProduct } from './layout.js'
import type { TcbVersion } from './parse.js'

export const KDS_BASE = 'https://kdsintf.amd.com'

/** Fetches one KDS URL; resolves the body, or rejects. Injected so tests and offline brokers need no network. */
export type KdsFetch = (url: string) => Promise<Uint8Array>

export interface KdsCacheOptions {
  dir: string
  fetch?: KdsFetch
}

export interface KdsCache {
  /** The VCEK for a chip and TCB; undefined when neither the cache nor fetch has it. */
  getVcek(product: SnpProduct, hwId: Uint8Array, tcb: TcbVersion): Promise<Uint8Array | undefined>
  /** [intermediate (ASK or ASVK), ARK] as DER, or undefined. */
  getChain(product: SnpProduct, kind: 'vcek' | 'vlek'): Promise<Uint8Array[] | undefined>
  /** The product's CRL (DER), or undefined. */
  getCrl(product: SnpProduct, kind: 'vcek' | 'vlek'): Promise<Uint8Array | undefined>
  /** Stores a VCEK (pre-loading an offline broker). */
  putVcek(product: SnpProduct, hwId: Uint8Array, tcb: TcbVersion, der: Uint8Array): Promise<void>
}

/** The KDS path (and cache-relative path) of a VCEK. Turin VCEKs are keyed by CHIP_ID[0..8] and add fmcSPL. */
export function vcekPath(product: SnpProduct, hwId: Uint8Array, tcb: TcbVersion): { url: string; file: string } {
  const id = toHex(product === 'Turin' ? hwId.subarray(0, 8) : hwId)
  let q = `blSPL=${tcb.bootloader}&teeSPL=${tcb.tee}&snpSPL=${tcb.snp}&ucodeSPL=${tcb.microcode}`
  if (product === 'Turin') q += `&fmcSPL=${tcb.fmc ?? 0}`
  return { url: `${KDS_BASE}/vcek/v1/${product}/${id}?${q}`, file: join('vcek', 'v1', product, id, `${q}.der`) }
}

async function readOrUndefined(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new KeywardError('ERR_CONFIG', `KDS cache: cannot read ${path}`, { cause: e })
  }
}

async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true })
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
    await writeFile(tmp, data)
    await rename(tmp, path)
  } catch (e) {
    throw new KeywardError('ERR_CONFIG', `KDS cache: cannot write ${path}`, { cause: e })
  }
}

export function createKdsCache(opts: KdsCacheOptions): KdsCache {
  const { dir, fetch } = opts
  // Reads the cache; on a miss asks `fetch`, checks the body with `valid` and stores it.
  async function get(file: string, url: string, valid: (b: Uint8Array) => void): Promise<Uint8Array | undefined> {
    const path = join(dir, file)
    const hit = await readOrUndefined(path)
    if (hit || !fetch) return hit
    let body: Uint8Array
    try {
      body = await fetch(url)
    } catch (e) {
      throw new KeywardError('ERR_UPSTREAM_UNAVAILABLE', 'AMD KDS fetch failed', { cause: e, detail: { url } })
    }
    valid(body)
    await writeAtomic(path, body)
    return body
  }
  return {
    getVcek: (product, hwId, tcb) => {
      const p = vcekPath(product, hwId, tcb)
      return get(p.file, p.url, (b) => void parseCertificate(b, 'KDS VCEK'))
    },
    async getChain(product, kind) {
      const pem = await get(join(kind, 'v1', product, 'cert_chain.pem'), `${KDS_BASE}/${kind}/v1/${product}/cert_chain`, (b) => {
        if (parsePemBundle(Buffer.from(b).toString('utf8'), 'KDS cert_chain').length !== 2) {
          throw new KeywardError('ERR_EVIDENCE_MALFORMED', 'KDS cert_chain: expected two certificates')
        }
      })
      if (!pem) return undefined
      return parsePemBundle(Buffer.from(pem).toString('utf8'), 'KDS cert_chain').map((c) => new Uint8Array(c.cert.raw))
    },
    getCrl: (product, kind) => get(join(kind, 'v1', product, 'crl.der'), `${KDS_BASE}/${kind}/v1/${product}/crl`, () => undefined),
    putVcek: (product, hwId, tcb, der) => {
      parseCertificate(der, 'VCEK')
      return writeAtomic(join(dir, vcekPath(product, hwId, tcb).file), der)
    },
  }
}
