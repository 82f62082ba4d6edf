// A collector gathers evidence on the workload's platform that commits to the binding digest
// (docs/protocol.md §Binding) and returns it in the wire shape of `/v1/attest`'s `evidence`.
import type { Tee } from '../../../src/protocol/tee.js'

export interface CollectRequest {
  /** The 32-byte binding digest the evidence must carry. */
  binding: Uint8Array
  /** The 32-byte challenge nonce (Nitro puts it in the document's `nonce`). */
  nonce: Uint8Array
  /** The workload key as DER SubjectPublicKeyInfo (Nitro may put it in `public_key`). */
  publicKeyDer?: Uint8Array
}

export interface Collector {
  readonly tee: Tee
  /** True when this platform's device or interface is present. */
  available(): Promise<boolean>
  /** Returns the `evidence` JSON object for /v1/attest; throws KeywardError(ERR_COLLECTOR) on failure. */
  collect(req: CollectRequest): Promise<Record<string, unknown>>
}
