// Key-encryption-key providers wrap the per-secret data keys (envelope encryption).
// The local keyring (src/sealing/keyring.ts) is the default; Vault Transit is another.

export interface WrappedKey {
  /** Provider-qualified id of the KEK version that wrapped the key, e.g. "local:3" or "transit:keyward:2". */
  kekId: string
  /** Opaque wrapped bytes (local: nonce||ciphertext||tag; transit: the "vault:v2:..." ciphertext as UTF-8). */
  wrapped: Uint8Array
}

export interface KekProvider {
  /** Short provider name as used in config: "local" | "vault-transit". */
  readonly name: string
  /** Wraps a data key under the current KEK version; `aad` binds context (secret name and version). */
  wrap(dataKey: Uint8Array, aad: Uint8Array): Promise<WrappedKey>
  /** Unwraps with the KEK version named in `kekId`; throws KeywardError(ERR_UNSEAL) on any failure. */
  unwrap(w: WrappedKey, aad: Uint8Array): Promise<Uint8Array>
  /** Re-wraps under the newest KEK version without exposing the data key outside the provider where possible. */
  rewrap(w: WrappedKey, aad: Uint8Array): Promise<WrappedKey>
  /** Creates a new KEK version that later wraps use. Returns its id. */
  rotate(): Promise<string>
}
