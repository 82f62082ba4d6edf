// `keyward verify --tee T ... [--json]`: offline evidence check. Each TEE's command module
// (src/cli/verify-<tee>.ts) parses its own flags and returns the verified claims; this file
// prints them and maps failures to a non-zero exit with the error code on stderr.
import { KeywardError, isKeywardError } from '../errors.js'
import { TEES, type Tee, type VerifiedClaims } from '../verifiers/types.js'
import { claimsToJson } from '../verifiers/claims-json.js'

export type VerifyCommand = (argv: string[]) => Promise<VerifiedClaims>

async function loadCommand(tee: Tee): Promise<VerifyCommand> {
  switch (tee) {
    case 'tpm':
      return (await import('./verify-tpm.js')).verifyTpmCommand
    case 'nitro':
      return (await import('./verify-nitro.js')).verifyNitroCommand
    case 'sev-snp':
      return (await import('./verify-sev-snp.js')).verifySevSnpCommand
  }
}

export async function runVerify(argv: string[]): Promise<number> {
  const rest = [...argv]
  const json = takeFlag(rest, '--json')
  const teeIdx = rest.indexOf('--tee')
  const tee = teeIdx >= 0 ? rest[teeIdx + 1] : undefined
  if (teeIdx >= 0) rest.splice(teeIdx, 2)
  try {
    if (!tee || !(TEES as readonly string[]).includes(tee)) {
      throw new KeywardError('ERR_UNKNOWN_TEE', `--tee must be one of ${TEES.join(', ')}`)
    }
    const claims = await (await loadCommand(tee as Tee))(rest)
    const out = claimsToJson(claims)
    process.stdout.write(json ? JSON.stringify(out, null, 2) + '\n' : formatClaims(out))
    return 0
  } catch (e) {
    const err = isKeywardError(e) ? e : new KeywardError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
    if (json) process.stdout.write(JSON.stringify({ valid: false, error: err.toJSON() }) + '\n')
    process.stderr.write(`${err.code}: ${err.message}\n`)
    return 1
  }
}

function takeFlag(argv: string[], flag: string): boolean {
  const i = argv.indexOf(flag)
  if (i < 0) return false
  argv.splice(i, 1)
  return true
}

function formatClaims(o: Record<string, unknown>, indent = ''): string {
  let s = indent === '' ? 'valid\n' : ''
  for (const [k, v] of Object.entries(o)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) s += `${indent}${k}:\n${formatClaims(v as Record<string, unknown>, indent + '  ')}`
    else s += `${indent}${k}: ${Array.isArray(v) ? JSON.stringify(v) : String(v)}\n`
  }
  return s
}
