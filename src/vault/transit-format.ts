// Vault transit's ciphertext format, apart from the client so that code which only reads
// ciphertexts (the transit KEK) does not load node-vault.

/** The key version in a "vault:vN:..." ciphertext, or 0 when absent. */
export function ciphertextVersion(ciphertext: string): number {
  const m = /^vault:v([1-9]\d{0,8}):/.exec(ciphertext)
  return m ? Number(m[1]) : 0
}
