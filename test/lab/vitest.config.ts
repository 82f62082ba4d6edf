import { defineConfig } from 'vitest/config'

// The lab boots a VM per scenario (scripts/lab/run.sh): one file at a time on a 2-core host.
export default defineConfig({
  test: {
    include: ['test/lab/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 420_000,
    pool: 'forks',
    fileParallelism: false,
  },
})
