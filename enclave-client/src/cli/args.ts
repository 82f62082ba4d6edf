// Command-line parsing for keyward-client (pure, unit-tested). Global options may appear before
// or after the subcommand; for `run`, everything after the first `--` is the child command.
import { homedir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Tee } from '../../../src/protocol/tee.js'
import { ClientConfigError } from '../errors.js'
import { targetSyntaxProblem } from './secret-files.js'
import { parseTee } from '../platform.js'
import { KEY_ALGS, type KeyAlg } from '../session-key.js'

export const COMMANDS = ['run', 'get', 'credential', 'evidence', 'attest', 'register'] as const
export type Command = (typeof COMMANDS)[number]

export interface SecretTarget {
  name: string
  kind: 'env' | 'file'
  /** Env var name, or file path (absolute, or relative to the tmpfs secrets dir). */
  target: string
}

export interface CliArgs {
  command: Command
  positionals: string[]
  broker?: string
  tee?: Tee
  tcti?: string
  ca?: string
  cert?: string
  key?: string
  stateDir: string
  runtimeState?: string
  pcrs?: string
  ekAlg?: 'rsa' | 'ecc'
  /** A persistent EK handle (e.g. 0x81010001) instead of re-deriving the EK. */
  ekHandle?: string
  akAlg?: 'rsa' | 'ecc'
  keyAlg?: KeyAlg
  timeoutMs?: number
  retries?: number
  secrets: SecretTarget[]
  vaultRole?: string
  /** `run`: a directory for the child's X509-SVID (svid.pem, svid.key, bundle.pem), renewed while it runs. */
  svidDir?: string
  renewIntervalMs?: number
  exitOnRenewFailure: boolean
  /** `run`: how long the child may outlive the SIGTERM of --exit-on-renew-failure before SIGKILL. */
  killGraceMs?: number
  /** Allow plain http:// to a broker that is not on loopback. */
  insecureHttp: boolean
  /** A JWKS file with the broker's signing keys: the trust anchor for released values. */
  brokerJwks?: string
  out?: string
  /** credential: an OAuth resource (MCP server URL): ask keyward's token endpoint for an access token instead of a tool credential. */
  resource?: string
  /** credential --resource: the scopes to ask for (default: all the policy grants). */
  scope?: string
  workload?: string
  /** register: file holding a single-use enrolment token (keyward enrol token). */
  enrolTokenFile?: string | undefined
  /** register: the enrolment token from KEYWARD_ENROL_TOKEN. */
  enrolTokenEnv?: string | undefined
  /** `run`: the child command and its arguments. */
  exec: string[]
}

export const USAGE = `usage: keyward-client [options] <command>
commands:
  run --secret NAME=env:VAR --secret NAME=file:PATH [--vault-role R] [--svid DIR] -- CMD ARGS...
                     attest, fetch the secrets, then run CMD with them (env vars, files mode 0600 on tmpfs);
                     --svid DIR: the X509-SVID as DIR/svid.pem, svid.key, bundle.pem, renewed while CMD runs
  get NAME [--out FILE]   fetch one secret to stdout or FILE
  credential TOOL         fetch a short-lived tool credential
  credential --resource URL [--scope S]
                          get an OAuth access token (RFC 9068, DPoP-bound to this process's key) for
                          an MCP server from keyward's token endpoint (docs/agents.md); prints JSON
  evidence                print the /v1/attest body this host would send
  attest                  attest and print the decision and claims
  register --workload W   register this TPM's AK by credential activation; enrolled at once with
                          --enrol-token-file FILE or KEYWARD_ENROL_TOKEN (keyward enrol token),
                          else "pending approval" until an admin runs keyward enrol approve
options:
  --broker URL (env KEYWARD_BROKER)   --tee tpm|nitro|sev-snp (default: detected)
  --tcti TCTI (default device:/dev/tpmrm0)   --state-dir DIR   --pcrs SEL   --ek-alg/--ak-alg rsa|ecc   --ek-handle 0x81010001
  --ca FILE   --cert FILE --key FILE   --timeout MS   --retries N   --key-alg ES256|ES384|RSA-OAEP-256
  --runtime-state SOCKET (allowlist agent, /run/keyward/agent.sock)   --renew-interval MS (run; 0: off)   --exit-on-renew-failure
  --kill-grace MS (run: SIGKILL that long after SIGTERM; default 10000)
  --broker-jwks FILE (the broker's signing keys; else fetched over https or loopback)
  --insecure-http (allow http:// to a broker that is not on loopback)
`

