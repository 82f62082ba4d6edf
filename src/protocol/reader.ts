// A bounds-checked reader over bytes. Every read checks the remaining length first and
// throws EvidenceMalformedError naming the structure; endianness is in the method name.
import { EvidenceMalformedError } from './errors.js'

export class ByteReader {
  readonly bytes: Uint8Array
  private readonly view: DataView
  pos: number
  /** Name of the structure being read, used in error messages. */
  readonly what: string

  constructor(bytes: Uint8Array, what: string, pos = 0) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.pos = pos
    this.what = what
  }

  get remaining(): number {
    return this.bytes.length - this.pos
  }

  private need(n: number, field: string): void {
    if (!Number.isInteger(n) || n < 0 || n > this.remaining) {
      throw new EvidenceMalformedError(
        `${this.what}: truncated reading ${field} (need ${n} bytes at offset 0x${this.pos.toString(16)}, have ${this.remaining})`,
      )
    }
  }

  u8(field = 'u8'): number {
    this.need(1, field)
    return this.bytes[this.pos++]!
  }
  u16be(field = 'u16'): number {
    this.need(2, field)
    const v = this.view.getUint16(this.pos, false)
    this.pos += 2
    return v
  }
  u16le(field = 'u16'): number {
    this.need(2, field)
    const v = this.view.getUint16(this.pos, true)
    this.pos += 2
    return v
  }
  u32be(field = 'u32'): number {
    this.need(4, field)
    const v = this.view.getUint32(this.pos, false)
    this.pos += 4
    return v
  }
  u32le(field = 'u32'): number {
    this.need(4, field)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }
  u64be(field = 'u64'): bigint {
    this.need(8, field)
    const v = this.view.getBigUint64(this.pos, false)
    this.pos += 8
    return v
  }
  u64le(field = 'u64'): bigint {
    this.need(8, field)
    const v = this.view.getBigUint64(this.pos, true)
    this.pos += 8
    return v
  }
  /** A copy of the next n bytes (copies outlive the request buffer). */
  bytesN(n: number, field = 'bytes'): Uint8Array {
    this.need(n, field)
    const out = this.bytes.slice(this.pos, this.pos + n)
    this.pos += n
    return out
  }
  skip(n: number, field = 'bytes'): void {
    this.need(n, field)
    this.pos += n
  }
  /** TPM2B_*: a big-endian u16 size followed by that many bytes, bounded by `max`. */
  sized16be(field: string, max = 0xffff): Uint8Array {
    const n = this.u16be(`${field}.size`)
    if (n > max) throw new EvidenceMalformedError(`${this.what}: ${field}.size ${n} exceeds ${max}`)
    return this.bytesN(n, field)
  }
  /** Throws unless every byte was consumed. */
  end(): void {
    if (this.remaining !== 0) {
      throw new EvidenceMalformedError(`${this.what}: ${this.remaining} trailing bytes at offset 0x${this.pos.toString(16)}`)
    }
  }
}

/** Throws unless bytes[start, end) are all zero (spec "must be zero" / reserved ranges). */
export function requireZero(bytes: Uint8Array, start: number, end: number, what: string): void {
  for (let i = start; i < end; i++) {
    if (bytes[i] !== 0) {
      throw new EvidenceMalformedError(`${what}: reserved bytes 0x${start.toString(16)}-0x${(end - 1).toString(16)} are not zero`)
    }
  }
}
