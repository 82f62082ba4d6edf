// The shape of one TEE's `keyward verify --tee T` command (src/cli/verify-<tee>.ts).
import type { VerifiedClaims } from '../protocol/claims.js'
import { parseCommandArgs, type OptionSpec, type ParsedArgs } from './args.js'

export interface TeeVerifyCommand {
  readonly usage: string
  readonly options: OptionSpec
  claims(args: ParsedArgs): Promise<VerifiedClaims>
}

/** Parses argv for one TEE's command and verifies: the claims, or a KeywardError. */
export async function verifyClaims(cmd: TeeVerifyCommand, argv: string[]): Promise<VerifiedClaims> {
  return cmd.claims(parseCommandArgs(argv, cmd.options, cmd.usage))
}
