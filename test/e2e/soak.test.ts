// The short soak in the suite: `npm run soak -- 0.5` (half a minute against one broker on SQLite,
// half a minute against two replicas on PostgreSQL; the two minutes exceed the CI budget).
// It must report zero errors and RSS growth within the script's stated bound after warm-up.
import { describe, it, expect } from 'vitest'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { REPO_ROOT } from '../helpers/vectors.js'

describe('soak (short)', () => {
  it('runs the full flow at a steady rate with zero errors and bounded memory, single broker and two replicas', async () => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts/soak.ts'), process.env.KEYWARD_SOAK_MINUTES ?? '0.5', 'both'], {
      cwd: REPO_ROOT,
      env: { ...process.env, KEYWARD_DEV: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    p.stdout.on('data', (d: Buffer) => (out += d.toString()))
    p.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((r) => p.on('close', r))
    console.log(out.split('\n').filter((l) => l.startsWith('[soak')).join('\n'))
    const line = out.split('\n').find((l) => l.startsWith('soak-summary '))
    expect(line, out).toBeDefined()
    const results = JSON.parse(line!.slice('soak-summary '.length)) as Array<{ mode: string; ok: boolean; errors: number; operations: number; rssGrowthMiB: number[]; rssBoundMiB: number; firstErrors: string[] }>
    expect(results.map((r) => r.mode)).toEqual(['single', 'replicas'])
    for (const r of results) {
      expect(r.firstErrors).toEqual([])
      expect(r.errors).toBe(0)
      expect(r.operations).toBeGreaterThan(0)
      for (const g of r.rssGrowthMiB) expect(g).toBeLessThanOrEqual(r.rssBoundMiB)
    }
    expect(code).toBe(0)
  }, 600_000)
})
