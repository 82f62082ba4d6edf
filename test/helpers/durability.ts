// Shared pieces of the durability tests (kill -9, interrupted rotation, backup): a seeded PRNG
// whose seed is printed so a failing run can be replayed (KEYWARD_TEST_SEED=…), the trial count
// (KEYWARD_DURABILITY_TRIALS), and a check that every stored secret version opens to the value the
// test wrote and every sealed token-signing key opens, through a fresh sealer over the data
// directory's keyring (or a given sealer, e.g. over Vault Transit).
import { randomBytes } from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import { openLocalKeyring } from '../../src/sealing/keyring.js'
import { createSealer, SIGNING_KEY_LABEL, type Sealer } from '../../src/sealing/sealer.js'
import type { Store } from '../../src/store/types.js'

export interface Rng {
  readonly seed: number
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number
  bytes(n: number): Uint8Array
}

/** mulberry32: small, fast and good enough to spread kill points. */
export function seededRng(label: string): Rng {
  const env = process.env.KEYWARD_TEST_SEED
  const seed = env !== undefined && env !== '' ? Number(env) >>> 0 : randomBytes(4).readUInt32BE(0)
  // Printed so a failure can be replayed with KEYWARD_TEST_SEED.
  console.log(`[${label}] seed ${seed} (replay with KEYWARD_TEST_SEED=${seed})`)
  let a = seed
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    seed,
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    bytes: (n) => Uint8Array.from({ length: n }, () => Math.floor(next() * 256)),
  }
}

export function trials(fallback: number): number {
  const n = Number(process.env.KEYWARD_DURABILITY_TRIALS)
  return Number.isSafeInteger(n) && n > 0 ? n : fallback
}

/** Resolves once `cond` holds, polling; rejects when the process exits first (the kill point was missed). */
export async function waitFor(cond: () => Promise<boolean> | boolean, p?: ChildProcess): Promise<boolean> {
  for (;;) {
    if (await cond()) return true
    if (p && (p.exitCode !== null || p.signalCode !== null)) return false
    await new Promise((r) => setTimeout(r, 3))
  }
}

/** "name@version" → the exact bytes acknowledged for it. */
export type Expected = Map<string, Uint8Array>

export interface UnsealReport {
  versions: number
  bytes: number
  /** KEK ids of the secret versions. */
  kekIds: Set<string>
  /** Sealed token-signing keys that opened to the private half of their published key. */
  signingKeys: number
}

/**
 * Opens every stored secret version with a fresh sealer over `keys` (a data directory's keyring,
 * or a sealer) and compares it with `expected`; throws on any version that fails to open, differs,
 * or was never acknowledged (unless `allowUnexpected` accepts it: a write in flight when the broker
 * died may have committed, but only whole, with the exact bytes sent). Every sealed token-signing
 * key must open too, to the private half of its published public key.
 */
export async function checkAllSecrets(store: Store, keys: string | Sealer, expected: Expected, allowUnexpected: (key: string, plain: Uint8Array) => boolean = () => false): Promise<UnsealReport> {
  const sealer = typeof keys === 'string' ? createSealer(await openLocalKeyring(keys)) : keys
  const rows = await store.allSecretVersions()
  const seen = new Set<string>()
  const report: UnsealReport = { versions: 0, bytes: 0, kekIds: new Set(), signingKeys: 0 }
  for (const row of rows) {
    const key = `${row.name}@${row.version}`
    seen.add(key)
    let plain: Uint8Array
    try {
      plain = await sealer.unseal(row)
    } catch (e) {
      throw new Error(`${key} (kek ${row.kekId}) does not unseal: ${String(e)}`, { cause: e })
    }
    const want = expected.get(key)
    if (want === undefined) {
      if (!allowUnexpected(key, plain)) throw new Error(`${key} is stored but was never acknowledged`)
    } else if (Buffer.compare(Buffer.from(plain), Buffer.from(want)) !== 0) {
      throw new Error(`${key} holds other bytes than were acknowledged`)
    }
    report.versions++
    report.bytes += plain.length
    report.kekIds.add(row.kekId)
  }
  for (const key of expected.keys()) if (!seen.has(key)) throw new Error(`acknowledged ${key} is missing`)
  for (const k of await store.listSigningKeys()) {
    let priv: { x?: unknown; y?: unknown; d?: unknown }
    try {
      priv = await sealer.unsealJson(SIGNING_KEY_LABEL, k.sealedPrivate)
    } catch (e) {
      throw new Error(`signing key ${k.kid} does not unseal: ${String(e)}`, { cause: e })
    }
    const pub = JSON.parse(k.publicJwk) as { x?: unknown; y?: unknown }
    if (typeof priv.d !== 'string' || priv.x !== pub.x || priv.y !== pub.y) throw new Error(`signing key ${k.kid} opens to another key`)
    report.signingKeys++
  }
  return report
}
