// The verifier registry: the broker dispatches /v1/attest by `tee` to one of these.
import type { Verifier } from './types.js'
import type { Tee } from '../protocol/tee.js'
import { tpmVerifier } from './tpm/index.js'
import { nitroVerifier } from './nitro/index.js'
import { createSevSnpVerifier } from './sev-snp/index.js'

export function defaultVerifiers(opts: { snpCertCacheDir?: string | undefined } = {}): Record<Tee, Verifier> {
  return {
    tpm: tpmVerifier as Verifier,
    nitro: nitroVerifier as Verifier,
    'sev-snp': createSevSnpVerifier(opts.snpCertCacheDir ? { certCacheDir: opts.snpCertCacheDir } : {}) as Verifier,
  }
}
