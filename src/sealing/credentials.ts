// Admin and relying-party credentials are 256-bit random values, stored as
// "sha256$<base64url(SHA-256("keyward-credential-v1\0" || secret))>" and checked in constant time
// with the same work on every path (unknown name, wrong secret, right secret). A slow or keyed hash
// protects guessable secrets; against a uniformly random 256-bit secret, SHA-256 preimage search is
// already out of reach, so a stolen store row cannot be turned back into a credential, and the
// check costs microseconds on the event loop instead of a libuv thread (docs/admin.md).
// Rows from older versions ("scrypt$N$r$p$salt$hash") still verify, one at a time, and are
// rewritten to the fast form on first successful use (src/broker/admin.ts).
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { KeywardError } from '../errors.js'
import { fromB64url, toB64url } from '../util/bytes.js'

export interface ScryptParams {
  N: number
  r: number
  p: number
}

/** RFC 7914 §2 interactive-login class parameters: 2^15 × 8 × 1 ≈ 32 MiB, ~50–100 ms a check. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 }

const SALT_LEN = 16
const HASH_LEN = 32
// Bounds on parameters read from storage, so a doctored row cannot make a check take minutes.
const MAX_N = 1 << 20
const MAX_R = 32
const MAX_P = 16

function scrypt(secret: string, salt: Uint8Array, len: number, p: ScryptParams): Promise<Buffer> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 }
  return new Promise((resolve, reject) => {
    scryptCb(secret.normalize('NFC'), salt, len, opts, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

function validParams(p: ScryptParams): boolean {
  return Number.isSafeInteger(p.N) && p.N >= 2 && p.N <= MAX_N && (p.N & (p.N - 1)) === 0 &&
    Number.isSafeInteger(p.r) && p.r >= 1 && p.r <= MAX_R &&
    Number.isSafeInteger(p.p) && p.p >= 1 && p.p <= MAX_P
}

/** A fresh credential to hand out once: 32 random bytes, base64url. */
export function generateCredential(): string {
  return toB64url(randomBytes(32))
}

const FAST_PREFIX = 'sha256$'

function fastDigest(secret: string): Buffer {
  return createHash('sha256').update('keyward-credential-v1\0').update(secret, 'utf8').digest()
}

/** The stored form of a new credential. Async only to keep the signature callers pass around. */
export async function hashCredential(secret: string): Promise<string> {
  return FAST_PREFIX + toB64url(fastDigest(secret))
}

/** True for rows stored before the fast hash; they are re-hashed on first successful use. */
export function isLegacyHash(encoded: string): boolean {
  return encoded.startsWith('scrypt$')
}

/** Legacy scrypt form, kept for migration tests and old rows. */
export async function hashLegacyScrypt(secret: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  if (!validParams(params)) throw new KeywardError('ERR_CONFIG', 'invalid scrypt parameters')
  const salt = randomBytes(SALT_LEN)
  const hash = await scrypt(secret, salt, HASH_LEN, params)
  return `scrypt$${params.N}$${params.r}$${params.p}$${toB64url(salt)}$${toB64url(hash)}`
}

interface Parsed {
  params: ScryptParams
  salt: Uint8Array
  hash: Uint8Array
}

function parseEncoded(encoded: string): Parsed | undefined {
  const parts = encoded.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined
  const nums = parts.slice(1, 4).map((s) => (/^[1-9][0-9]{0,8}$/.test(s) ? Number(s) : NaN))
  const params = { N: nums[0] ?? NaN, r: nums[1] ?? NaN, p: nums[2] ?? NaN }
  const salt = fromB64url(parts[4] ?? '')
  const hash = fromB64url(parts[5] ?? '')
  if (!validParams(params) || salt === undefined || hash === undefined) return undefined
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined
  return { params, salt, hash }
}

// Checked against when there is no stored hash, so an unknown id costs as much as a wrong secret.
const DUMMY: Parsed = { params: DEFAULT_SCRYPT, salt: new Uint8Array(SALT_LEN), hash: new Uint8Array(HASH_LEN) }

/**
 * True when `secret` matches the encoded hash. A missing (null/undefined) or malformed stored
 * hash gives false after the same amount of work, never an exception.
 */
export async function verifyCredential(secret: string, encoded: string | null | undefined): Promise<boolean> {
  const derived = fastDigest(secret)
  if (typeof encoded !== 'string' || !isLegacyHash(encoded)) {
    const stored = typeof encoded === 'string' && encoded.startsWith(FAST_PREFIX) ? fromB64url(encoded.slice(FAST_PREFIX.length)) : undefined
    const target = stored?.length === derived.length ? stored : FAST_DUMMY
    return timingSafeEqual(derived, target) && target !== FAST_DUMMY
  }
  // One legacy scrypt check at a time: wrong guesses against an old row occupy one libuv thread, not all four.
  const run = legacyQueue.then(() => verifyScrypt(secret, encoded))
  legacyQueue = run.then(() => undefined, () => undefined)
  return run
}

const FAST_DUMMY = Buffer.alloc(32)
let legacyQueue: Promise<void> = Promise.resolve()

async function verifyScrypt(secret: string, encoded: string): Promise<boolean> {
  const parsed = parseEncoded(encoded)
  const target = parsed ?? DUMMY
  let derived: Buffer
  try {
    derived = await scrypt(secret, target.salt, target.hash.length, target.params)
  } catch {
    return false
  }
  return timingSafeEqual(derived, target.hash) && parsed !== undefined
}
