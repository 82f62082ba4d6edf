// Loads the lab's keyward-client bundle (keyward-client.cjs beside this file) with the V8 code
// cache build.sh made by running it once on the host (same node binary as the guest): under TCG
// compiling the ~1 MB bundle costs seconds per process, the cache most of that. A cache V8
// rejects (other node build or flags) is ignored and the bundle compiles as usual.
//   node load.cjs ARGS...              run keyward-client
//   KW_MAKE_CODE_CACHE=1 node load.cjs --help   (build.sh) also write keyward-client.cjs.cache
'use strict'
const { readFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')
const { Script } = require('node:vm')
const Module = require('node:module')

const file = join(__dirname, 'keyward-client.cjs')
const cacheFile = `${file}.cache`
const make = process.env.KW_MAKE_CODE_CACHE === '1'
let cachedData
if (!make) {
  try {
    cachedData = readFileSync(cacheFile)
  } catch {}
}
const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData })
if (process.env.KW_CODE_CACHE_STATUS) process.stderr.write(`code cache ${cachedData ? (script.cachedDataRejected ? 'rejected' : 'used') : 'absent'}\n`)
const mod = { exports: {} }
script.runInThisContext().call(mod.exports, mod.exports, require, mod, file, __dirname)
// After the run (--help compiles the CLI's start-up path), so the cache holds those functions too.
if (make) process.once('beforeExit', () => writeFileSync(cacheFile, script.createCachedData()))
