import { readFileSync } from 'node:fs'
import { KeywardError } from '../errors.js'

/** The bytes of a file named on the command line; an unreadable file is bad input (ERR_BAD_REQUEST). */
export function readInput(path: string, flag: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (e) {
    throw new KeywardError('ERR_BAD_REQUEST', `${flag}: cannot read ${path}`, { cause: e })
  }
}
