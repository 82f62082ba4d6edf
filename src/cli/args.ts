// The one argument parser of the `keyward` CLI (node:util parseArgs) and the command shapes the
// dispatcher in src/cli/main.ts runs. Every command answers --help with its usage (exit 0); a
// bad flag, a missing argument or an unknown subcommand is a usage error (ERR_USAGE, exit 2).
import { parseArgs } from 'node:util'
import { KeywardError } from '../errors.js'

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>
  positionals: string[]
}

/** One command: its usage text, its flags, and what it does with them (the exit code). */
export interface Command {
  readonly usage: string
  readonly options: OptionSpec
  run(args: ParsedArgs): Promise<number>
}

/** A group of subcommands (`keyward secret put|list|rm`). `select` picks the subcommand from
 * argv when it is not the first word (`keyward verify --tee tpm`). */
export interface CommandGroup {
  readonly usage: string
  readonly commands: Readonly<Record<string, Command>>
  /** The words naming a subcommand on the command line, for help texts and tests. */
  argvOf?(name: string): string[]
  select?(argv: string[]): { name: string | undefined; rest: string[] }
}

export type CommandEntry = Command | CommandGroup

export class UsageError extends KeywardError {
  constructor(message: string, usage?: string) {
    super('ERR_USAGE', usage === undefined ? message : `${message}\n${usage}`)
    this.name = 'UsageError'
  }
}

const HELP = new Set(['--help', '-h', 'help'])
export const isHelp = (arg: string | undefined): boolean => arg !== undefined && HELP.has(arg)

const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : s + '\n')

/** Parses argv against `options` (plus --help); throws UsageError for anything else. */
export function parseCommandArgs(argv: string[], options: OptionSpec, usage: string): ParsedArgs & { help: boolean } {
  let r
  try {
    r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true, tokens: true })
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e), usage)
  }
  // parseArgs keeps the last of a repeated flag; a flag given twice is more likely a mistake.
  const seen = new Set<string>()
  for (const t of r.tokens) {
    if (t.kind !== 'option' || options[t.name]?.multiple) continue
    if (seen.has(t.name)) throw new UsageError(`--${t.name} given twice`, usage)
    seen.add(t.name)
  }
  const { help, ...values } = r.values as ParsedArgs['values'] & { help?: boolean }
  return { values, positionals: r.positionals, help: help === true }
}

export async function runCommand(cmd: Command, argv: string[]): Promise<number> {
  const { help, ...args } = parseCommandArgs(argv, cmd.options, cmd.usage)
  if (help) return out(cmd.usage), 0
  return cmd.run(args)
}

export async function runEntry(entry: CommandEntry, argv: string[]): Promise<number> {
  if (!('commands' in entry)) return runCommand(entry, argv)
  const { name, rest } = entry.select ? entry.select(argv) : { name: argv[0], rest: argv.slice(1) }
  if (name === undefined || isHelp(name)) {
    if (name !== undefined || argv.some(isHelp)) return out(entry.usage), 0
    throw new UsageError('missing subcommand', entry.usage)
  }
  const cmd = entry.commands[name]
  if (!cmd) throw new UsageError(`unknown subcommand ${name}`, entry.usage)
  return runCommand(cmd, rest)
}

export const str = (v: ParsedArgs['values'][string]): string | undefined => (typeof v === 'string' ? v : undefined)
export const strings = (v: ParsedArgs['values'][string]): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [])

/** Exactly `n` positionals, or a usage error naming what is missing. */
export function positionals(args: ParsedArgs, names: readonly string[], usage: string): string[] {
  if (args.positionals.length !== names.length) {
    throw new UsageError(args.positionals.length < names.length ? `missing ${names.slice(args.positionals.length).join(' ')}` : `unexpected argument ${args.positionals[names.length]}`, usage)
  }
  return args.positionals
}

/** --at TIME: ISO-8601, or an integer epoch (up to 10 digits are seconds, more are milliseconds). */
export function parseAtTime(s: string, flag = '--at'): Date {
  let d: Date
  if (/^\d+$/.test(s)) d = new Date(s.length <= 10 ? Number(s) * 1000 : Number(s))
  else if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s)) d = new Date(s)
  else d = new Date(Number.NaN)
  if (Number.isNaN(d.getTime())) throw new UsageError(`${flag}: not an ISO-8601 time or epoch: ${s}`)
  return d
}
