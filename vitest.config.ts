import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/lab/**', 'node_modules/**'],
    // Many tests spawn CLIs, brokers and swtpm; on a loaded two-core CI machine a spawn alone can take
    // seconds. A generous ceiling only lengthens a hang, never a pass.
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most of the suite waits on child processes (brokers, swtpm, CLIs): three workers keep two cores busy.
    maxWorkers: 3,
  },
})
