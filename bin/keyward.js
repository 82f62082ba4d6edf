#!/usr/bin/env node
// keyward: runs the compiled CLI (dist/) when built, else the TypeScript sources through tsx
// (development). KEYWARD_DEV=1 forces the sources.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const built = new URL('../dist/src/cli/main.js', import.meta.url)
let mod
if (!process.env.KEYWARD_DEV && existsSync(fileURLToPath(built))) {
  mod = await import(built.href)
} else {
  const { register } = await import('tsx/esm/api')
  register()
  mod = await import(new URL('../src/cli/main.ts', import.meta.url).href)
}
await mod.runCli(process.argv.slice(2))
