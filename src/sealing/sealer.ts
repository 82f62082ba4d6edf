// Envelope encryption of secrets at rest. Each secret version gets a fresh random 256-bit data
// key; the value is AES-256-GCM encrypted under it and the data key is wrapped by the KEK
// provider. Both use the same AAD, "keyward-secret-v1\0" || name || "\0" || version, so a row's
// ciphertext or wrapped key moved to another name or version fails to open. KEK rotation
// re-wraps data keys only: the value ciphertext at rest is never decrypted or rewritten.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { z } from 'zod'
import { KeywardError } from '../errors.js'
import { fromB64url, toB64url } from '../util/bytes.js'
import type { KekProvider } from './kek.js'
import type { AuditWith, SecretVersionRow, Store } from '../store/types.js'

const IV_LEN = 12
const TAG_LEN = 16
const KEY_LEN = 32
const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

const sealError = (cause?: unknown) => new KeywardError('ERR_SEAL', 'seal failed', cause === undefined ? {} : { cause })
const unsealError = (cause?: unknown) => new KeywardError('ERR_UNSEAL', 'unseal failed', cause === undefined ? {} : { cause })

export interface SealedSecret {
  /** AES-256-GCM ciphertext || 16-byte tag. */
  ciphertext: Uint8Array
  iv: Uint8Array
  wrappedKey: Uint8Array
  kekId: string
}

/** The sealed form of a JSON value (SigningKeyRow.sealedPrivate holds this, as JSON). */
export interface SealedBlob {
  v: 1
  kekId: string
  /** base64url */
  wrappedKey: string
  iv: string
  ciphertext: string
}

const SealedBlobSchema = z.object({
  v: z.literal(1),
  kekId: z.string().min(1),
  wrappedKey: z.string(),
  iv: z.string(),
  ciphertext: z.string(),
}).strict()

/** The label the broker seals its token-signing private keys under (AAD), so KEK rotation can re-wrap them. */
export const SIGNING_KEY_LABEL = 'token-signing-key'

export interface RewrapResult {
  /** The KEK version every data key is now wrapped under. */
  kekId: string
  /** Live secret versions seen. */
  total: number
  rewrapped: number
  /** Already under the new KEK (written by a concurrent put). */
  unchanged: number
  /** "name@version" of rows (or "signing-key:kid") that could not be unwrapped; left as they were. */
  failed: string[]
  /** Token-signing keys re-wrapped. */
  signingKeys: number
}

export type SealedRow = Pick<SecretVersionRow, 'name' | 'version' | 'ciphertext' | 'iv' | 'wrappedKey' | 'kekId'>

export interface Sealer {
  seal(name: string, version: number, plaintext: Uint8Array): Promise<SealedSecret>
  /** Opens a stored version; ERR_UNSEAL (fixed message) on any tampering or a wrong name/version. */
  unseal(row: SealedRow): Promise<Uint8Array>
  /** Rotates the KEK, then re-wraps every live data key under the new version. */
  rewrapAll(store: Store): Promise<RewrapResult>
  /** Seals a JSON value bound to `label` (e.g. the signing key's kid); returns SealedBlob JSON. */
  sealJson(label: string, value: unknown): Promise<string>
  unsealJson<T = unknown>(label: string, sealed: string): Promise<T>
}

/** AAD of a secret version: "keyward-secret-v1\0" || name || "\0" || decimal version. */
export function secretAad(name: string, version: number): Uint8Array {
  return enc.encode(`keyward-secret-v1\0${name}\0${version}`)
}

/** AAD of a sealed JSON value; a different prefix, so a blob never opens as a secret or vice versa. */
export function jsonAad(label: string): Uint8Array {
  return enc.encode(`keyward-json-v1\0${label}`)
}

function encrypt(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): { iv: Uint8Array; ciphertext: Uint8Array } {
  const iv = randomBytes(IV_LEN)
  const c = createCipheriv('aes-256-gcm', key, iv)
  c.setAAD(aad)
  const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()])
  return { iv: new Uint8Array(iv), ciphertext: new Uint8Array(ct) }
}

function decrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array {
  if (iv.length !== IV_LEN || ciphertext.length < TAG_LEN) throw unsealError()
  try {
    const d = createDecipheriv('aes-256-gcm', key, iv)
    d.setAAD(aad)
    d.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_LEN))
    return new Uint8Array(Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - TAG_LEN)), d.final()]))
  } catch (e) {
    throw unsealError(e)
  }
}

function checkVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 1) throw new KeywardError('ERR_BAD_REQUEST', 'secret version must be a positive integer')
}

