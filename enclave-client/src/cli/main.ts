// keyward-client: the workload's CLI. Progress goes to stderr; stdout carries only command
// output (`get` the secret, `credential` the token, JSON for evidence/attest/register).
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createClient, type ClientOptions, type KeywardClient } from '../client.js'
import { BrokerError, DeniedError, KeywardError, isKeywardError } from '../errors.js'
import { USAGE, parseCli, type CliArgs } from './args.js'
import { runCommand } from './run.js'
import { resolve } from 'node:path'
import { createSecretWriter } from './secret-files.js'

export interface CliIo {
  stdout: (data: string | Uint8Array) => void
  stderr: (line: string) => void
}

const defaultIo: CliIo = {
  stdout: (d) => process.stdout.write(d),
  stderr: (l) => process.stderr.write(`${l}\n`),
}

function describe(e: unknown): string[] {
  if (e instanceof BrokerError) {
    return [`${e.code}: ${e.message}`, ...e.failures.map((f) => `  - ${typeof f.message === 'string' ? f.message : JSON.stringify(f)}`)]
  }
  if (isKeywardError(e)) return [`${e.code}: ${e.message}`]
  return [`ERR_INTERNAL: ${e instanceof Error ? e.message : String(e)}`]
}

export function clientOptions(a: CliArgs, progress: (l: string) => void): ClientOptions {
  return {
    broker: a.broker ?? 'http://127.0.0.1:9', // `evidence` without a broker never contacts it
    ca: a.ca,
    cert: a.cert,
    key: a.key,
    platform: a.tee,
    keyAlg: a.keyAlg,
    timeoutMs: a.timeoutMs,
    retries: a.retries,
    runtimeState: a.runtimeState,
    brokerJwks: a.brokerJwks,
    insecureHttp: a.insecureHttp,
    exportableKey: a.svidDir !== undefined,
    onProgress: progress,
    collectorOptions: {
      tpm: { stateDir: a.stateDir, tcti: a.tcti, pcrs: a.pcrs, ekAlg: a.ekAlg, akAlg: a.akAlg, ekHandle: a.ekHandle },
    },
  }
}

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  // --help anywhere before `--` (keyward-client run --help, get -h …) is a request for the usage.
  const ownArgs = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv
  if (argv.length === 0 || argv[0] === 'help' || ownArgs.includes('--help') || ownArgs.includes('-h')) {
    io.stderr(USAGE.trimEnd())
    return argv.length === 0 ? 2 : 0
  }
  const progress = (l: string): void => io.stderr(`keyward-client: ${l}`)
  let a: CliArgs
  let client: KeywardClient
  try {
    a = parseCli(argv)
    client = createClient(clientOptions(a, progress))
  } catch (e) {
    for (const l of describe(e)) progress(l)
    io.stderr(USAGE.trimEnd())
    return 2
  }
  const fail = (prefix: string, e: unknown): void => {
    const [first, ...rest] = describe(e)
    progress(`${prefix}: ${first}`)
    for (const l of rest) io.stderr(l)
  }
  try {
    switch (a.command) {
      case 'run':
        return await runCommand(client, a, { progress, failure: fail })
      case 'get': {
        const files = createSecretWriter()
        const unguard = files.cleanupOnSignals()
        try {
          // The target is checked before the secret is released, and again as it is written.
          const out = a.out === undefined ? undefined : await files.resolve(resolve(a.out))
          const v = await client.getSecret(a.positionals[0]!)
          if (out) {
            await files.write(out, v)
            progress(`wrote ${a.out} (0600)`)
          } else io.stdout(v)
          return 0
        } catch (e) {
          files.cleanup()
          throw e
        } finally {
          unguard()
        }
      }
      case 'credential': {
        if (a.resource !== undefined) {
          // The token is bound to this process's session key: print it for inspection or for a tool that this process runs.
          const t = await client.accessToken(a.resource, a.scope === undefined ? {} : { scope: a.scope })
          io.stdout(`${JSON.stringify({ access_token: t.accessToken, token_type: t.tokenType, scope: t.scope, resource: t.resource, expires_at: t.expiresAt.toISOString() })}\n`)
          return 0
        }
        const c = await client.credential(a.positionals[0]!)
        progress(c.expiresAt ? `credential for ${c.tool} expires ${c.expiresAt.toISOString()}` : `API key for ${c.tool}`)
        io.stdout(`${c.token}\n`)
        return 0
      }
      case 'evidence': {
        const body = await client.evidence(a.broker ? undefined : new Uint8Array(randomBytes(32)))
        io.stdout(`${JSON.stringify(body, null, 2)}\n`)
        return 0
      }
      case 'attest': {
        try {
          const r = await client.attest()
          io.stdout(`${JSON.stringify({ decision: 'allow', policy: r.policy, expiresAt: r.expiresAt.toISOString(), claims: r.claims }, null, 2)}\n`)
          return 0
        } catch (e) {
          if (!(e instanceof DeniedError)) throw e
          io.stdout(`${JSON.stringify({ decision: 'deny', code: e.code, message: e.message, failures: e.failures }, null, 2)}\n`)
          fail('attestation denied', e)
          return 1
        }
      }
      case 'register': {
        const enrolToken = a.enrolTokenFile !== undefined ? (await readFile(a.enrolTokenFile, 'utf8')).trim() : a.enrolTokenEnv?.trim()
        const r = await client.register(a.workload!, enrolToken ? { enrolToken } : {})
        io.stdout(`${JSON.stringify(r)}\n`)
        if (r.status === 'pending') io.stderr(`keyward-client: pending approval: AK ${r.akName} waits for an admin (keyward enrol approve ${r.akName})`)
        return r.status === 'rejected' ? 1 : 0
      }
    }
  } catch (e) {
    const what = a.command === 'run' ? 'not starting the command' : `${a.command} failed`
    fail(what, e instanceof KeywardError || e instanceof Error ? e : new Error(String(e)))
    return 1
  } finally {
    await client.close()
  }
}
