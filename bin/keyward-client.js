#!/usr/bin/env node
// First of all, before any module loads: a SIGUSR1 listener keeps Node from opening its inspector
// (enclave-client/src/cli/harden.ts says why; it repeats this for the published binary).
process.on('SIGUSR1', () => process.stderr.write("keyward-client: SIGUSR1 ignored (Node's inspector stays closed)\n"))
const { load } = await import('./launch.js')
;(await load('enclave-client/src/cli/harden')).harden((l) => process.stderr.write(`keyward-client: ${l}\n`))
process.exitCode = await (await load('enclave-client/src/cli/main')).main(process.argv.slice(2))
