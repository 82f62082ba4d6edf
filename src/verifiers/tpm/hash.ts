// One-shot hashing for the TPM hot paths (PCR extend, pcrDigest, names). crypto.hash exists from
// Node 20.12 and is several times cheaper than createHash for short inputs; package.json allows
// 20.10, so fall back to createHash there.
import * as nodeCrypto from 'node:crypto'
import { concatBytes, type HashName } from '../../util/bytes.js'

const oneShot: (alg: HashName, data: Uint8Array) => Buffer = typeof nodeCrypto.hash === 'function'
  ? (alg, data) => nodeCrypto.hash(alg, data, 'buffer')
  : (alg, data) => nodeCrypto.createHash(alg).update(data).digest()

/** H(parts[0] ‖ parts[1] ‖ ...) as a Buffer. */
export function hashOf(alg: HashName, ...parts: Uint8Array[]): Buffer {
  return oneShot(alg, parts.length === 1 ? parts[0]! : concatBytes(...parts))
}
