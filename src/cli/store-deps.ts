// What the administrative commands share: the data directory / config flags, the broker's
// dependencies built over the store (so the CLI works beside running brokers), and output.
import { loadConfig, type BrokerConfig } from '../broker/config.js'
import { createLogger } from '../broker/logger.js'
import { buildDeps } from '../broker/server.js'
import type { BrokerDeps } from '../broker/deps.js'
import type { OptionSpec, ParsedArgs } from './args.js'

/** Flags every command over the store takes. */
export const STORE_OPTIONS = { 'data-dir': { type: 'string' }, config: { type: 'string' } } as const satisfies OptionSpec

export const STORE_USAGE = 'Common options: --data-dir DIR (default ./.data), --config FILE; DATABASE_URL=postgres://… selects PostgreSQL.'

export function configFrom(values: ParsedArgs['values'], extra: Record<string, unknown> = {}): BrokerConfig {
  return loadConfig({
    ...(typeof values.config === 'string' ? { file: values.config } : {}),
    env: process.env,
    overrides: { dataDir: values['data-dir'], ...extra },
  })
}

export async function withDeps<T>(values: ParsedArgs['values'], fn: (deps: BrokerDeps) => Promise<T>): Promise<T> {
  const deps = await buildDeps(configFrom(values), createLogger('warn', undefined))
  try {
    return await fn(deps)
  } finally {
    await deps.store.close()
  }
}

export const out = (o: unknown): void => void process.stdout.write((typeof o === 'string' ? o : JSON.stringify(o, null, 2)) + '\n')
export const who = (): string => `cli:${process.env.USER ?? 'unknown'}`
