// The shipped AWS Nitro Enclaves root: pinned by fingerprint, identical to the PEM beside it and
// to the shared vectors' copy, and refused when the fingerprint does not match.
import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { AWS_NITRO_ROOT_G1, AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256, loadPinnedRoot } from '../../../src/verifiers/nitro/roots/index.js'
import { parseCertificate } from '../../../src/verifiers/common/x509.js'
import { readManifest, readVector } from '../../helpers/vectors.js'

describe('pinned AWS Nitro root', () => {
  it('has the fingerprint AWS publishes and the manifest records', () => {
    expect(AWS_NITRO_ROOT_G1_SHA256).toBe('641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b')
    expect(AWS_NITRO_ROOT_G1.fingerprint).toBe(AWS_NITRO_ROOT_G1_SHA256)
    expect(readManifest<{ root: { sha256_der: string } }>('nitro').root.sha256_der).toBe(AWS_NITRO_ROOT_G1_SHA256)
    expect(AWS_NITRO_ROOT_G1.isCA).toBe(true)
    expect(AWS_NITRO_ROOT_G1.cert.subject).toContain('CN=aws.nitro-enclaves')
  })

  it('is the same certificate as the shipped PEM file and the shared vector', () => {
    const pemFile = readFileSync(fileURLToPath(new URL('../../../src/verifiers/nitro/roots/aws-nitro-enclaves-root-g1.pem', import.meta.url)), 'utf8')
    expect(pemFile.trim()).toBe(AWS_NITRO_ROOT_G1_PEM.trim())
    const shared = Buffer.from(readVector('nitro', 'aws-nitro-root-g1.pem')).toString('utf8')
    expect(parseCertificate(shared).fingerprint).toBe(AWS_NITRO_ROOT_G1_SHA256)
  })

  it('refuses a root whose fingerprint differs (ERR_CONFIG)', () => {
    expect(() => loadPinnedRoot(AWS_NITRO_ROOT_G1_PEM, '00'.repeat(32))).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }))
    expect(loadPinnedRoot(AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256.toUpperCase()).fingerprint).toBe(AWS_NITRO_ROOT_G1_SHA256)
  })
})