export function createSealer(kek: KekProvider): Sealer {
  const sealWith = async (plaintext: Uint8Array, aad: Uint8Array): Promise<SealedSecret> => {
    const dataKey = new Uint8Array(randomBytes(KEY_LEN))
    try {
      const { iv, ciphertext } = encrypt(dataKey, plaintext, aad)
      const w = await kek.wrap(dataKey, aad)
      return { ciphertext, iv, wrappedKey: w.wrapped, kekId: w.kekId }
    } catch (e) {
      throw e instanceof KeywardError ? e : sealError(e)
    } finally {
      dataKey.fill(0)
    }
  }

  const openWith = async (s: SealedRow | SealedSecret, aad: Uint8Array): Promise<Uint8Array> => {
    let dataKey: Uint8Array
    try {
      dataKey = await kek.unwrap({ kekId: s.kekId, wrapped: s.wrappedKey }, aad)
    } catch (e) {
      // An unreachable or sealed KEK service is a 503 the caller can retry, not a broken secret.
      if (e instanceof KeywardError && e.code.startsWith('ERR_VAULT_')) throw e
      throw unsealError(e)
    }
    try {
      if (dataKey.length !== KEY_LEN) throw unsealError()
      return decrypt(dataKey, s.iv, s.ciphertext, aad)
    } finally {
      dataKey.fill(0)
    }
  }

  return {
    async seal(name, version, plaintext) {
      checkVersion(version)
      return sealWith(plaintext, secretAad(name, version))
    },

    async unseal(row) {
      if (!Number.isSafeInteger(row.version)) throw unsealError()
      return openWith(row, secretAad(row.name, row.version))
    },

    async rewrapAll(store) {
      const kekId = await kek.rotate()
      const result: RewrapResult = { kekId, total: 0, rewrapped: 0, unchanged: 0, failed: [], signingKeys: 0 }
      for (const row of await store.allSecretVersions()) {
        result.total++
        if (row.kekId === kekId) {
          result.unchanged++
          continue
        }
        let w
        try {
          w = await kek.rewrap({ kekId: row.kekId, wrapped: row.wrappedKey }, secretAad(row.name, row.version))
        } catch {
          result.failed.push(`${row.name}@${row.version}`)
          continue
        }
        await store.updateWrappedKey(row.name, row.version, w.wrapped, w.kekId)
        result.rewrapped++
      }
      // The broker's sealed signing keys move to the new KEK too: only their data keys are re-wrapped.
      for (const key of await store.listSigningKeys()) {
        try {
          const blob = SealedBlobSchema.parse(JSON.parse(key.sealedPrivate))
          if (blob.kekId === kekId) continue
          const wrapped = fromB64url(blob.wrappedKey)
          if (wrapped === undefined) throw unsealError()
          const w = await kek.rewrap({ kekId: blob.kekId, wrapped }, jsonAad(SIGNING_KEY_LABEL))
          await store.updateSigningKeySealed(key.kid, JSON.stringify({ ...blob, kekId: w.kekId, wrappedKey: toB64url(w.wrapped) }))
          result.signingKeys++
        } catch {
          result.failed.push(`signing-key:${key.kid}`)
        }
      }
      return result
    },

    async sealJson(label, value) {
      let json: string | undefined
      try {
        json = JSON.stringify(value)
      } catch (e) {
        throw sealError(e)
      }
      if (json === undefined) throw sealError()
      const s = await sealWith(enc.encode(json), jsonAad(label))
      const blob: SealedBlob = {
        v: 1,
        kekId: s.kekId,
        wrappedKey: toB64url(s.wrappedKey),
        iv: toB64url(s.iv),
        ciphertext: toB64url(s.ciphertext),
      }
      return JSON.stringify(blob)
    },

    async unsealJson<T = unknown>(label: string, sealed: string): Promise<T> {
      let blob: SealedBlob
      try {
        blob = SealedBlobSchema.parse(JSON.parse(sealed))
      } catch (e) {
        throw unsealError(e)
      }
      const wrappedKey = fromB64url(blob.wrappedKey)
      const iv = fromB64url(blob.iv)
      const ciphertext = fromB64url(blob.ciphertext)
      if (wrappedKey === undefined || iv === undefined || ciphertext === undefined) throw unsealError()
      const plain = await openWith({ kekId: blob.kekId, wrappedKey, iv, ciphertext }, jsonAad(label))
      try {
        return JSON.parse(dec.decode(plain)) as T
      } catch (e) {
        throw unsealError(e)
      } finally {
        plain.fill(0)
      }
    },
  }
}

export interface StoreSecretInput {
  name: string
  value: Uint8Array
  /** Vault KV reference (JSON) instead of a stored value; null for stored values. */
  source?: string | null
  createdBy: string
  createdAt: number
}

/**
 * Seals `value` for the next version of `name` and stores it. The AAD binds the version, so the
 * version is chosen before sealing; when a concurrent writer takes it (putSecretVersion returns
 * false) the value is re-sealed for the following one. `audit` commits with the version stored
 * (Store.putSecretVersion). Returns the version stored.
 */
export async function storeSecret(store: Store, sealer: Sealer, input: StoreSecretInput, audit?: AuditWith): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // listSecrets counts deleted versions too: numbering continues after `secret rm`.
    const latest = (await store.listSecrets()).find((s) => s.name === input.name)?.latestVersion ?? 0
    const version = latest + 1
    const sealed = await sealer.seal(input.name, version, input.value)
    const ok = await store.putSecretVersion({
      name: input.name,
      version,
      ...sealed,
      source: input.source ?? null,
      createdAt: input.createdAt,
      createdBy: input.createdBy,
    }, audit)
    if (ok) return version
  }
  throw new KeywardError('ERR_CONFLICT', 'secret version contention: try again')
}
