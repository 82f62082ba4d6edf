import { describe, it, expect } from 'vitest'
import { generateCredential, hashLegacyScrypt as hashCredential, verifyCredential, DEFAULT_SCRYPT } from '../../src/sealing/credentials.js'

// Small N keeps the tests fast; the format and checks are the same as with the defaults.
const FAST = { N: 1024, r: 8, p: 1 }

describe('legacy scrypt credential rows (still verified, then re-hashed on use)', () => {
  it('encodes scrypt$N$r$p$salt$hash with a random salt', async () => {
    const a = await hashCredential('testOnlyAdminSecret', FAST)
    const b = await hashCredential('testOnlyAdminSecret', FAST)
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/)
    expect(a).not.toBe(b)
    expect(a).not.toContain('testOnlyAdminSecret')
  })

  it('verifies the right secret and rejects others', async () => {
    const h = await hashCredential('testOnlyAdminSecret', FAST)
    expect(await verifyCredential('testOnlyAdminSecret', h)).toBe(true)
    expect(await verifyCredential('testOnlyAdminSecreT', h)).toBe(false)
    expect(await verifyCredential('', h)).toBe(false)
  })

  it('uses the default parameters when none are given', async () => {
    const h = await hashCredential('testOnly')
    expect(h.startsWith(`scrypt$${DEFAULT_SCRYPT.N}$${DEFAULT_SCRYPT.r}$${DEFAULT_SCRYPT.p}$`)).toBe(true)
    expect(await verifyCredential('testOnly', h)).toBe(true)
  })

  it.each([
    null,
    undefined,
    '',
    'bcrypt$1024$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', // N not a power of 2
    'scrypt$4194304$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', // N too large
    'scrypt$1024$8$1$!!$AAAA',
    'scrypt$1024$8$1$AAAAAAAAAAAAAAAAAAAAAA',
  ])('returns false (never throws) for a missing or malformed stored hash: %s', async (stored) => {
    expect(await verifyCredential('anything', stored)).toBe(false)
  })

  it('generates 256-bit base64url credentials', () => {
    const c = generateCredential()
    expect(Buffer.from(c, 'base64url')).toHaveLength(32)
    expect(generateCredential()).not.toBe(c)
  })
})
