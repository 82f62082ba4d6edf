// The verifier registry: the broker dispatches /v1/attest by `tee` to one of these. Every entry
// has the one Verifier shape, so the registry is typed per TEE without casts.
import type { ClaimsOf } from '../protocol/claims.js'
import type { Tee } from '../protocol/tee.js'
import type { Verifier } from './types.js'
import { createTpmVerifier } from './tpm/index.js'
import { createNitroVerifier } from './nitro/index.js'
import { createSevSnpVerifier } from './sev-snp/index.js'

/** One verifier per TEE; each entry's `verify` returns that TEE's claims. */
export type VerifierRegistry = { readonly [T in Tee]: Verifier<unknown, ClaimsOf<T>> }

export function defaultVerifiers(opts: { snpCertCacheDir?: string | undefined } = {}): VerifierRegistry {
  return {
    tpm: createTpmVerifier(),
    nitro: createNitroVerifier(),
    'sev-snp': createSevSnpVerifier(opts.snpCertCacheDir ? { certCacheDir: opts.snpCertCacheDir } : {}),
  }
}
