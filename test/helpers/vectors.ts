// Paths to the shared, read-only evidence vectors (../shared beside the repository root).
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'
import { readFileSync } from 'node:fs'

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const VECTORS = resolve(REPO_ROOT, '../shared/vectors')
export const SHARED_TOOLS = resolve(REPO_ROOT, '../shared/tools')

export function vectorPath(...parts: string[]): string {
  return resolve(VECTORS, ...parts)
}

export function readVector(...parts: string[]): Uint8Array {
  return new Uint8Array(readFileSync(vectorPath(...parts)))
}

export function readManifest<T = unknown>(tee: 'nitro' | 'sev-snp' | 'tpm'): T {
  return JSON.parse(readFileSync(vectorPath(tee, 'manifest.json'), 'utf8')) as T
}
