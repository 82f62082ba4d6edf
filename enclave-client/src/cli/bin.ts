#!/usr/bin/env node
// Entry point of the published package's `keyward-client` binary. harden() runs before anything
// is requested or written; a SIGUSR1 while modules load may open the inspector, which it closes.
import { harden } from './harden.js'
import { main } from './main.js'

harden((l) => process.stderr.write(`keyward-client: ${l}\n`))
process.exitCode = await main(process.argv.slice(2))