const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export function parseSecretSpec(spec: string): SecretTarget {
  const m = /^([^=]+)=(env|file):(.+)$/.exec(spec)
  if (!m) throw new ClientConfigError(`--secret ${spec}: expected NAME=env:VAR or NAME=file:PATH`)
  const [, name, kind, target] = m as unknown as [string, string, 'env' | 'file', string]
  if (!SECRET_NAME.test(name)) throw new ClientConfigError(`--secret ${spec}: bad secret name`)
  if (kind === 'env' && !ENV_NAME.test(target)) throw new ClientConfigError(`--secret ${spec}: bad environment variable name`)
  const bad = kind === 'file' ? targetSyntaxProblem(target) : undefined
  if (bad) throw new ClientConfigError(`--secret ${spec}: bad file path: ${bad}`)
  return { name, kind, target }
}

function int(v: string | undefined, what: string, min = 0): number | undefined {
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v) || Number(v) < min) throw new ClientConfigError(`${what} must be an integer >= ${min}`)
  return Number(v)
}

function handleOf(v: string | undefined): string | undefined {
  if (v === undefined) return undefined
  // TPM 2.0 Part 2 §7.2: persistent object handles are 0x81xxxxxx.
  if (!/^0x81[0-9a-fA-F]{6}$/.test(v)) throw new ClientConfigError(`--ek-handle must be a persistent handle 0x81xxxxxx, not ${v}`)
  return v
}

