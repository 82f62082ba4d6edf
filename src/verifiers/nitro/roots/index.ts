// The pinned AWS Nitro Enclaves root (G1), the trust anchor of every Nitro attestation document,
// enclave and NitroTPM alike. AWS publishes it as AWS_NitroEnclaves_Root-G1.zip with the SHA-256
// fingerprint below (Nitro Enclaves User Guide, "Verifying the root of trust"); the same bytes are
// beside this file as aws-nitro-enclaves-root-g1.pem for operators. The fingerprint is checked
// when this module loads, so a corrupted copy stops keyward instead of trusting another root.
import { KeywardError } from '../../../errors.js'
import { parseCertificate, type CertInfo } from '../../common/x509.js'

export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b'

export const AWS_NITRO_ROOT_G1_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`

/** Parses a PEM root and refuses it unless its DER has the pinned SHA-256 fingerprint (ERR_CONFIG). */
export function loadPinnedRoot(pem: string, sha256Hex: string): CertInfo {
  const info = parseCertificate(pem, 'pinned root')
  if (info.fingerprint !== sha256Hex.toLowerCase()) {
    throw new KeywardError('ERR_CONFIG', 'pinned root certificate does not match its fingerprint', {
      detail: { expected: sha256Hex, actual: info.fingerprint },
    })
  }
  return info
}

export const AWS_NITRO_ROOT_G1: CertInfo = loadPinnedRoot(AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256)
