import { defineConfig } from 'vitest/config'

// The lab boots VMs (scripts/lab/run.sh; test/lab/exec-allowlist.test.ts boots twice for the three scenarios): one at a time on a 2-core host.
export default defineConfig({
  test: {
    include: ['test/lab/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 420_000,
    pool: 'forks',
    fileParallelism: false,
  },
})
