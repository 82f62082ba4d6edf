// Vault Transit as key-encryption key (Vault API docs, secret/transit: encrypt, decrypt,
// rewrap, keys/:name/rotate). The data key never rests unwrapped outside keyward; rewrap moves a
// wrapped key to the newest KEK version inside Vault without the plaintext leaving it.
//
// AAD binding: transit's `context` only takes effect for keys created with derived=true (a
// non-derived key ignores it), so the provider refuses a non-derived key (ERR_CONFIG). The context
// is SHA-256("keyward-transit-kek-v1" || 0x00 || aad), a fixed-length label-separated digest of
// the caller's aad (secret name and version), so Vault derives a distinct key per (name, version)
// and a wrapped key moved to another secret fails to unwrap.
import { KeywardError, isKeywardError } from '../errors.js'
import { sha256 } from '../util/bytes.js'
import type { VaultClient } from '../vault/client.js'
import { ciphertextVersion } from '../vault/transit-format.js'
import type { KekProvider, WrappedKey } from './kek.js'

const LABEL = new TextEncoder().encode('keyward-transit-kek-v1')

export function transitContext(aad: Uint8Array): Uint8Array {
  return sha256(LABEL, new Uint8Array([0]), aad)
}

export interface TransitKekOptions {
  /** Skip the one-time derived=true check (only when a policy forbids reading the key). */
  checkDerived?: boolean
}

function kekIdFor(keyName: string, version: number): string {
  return `transit:${keyName}:${version}`
}

/** Errors Vault gives for bad input (wrong context, tampered ciphertext) become ERR_UNSEAL;
 *  availability failures (unavailable/sealed/denied) keep their codes so the caller answers 502/503. */
function asUnsealError(e: unknown): KeywardError {
  if (isKeywardError(e) && (e.code === 'ERR_VAULT_UNAVAILABLE' || e.code === 'ERR_VAULT_SEALED' || e.code === 'ERR_VAULT_DENIED')) return e
  return new KeywardError('ERR_UNSEAL', 'unwrap failed', { detail: { provider: 'vault-transit', code: isKeywardError(e) ? e.code : 'ERR_INTERNAL' } })
}

/**
 * A KekProvider over Vault Transit key `keyName` (which must be derived=true; checked once, on
 * first use). kekId is "transit:<key>:<version>"; `wrapped` is the "vault:vN:..." ciphertext as UTF-8.
 */
export function createTransitKek(client: VaultClient, keyName: string, opts: TransitKekOptions = {}): KekProvider {
  let checked: Promise<void> | undefined
  const utf8 = new TextDecoder('utf-8', { fatal: true })

  function ensureDerived(): Promise<void> {
    if (opts.checkDerived === false) return Promise.resolve()
    checked ??= client.transitKeyInfo(keyName).then(
      (info) => {
        if (!info.derived) {
          throw new KeywardError('ERR_CONFIG', 'transit key must be created with derived=true', { detail: { key: keyName } })
        }
      },
      (e: unknown) => {
        checked = undefined // retry the check next time (Vault may have been down)
        throw e
      },
    )
    return checked
  }

  function ciphertextOf(w: WrappedKey): string {
    let ct: string
    try {
      ct = utf8.decode(w.wrapped)
    } catch {
      throw new KeywardError('ERR_UNSEAL', 'unwrap failed', { detail: { provider: 'vault-transit', reason: 'not utf-8' } })
    }
    const version = ciphertextVersion(ct)
    // The kekId names the version that wrapped the key; a mismatch means the row was edited.
    if (version === 0 || w.kekId !== kekIdFor(keyName, version)) {
      throw new KeywardError('ERR_UNSEAL', 'unwrap failed', { detail: { provider: 'vault-transit', reason: 'kekId mismatch', kekId: w.kekId } })
    }
    return ct
  }

  return {
    name: 'vault-transit',

    async wrap(dataKey, aad) {
      await ensureDerived()
      try {
        const r = await client.transitEncrypt(keyName, dataKey, transitContext(aad))
        return { kekId: kekIdFor(keyName, r.keyVersion), wrapped: new TextEncoder().encode(r.ciphertext) }
      } catch (e) {
        if (isKeywardError(e) && e.code.startsWith('ERR_VAULT')) throw e
        throw new KeywardError('ERR_SEAL', 'wrap failed', { detail: { provider: 'vault-transit', code: isKeywardError(e) ? e.code : 'ERR_INTERNAL' } })
      }
    },

    async unwrap(w, aad) {
      const ct = ciphertextOf(w)
      await ensureDerived()
      try {
        return await client.transitDecrypt(keyName, ct, transitContext(aad))
      } catch (e) {
        throw asUnsealError(e)
      }
    },

    async rewrap(w, aad) {
      const ct = ciphertextOf(w)
      await ensureDerived()
      try {
        const r = await client.transitRewrap(keyName, ct, transitContext(aad))
        return { kekId: kekIdFor(keyName, r.keyVersion), wrapped: new TextEncoder().encode(r.ciphertext) }
      } catch (e) {
        throw asUnsealError(e)
      }
    },

    async rotate() {
      return kekIdFor(keyName, await client.transitRotate(keyName))
    },
  }
}
