// The session key: a fresh key pair per client session. The broker binds its token to the
// key's thumbprint (cnf.jkt), the client proves possession with DPoP proofs (RFC 9449) and the
// broker encrypts released secrets to it (JWE, docs/protocol.md step 5).
//
// WebCrypto ties a CryptoKey to one algorithm, yet the same key pair must sign (DPoP: ECDSA or
// RSA-PSS) and decrypt (ECDH-ES or RSA-OAEP). So the pair is generated once, its PKCS#8 bytes
// are imported twice as non-extractable keys (one per algorithm) and then zeroed; only the
// public JWK is ever exported.
import 'reflect-metadata'
import { randomUUID, webcrypto } from 'node:crypto'
import * as px509 from '@peculiar/x509'
import { SignJWT, compactDecrypt, type JWK } from 'jose'
import { jwkThumbprint, thumbprintBytes } from '../../src/protocol/binding.js'
import { sha256, toB64url } from '../../src/util/bytes.js'
import { DecryptError } from './errors.js'
import { CLIENT_ATTESTATION_POP_TYP } from '../../src/protocol/oauth.js'

const subtle = webcrypto.subtle

export const KEY_ALGS = ['ES256', 'ES384', 'RSA-OAEP-256'] as const
export type KeyAlg = (typeof KEY_ALGS)[number]

export interface SessionKey {
  readonly keyAlg: KeyAlg
  /** The public JWK sent in /v1/attest (kty and key members only). */
  readonly publicJwk: JWK
  /** RFC 7638 SHA-256 thumbprint, base64url (the token's cnf.jkt). */
  readonly jkt: string
  /** The same thumbprint as raw 32 bytes (the binding's `jkt` part). */
  readonly jktBytes: Uint8Array
  /** The public key as DER SubjectPublicKeyInfo (Nitro's `public_key`). */
  readonly spki: Uint8Array
  /** JWS alg of DPoP proofs made with this key. */
  readonly dpopAlg: 'ES256' | 'ES384' | 'PS256'
  /**
   * Signs a DPoP proof for one request (RFC 9449 §4.2). Without an access token (POST
   * /v1/attest) there is no `ath`; `nonce` is the server's (there: the challenge nonce).
   */
  dpopProof(method: string, url: string, accessToken?: string, nonce?: string): Promise<string>
  /**
   * Signs a Client Attestation PoP (draft-ietf-oauth-attestation-based-client-auth §4.3) for the
   * authorization server `audience` (its RFC 8414 issuer identifier).
   */
  clientAttestationPop(audience: string, challenge?: string): Promise<string>
  /** The key pair as WebCrypto keys (the private one non-extractable), for OAuth libraries that make DPoP proofs themselves. */
  readonly cryptoKeyPair: { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey }
  /** Decrypts a compact JWE addressed to this key; throws DecryptError on any failure. */
  decrypt(jwe: string): Promise<Uint8Array>
  /** A PKCS#10 CSR (DER) for this key, signed by it: what POST /v1/spiffe/x509-svid certifies. */
  certificationRequest(): Promise<Uint8Array>
  /**
   * The private key as PKCS#8 PEM, for a child that presents the X509-SVID (svid.key). Only for a
   * key made with `exportable: true`; otherwise the private key never leaves its CryptoKeys.
   */
  privateKeyPem(): string
}

interface Params {
  gen: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams
  sign: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams
  enc: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams
  dpopAlg: 'ES256' | 'ES384' | 'PS256'
  jweAlgs: string[]
}

