// Shared by the bin scripts: the compiled module under dist/ when built, else the TypeScript
// source through tsx (development). KEYWARD_DEV=1 forces the sources.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export async function load(relPath) {
  const built = new URL(`../dist/${relPath}.js`, import.meta.url)
  if (!process.env.KEYWARD_DEV && existsSync(fileURLToPath(built))) return import(built.href)
  const { register } = await import('tsx/esm/api')
  register()
  return import(new URL(`../${relPath}.ts`, import.meta.url).href)
}
