// The stable code of the KeywardError a call throws, for table-driven rejection tests.
// Returns 'OK' when the call succeeds; any other exception fails the test (parsers must be total).
import { expect } from 'vitest'
import { KeywardError } from '../../src/errors.js'

function codeOfError(e: unknown): string {
  expect(e).toBeInstanceOf(KeywardError)
  return (e as KeywardError).code
}

export function errorCode(f: () => unknown): string {
  try {
    f()
  } catch (e) {
    return codeOfError(e)
  }
  return 'OK'
}

export async function errorCodeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    return codeOfError(e)
  }
  return 'OK'
}

/** The KeywardError a promise rejects with (fails the test when it resolves or throws anything else). */
export async function rejectionOf(p: Promise<unknown>): Promise<KeywardError> {
  const e = await p.then(() => undefined, (x: unknown) => x)
  expect(e).toBeInstanceOf(KeywardError)
  return e as KeywardError
}