function keyAlgOf(v: string | undefined): 'rsa' | 'ecc' | undefined {
  if (v === undefined || v === 'rsa' || v === 'ecc') return v
  throw new ClientConfigError(`key algorithm must be rsa or ecc, not ${v}`)
}

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (env.KEYWARD_STATE_DIR) return env.KEYWARD_STATE_DIR
  if (uid === 0) return '/var/lib/keyward-client'
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'keyward-client')
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env): CliArgs {
  const dd = argv.indexOf('--')
  const own = dd < 0 ? argv : argv.slice(0, dd)
  const exec = dd < 0 ? [] : argv.slice(dd + 1)
  let parsed
  try {
    parsed = parseArgs({
      args: own,
      allowPositionals: true,
      strict: true,
      options: {
        broker: { type: 'string' },
        tee: { type: 'string' },
        tcti: { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        'state-dir': { type: 'string' },
        'runtime-state': { type: 'string' },
        pcrs: { type: 'string' },
        'ek-alg': { type: 'string' },
        'ek-handle': { type: 'string' },
        'ak-alg': { type: 'string' },
        'key-alg': { type: 'string' },
        timeout: { type: 'string' },
        retries: { type: 'string' },
        secret: { type: 'string', multiple: true },
        'vault-role': { type: 'string' },
        resource: { type: 'string' },
        scope: { type: 'string' },
        svid: { type: 'string' },
        'renew-interval': { type: 'string' },
        'exit-on-renew-failure': { type: 'boolean' },
        'kill-grace': { type: 'string' },
        'insecure-http': { type: 'boolean' },
        'broker-jwks': { type: 'string' },
        out: { type: 'string' },
        workload: { type: 'string' },
        'enrol-token-file': { type: 'string' },
      },
    })
  } catch (e) {
    throw new ClientConfigError(e instanceof Error ? e.message : String(e))
  }
  const v = parsed.values
  const [cmd, ...positionals] = parsed.positionals
  if (!cmd || !(COMMANDS as readonly string[]).includes(cmd)) throw new ClientConfigError(cmd ? `unknown command ${cmd}` : 'no command given')
  const command = cmd as Command
  const keyAlg = v['key-alg']
  if (keyAlg !== undefined && !(KEY_ALGS as readonly string[]).includes(keyAlg)) throw new ClientConfigError(`--key-alg must be one of ${KEY_ALGS.join(', ')}`)
  const args: CliArgs = {
    command,
    positionals,
    broker: v.broker ?? env.KEYWARD_BROKER,
    tee: v.tee === undefined ? undefined : parseTee(v.tee),
    tcti: v.tcti ?? env.KEYWARD_TCTI,
    ca: v.ca,
    cert: v.cert,
    key: v.key,
    stateDir: v['state-dir'] ?? defaultStateDir(env),
    runtimeState: v['runtime-state'],
    pcrs: v.pcrs,
    ekAlg: keyAlgOf(v['ek-alg']),
    ekHandle: handleOf(v['ek-handle']),
    akAlg: keyAlgOf(v['ak-alg']),
    keyAlg: keyAlg as KeyAlg | undefined,
    timeoutMs: int(v.timeout, '--timeout', 1),
    retries: int(v.retries, '--retries'),
    secrets: (v.secret ?? []).map(parseSecretSpec),
    vaultRole: v['vault-role'],
    svidDir: v.svid,
    renewIntervalMs: int(v['renew-interval'], '--renew-interval'),
    exitOnRenewFailure: v['exit-on-renew-failure'] ?? false,
    killGraceMs: int(v['kill-grace'], '--kill-grace'),
    insecureHttp: v['insecure-http'] ?? false,
    brokerJwks: v['broker-jwks'],
    out: v.out,
    resource: v.resource,
    scope: v.scope,
    workload: v.workload,
    // Never on argv (every local user can read /proc/*/cmdline): a file or the environment.
    enrolTokenFile: v['enrol-token-file'],
    enrolTokenEnv: env.KEYWARD_ENROL_TOKEN,
    exec,
  }
  if (command !== 'evidence' && !args.broker) throw new ClientConfigError('--broker URL (or KEYWARD_BROKER) is required')
  if ((args.cert === undefined) !== (args.key === undefined)) throw new ClientConfigError('--cert and --key go together')
  switch (command) {
    case 'run':
      if (exec.length === 0) throw new ClientConfigError('run: give the command after --')
      if (args.secrets.length === 0 && !args.vaultRole && args.svidDir === undefined) throw new ClientConfigError('run: give at least one --secret, --vault-role or --svid')
      if (args.svidDir !== undefined && targetSyntaxProblem(args.svidDir)) throw new ClientConfigError(`--svid ${args.svidDir}: ${targetSyntaxProblem(args.svidDir)}`)
      if (new Set(args.secrets.filter((s) => s.kind === 'env').map((s) => s.target)).size !== args.secrets.filter((s) => s.kind === 'env').length) {
        throw new ClientConfigError('run: an environment variable is the target of two secrets')
      }
      if (new Set(args.secrets.filter((s) => s.kind === 'file').map((s) => s.target)).size !== args.secrets.filter((s) => s.kind === 'file').length) {
        throw new ClientConfigError('run: a file is the target of two secrets')
      }
      break
    case 'get':
    case 'credential':
      if (command === 'credential' && args.resource !== undefined) {
        if (positionals.length !== 0) throw new ClientConfigError('credential --resource URL takes no tool')
        if (!URL.canParse(args.resource) || args.resource.includes('#')) throw new ClientConfigError('--resource must be an absolute URL without fragment')
        break
      }
      if (args.scope !== undefined) throw new ClientConfigError('--scope goes with credential --resource')
      if (positionals.length !== 1) throw new ClientConfigError(`${command}: give exactly one ${command === 'get' ? 'secret name' : 'tool'}`)
      if (args.out !== undefined && targetSyntaxProblem(args.out)) throw new ClientConfigError(`--out ${args.out}: ${targetSyntaxProblem(args.out)}`)
      break
    case 'register':
      if (!args.workload) throw new ClientConfigError('register: --workload is required')
      break
    default:
      break
  }
  if (command !== 'run' && exec.length > 0) throw new ClientConfigError(`${command} takes no command after --`)
  return args
}
