// The TEEs keyward appraises: the one list the broker, the verifiers, policy and the enclave client share.
export const TEES = ['tpm', 'nitro', 'sev-snp'] as const
export type Tee = (typeof TEES)[number]
