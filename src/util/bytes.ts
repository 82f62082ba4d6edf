// Byte helpers used across keyward. Comparison of secrets and digests is constant-time.
import { timingSafeEqual, createHash } from 'node:crypto'

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/** Strict hex decode: even length, hex digits only; returns undefined otherwise. */
export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return undefined
  return new Uint8Array(Buffer.from(s, 'hex'))
}

export function toB64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')
}

/** Strict base64url (no padding) decode; returns undefined on any non-alphabet character. */
export function fromB64url(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined
  return new Uint8Array(Buffer.from(s, 'base64url'))
}

/** Strict standard base64 (padding optional) decode; returns undefined on any non-alphabet character. */
export function fromB64(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.replace(/=+$/, '').length % 4 === 1) return undefined
  return new Uint8Array(Buffer.from(s, 'base64'))
}

/** Constant-time equality; different lengths compare unequal (length is not secret here). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  return timingSafeEqual(a, b)
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512'

export function digest(alg: HashName, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(alg)
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  return digest('sha256', ...parts)
}
