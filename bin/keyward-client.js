#!/usr/bin/env node
import { load } from './launch.js'

process.exitCode = await (await load('enclave-client/src/cli/main')).main(process.argv.slice(2))
