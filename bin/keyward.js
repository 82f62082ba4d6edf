#!/usr/bin/env node
import { load } from './launch.js'

await (await load('src/cli/main')).runCli(process.argv.slice(2))
