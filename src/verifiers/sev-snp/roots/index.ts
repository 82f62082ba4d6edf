// The AMD trust anchors keyward ships, pinned by the SHA-256 of their DER. loadAmdRoots() parses
// them and refuses to return anything whose fingerprint differs from the constant below, so an
// edited PEM cannot silently become a root.
import { KeywardError } from '../../../errors.js'
import { parseCertificate, type CertInfo } from '../../common/x509.js'
import type { SnpProduct } from '../layout.js'
import * as milan from './milan.js'
import * as genoa from './genoa.js'
import * as turin from './turin.js'

export const AMD_ROOT_FINGERPRINTS: Readonly<Record<SnpProduct, { ark: string; ask: string; asvk: string }>> = {
  Milan: {
    ark: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
    ask: '67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b',
    asvk: 'c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5',
  },
  Genoa: {
    ark: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1',
    ask: '5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521',
    asvk: '197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372',
  },
  Turin: {
    ark: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a',
    ask: '5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185',
    asvk: '104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c',
  },
}

export interface ProductRoots {
  ark: CertInfo
  ask: CertInfo
  asvk: CertInfo
}
export type AmdRoots = Readonly<Record<SnpProduct, ProductRoots>>

const PEMS: Record<SnpProduct, { ARK: string; ASK: string; ASVK: string }> = { Milan: milan, Genoa: genoa, Turin: turin }

function pinned(pem: string, want: string, what: string): CertInfo {
  const c = parseCertificate(pem, what)
  if (c.fingerprint !== want) {
    throw new KeywardError('ERR_CONFIG', `${what}: shipped certificate does not match its pinned fingerprint`, {
      detail: { want, got: c.fingerprint },
    })
  }
  return c
}

let loaded: AmdRoots | undefined

/** Parses the shipped ARK/ASK/ASVK for Milan, Genoa and Turin, checking each pinned fingerprint. */
export function loadAmdRoots(): AmdRoots {
  if (loaded) return loaded
  const out = {} as Record<SnpProduct, ProductRoots>
  for (const p of Object.keys(PEMS) as SnpProduct[]) {
    const f = AMD_ROOT_FINGERPRINTS[p]
    out[p] = {
      ark: pinned(PEMS[p].ARK, f.ark, `ARK-${p}`),
      ask: pinned(PEMS[p].ASK, f.ask, `SEV-${p}`),
      asvk: pinned(PEMS[p].ASVK, f.asvk, `SEV-VLEK-${p}`),
    }
  }
  loaded = Object.freeze(out)
  return loaded
}
