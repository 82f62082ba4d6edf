// `keyward serve`: runs the broker until signalled.
import { createLogger } from '../broker/logger.js'
import { runServe } from '../broker/server.js'
import type { Command } from './args.js'
import { STORE_OPTIONS, STORE_USAGE, configFrom } from './store-deps.js'

const serve: Command = {
  usage: `usage: keyward serve [--port N] [--host H] [--data-dir DIR] [--config FILE] [--workers N|auto]\n${STORE_USAGE}`,
  options: { ...STORE_OPTIONS, port: { type: 'string' }, host: { type: 'string' }, workers: { type: 'string' } },
  async run({ values }) {
    const config = configFrom(values, { port: values.port, host: values.host, workers: values.workers })
    await runServe(config, createLogger(config.logLevel), { env: process.env })
    return -1 // keep running
  },
}
export default serve