function params(alg: KeyAlg): Params {
  switch (alg) {
    case 'ES256':
    case 'ES384': {
      const namedCurve = alg === 'ES256' ? 'P-256' : 'P-384'
      return {
        gen: { name: 'ECDSA', namedCurve },
        sign: { name: 'ECDSA', namedCurve },
        enc: { name: 'ECDH', namedCurve },
        dpopAlg: alg,
        jweAlgs: ['ECDH-ES+A256KW', 'ECDH-ES'],
      }
    }
    case 'RSA-OAEP-256': {
      const rsa = { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      return {
        gen: { name: 'RSA-PSS', ...rsa },
        sign: { name: 'RSA-PSS', hash: 'SHA-256' },
        enc: { name: 'RSA-OAEP', hash: 'SHA-256' },
        dpopAlg: 'PS256',
        jweAlgs: ['RSA-OAEP-256'],
      }
    }
  }
}

/**
 * Makes a fresh session key. The private halves are non-extractable CryptoKeys; with
 * `exportable` (keyward-client run --svid) the PKCS#8 bytes are kept for privateKeyPem().
 */
export async function createSessionKey(keyAlg: KeyAlg = 'ES256', opts: { exportable?: boolean } = {}): Promise<SessionKey> {
  const p = params(keyAlg)
  const pair = (await subtle.generateKey(p.gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey))
  let signKey: webcrypto.CryptoKey
  let decKey: webcrypto.CryptoKey
  try {
    signKey = await subtle.importKey('pkcs8', pkcs8, p.sign, false, ['sign'])
    decKey = await subtle.importKey('pkcs8', pkcs8, p.enc, false, keyAlg === 'RSA-OAEP-256' ? ['decrypt', 'unwrapKey'] : ['deriveBits'])
  } finally {
    if (!opts.exportable) pkcs8.fill(0)
  }
  const full = (await subtle.exportKey('jwk', pair.publicKey)) as JWK
  const publicJwk: JWK = full.kty === 'EC' ? { kty: 'EC', crv: full.crv, x: full.x, y: full.y } : { kty: 'RSA', n: full.n, e: full.e }
  const spki = new Uint8Array(await subtle.exportKey('spki', pair.publicKey))
  // Only the public half stays referenced (the CSR embeds it); the extractable private one is dropped.
  const pubKey = pair.publicKey
  const jkt = await jwkThumbprint(publicJwk)

  return {
    keyAlg,
    publicJwk,
    jkt,
    jktBytes: thumbprintBytes(jkt),
    spki,
    dpopAlg: p.dpopAlg,
    async dpopProof(method, url, accessToken, nonce) {
      const u = new URL(url)
      // RFC 9449 §4.2: htu without query and fragment; ath = b64url(SHA-256(ASCII(token))).
      return new SignJWT({
        htm: method.toUpperCase(),
        htu: `${u.protocol}//${u.host}${u.pathname}`,
        jti: randomUUID(),
        ...(accessToken !== undefined ? { ath: toB64url(sha256(new TextEncoder().encode(accessToken))) } : {}),
        ...(nonce !== undefined ? { nonce } : {}),
      })
        .setProtectedHeader({ typ: 'dpop+jwt', alg: p.dpopAlg, jwk: publicJwk })
        .setIssuedAt()
        .sign(signKey)
    },
    async clientAttestationPop(audience, challenge) {
      return new SignJWT({ jti: randomUUID(), ...(challenge !== undefined ? { challenge } : {}) })
        .setProtectedHeader({ typ: CLIENT_ATTESTATION_POP_TYP, alg: p.dpopAlg })
        .setAudience(audience)
        .setIssuedAt()
        .sign(signKey)
    },
    cryptoKeyPair: { privateKey: signKey, publicKey: pair.publicKey },
    async decrypt(jwe) {
      try {
        const { plaintext } = await compactDecrypt(jwe, decKey, {
          keyManagementAlgorithms: p.jweAlgs,
          contentEncryptionAlgorithms: ['A256GCM'],
        })
        return plaintext
      } catch (e) {
        throw new DecryptError({ cause: e })
      }
    },
    async certificationRequest() {
      const signingAlgorithm = keyAlg === 'RSA-OAEP-256' ? { name: 'RSA-PSS', hash: 'SHA-256', saltLength: 32 } : { ...p.sign, hash: keyAlg === 'ES256' ? 'SHA-256' : 'SHA-384' }
      const csr = await px509.Pkcs10CertificateRequestGenerator.create(
        { keys: { publicKey: pubKey, privateKey: signKey }, signingAlgorithm },
        webcrypto as unknown as Parameters<typeof px509.cryptoProvider.set>[0],
      )
      return new Uint8Array(csr.rawData)
    },
    privateKeyPem() {
      if (!opts.exportable) throw new Error('this session key was made non-exportable')
      return px509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n'
    },
  }
}
