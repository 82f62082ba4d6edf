// AWS Nitro Enclaves collector: asks the Nitro Secure Module for an attestation document that
// carries the challenge nonce in `nonce`, the binding digest in `user_data` and, when given, the
// workload key (DER SPKI) in `public_key` (docs/protocol.md §Binding).
//
// The NSM speaks CBOR over one ioctl on /dev/nsm (aws-nitro-enclaves-nsm-api, serde encoding of
// its Request/Response enums):
//   request  {"Attestation": {"user_data": bytes / null, "nonce": bytes / null, "public_key": bytes / null}}
//   response {"Attestation": {"document": bytes}}  or  {"Error": "<ErrorCode>"}
// The CBOR is built and parsed here; the ioctl is the native addon enclave-client/native/nsm,
// loaded lazily on first collect, so nothing breaks where it is not built. Not run on Nitro
// hardware here: /dev/nsm exists only inside an enclave.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { encode } from 'cborg'
import { decodeCborStrict, isCborMap, type CborValue } from '../../../src/protocol/cbor.js'
import { CollectorError } from '../errors.js'
import type { Collector, CollectRequest } from './types.js'

export const DEFAULT_NSM_DEVICE = '/dev/nsm'
/** NSM_REQUEST_MAX_SIZE / NSM_RESPONSE_MAX_SIZE of the NSM driver. */
export const NSM_REQUEST_MAX_SIZE = 0x1000
export const NSM_RESPONSE_MAX_SIZE = 0x3000
/** Nitro attestation document CDDL: `user_data = bytes .size (0..1024)` (also nonce and public_key). */
const FIELD_MAX = 1024

/** One open NSM device: swaps a request for a response. */
export interface NsmTransport {
  request(req: Uint8Array): Uint8Array
  close(): void
}

export interface NitroCollectorOptions {
  /** The NSM device (default /dev/nsm). */
  devicePath?: string
  /** Opens the device; default: the native addon. Tests pass a fake. */
  openTransport?: (devicePath: string) => NsmTransport
  /** Path of nsm.node; default: enclave-client/native/nsm/build/Release/nsm.node. */
  addonPath?: string
}

/** Encodes the NSM `Attestation` request for a binding, nonce and optional workload key. */
export function encodeAttestationRequest(req: CollectRequest): Uint8Array {
  if (req.binding.length !== 32) throw new CollectorError('nitro: binding must be 32 bytes')
  if (req.nonce.length !== 32) throw new CollectorError('nitro: nonce must be 32 bytes')
  if (req.publicKeyDer !== undefined && (req.publicKeyDer.length === 0 || req.publicKeyDer.length > FIELD_MAX)) {
    throw new CollectorError(`nitro: public key must be 1..${FIELD_MAX} bytes of DER`)
  }
  const body = new Map<string, CborValue>([
    ['user_data', req.binding],
    ['nonce', req.nonce],
    ['public_key', req.publicKeyDer ?? null],
  ])
  const out = encode(new Map([['Attestation', body]]))
  if (out.length > NSM_REQUEST_MAX_SIZE) throw new CollectorError('nitro: NSM request too large')
  return out
}

/** Returns the attestation document from an NSM response, or throws ERR_COLLECTOR naming the NSM error. */
export function decodeAttestationResponse(bytes: Uint8Array): Uint8Array {
  let v: CborValue
  try {
    v = decodeCborStrict(bytes, { what: 'NSM response', maxBytes: NSM_RESPONSE_MAX_SIZE })
  } catch (e) {
    throw new CollectorError('nitro: malformed NSM response', { cause: e })
  }
  if (!isCborMap(v) || v.size !== 1) throw new CollectorError('nitro: NSM response is not a one-entry map')
  const err = v.get('Error')
  if (err !== undefined) {
    throw new CollectorError(`nitro: NSM error ${typeof err === 'string' ? err : 'unknown'}`, { cause: { nsmError: typeof err === 'string' ? err : null } })
  }
  const att = v.get('Attestation')
  if (!isCborMap(att)) throw new CollectorError('nitro: NSM response has no Attestation')
  const doc = att.get('document')
  if (!(doc instanceof Uint8Array) || doc.length === 0) throw new CollectorError('nitro: NSM response has no document')
  return doc
}

interface NsmAddon {
  open(path: string): number
  request(fd: number, req: Uint8Array): Uint8Array
  close(fd: number): void
}

let addon: NsmAddon | undefined

/** Loads the native addon once; ERR_COLLECTOR when it has not been built. */
export function loadNsmAddon(addonPath?: string): NsmAddon {
  if (addon) return addon
  const candidates = addonPath
    ? [addonPath]
    : [
        // from enclave-client/src/collectors (tsx) and from dist/enclave-client/src/collectors (tsc)
        fileURLToPath(new URL('../../native/nsm/build/Release/nsm.node', import.meta.url)),
        fileURLToPath(new URL('../../../../enclave-client/native/nsm/build/Release/nsm.node', import.meta.url)),
      ]
  const path = candidates.find((p) => existsSync(p))
  if (!path) throw new CollectorError('nitro: the NSM addon is not built (run enclave-client/native/nsm/build.sh)')
  try {
    addon = createRequire(import.meta.url)(path) as NsmAddon
  } catch (e) {
    throw new CollectorError('nitro: cannot load the NSM addon', { cause: e })
  }
  return addon
}

function addonTransport(addonPath: string | undefined): (devicePath: string) => NsmTransport {
  return (devicePath) => {
    const a = loadNsmAddon(addonPath)
    const fd = a.open(devicePath)
    return { request: (req) => new Uint8Array(a.request(fd, req)), close: () => a.close(fd) }
  }
}

export function createNitroCollector(opts: NitroCollectorOptions = {}): Collector {
  const devicePath = opts.devicePath ?? DEFAULT_NSM_DEVICE
  const open = opts.openTransport ?? addonTransport(opts.addonPath)
  return {
    tee: 'nitro',
    async available() {
      return existsSync(devicePath)
    },
    async collect(req) {
      const request = encodeAttestationRequest(req)
      let response: Uint8Array
      let t: NsmTransport | undefined
      try {
        t = open(devicePath)
        response = t.request(request)
      } catch (e) {
        if (e instanceof CollectorError) throw e
        throw new CollectorError(`nitro: NSM request failed (${e instanceof Error ? e.message : 'error'})`, { cause: e })
      } finally {
        try {
          t?.close()
        } catch {
          // closing a device fd cannot lose data; the request already succeeded or failed
        }
      }
      const document = decodeAttestationResponse(response)
      return { document: Buffer.from(document).toString('base64') }
    },
  }
}
