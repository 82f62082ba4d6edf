// The `keyward` command. `verify` loads only the verifiers; every other subcommand lives in
// src/cli/commands.ts and works directly on the store of a data directory (or DATABASE_URL).
import { KeywardError, isKeywardError } from '../errors.js'

const USAGE = `keyward — attestation-gated key broker

  keyward serve [--port N] [--host H] [--data-dir DIR] [--config FILE] [--workers N]
  keyward secret put NAME (--value-file FILE | --text TEXT | --vault-kv MOUNT/PATH[@VERSION][#FIELD])
  keyward secret list | secret rm NAME
  keyward policy apply FILE | policy list | policy test POLICY CLAIMS_OR_EVIDENCE [--refs FILE] [--json]
  keyward reference add --set S --tee T --value V --source TEXT [--expires ISO] | reference list [--set S] | reference revoke ID
  keyward reference import --format nitro-cli|snp-measurement|tpm-pcrs|tpm-eventlog FILE [--source TEXT] [--expires ISO] [--indices 0,7]
  keyward ak pin --workload W AK_TPM2B_PUBLIC_FILE | ak list | ak revoke NAME
  keyward audit tail [-n N] | audit verify
  keyward keys rotate [--kek]
  keyward credential create admin|relying-party NAME     (prints the bearer token once)
  keyward workloads
  keyward backup --out FILE [--include-keyring]     (SQLite; FILE.keyring is secret: keep it apart)
  keyward restore --from FILE [--keyring FILE.keyring] --data-dir NEW_DIR
  keyward verify --tee tpm|nitro|sev-snp FILE… [--at TIME] [--json]

Common options: --data-dir DIR (default ./.data), --config FILE; DATABASE_URL=postgres://… selects PostgreSQL.`


export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'verify') return (await import('./verify.js')).runVerify(argv.slice(1))
  return (await import('./commands.js')).runAdminCommand(argv, USAGE)
}

export async function runCli(argv: string[]): Promise<void> {
  try {
    const code = await main(argv)
    if (code >= 0) process.exitCode = code
  } catch (e) {
    const err = isKeywardError(e) ? e : new KeywardError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
    process.stderr.write(`keyward: ${err.code}: ${err.message}\n`)
    process.exitCode = err.code === 'ERR_BAD_REQUEST' ? 2 : 1
  }
}
