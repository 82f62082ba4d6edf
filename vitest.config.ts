import { relative } from 'node:path'
import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

// The files that take longest on the loaded two-core CI machine (seconds of test time, hooks not
// counted, measured with the whole suite running), started first so the three workers finish
// together. Without vitest's results cache (a fresh CI checkout) files run largest first, which
// started the 33-line soak, a fixed minute of load, last and alone. Only an order: a file missing
// here runs after these, in vitest's own order.
const SLOW_FIRST: Record<string, number> = {
  'test/e2e/soak.test.ts': 113,
  'test/e2e/kek-rotation-crash.test.ts': 68,
  'test/broker/enrolment.test.ts': 60,
  'test/e2e/transit-signing-rotation-crash.test.ts': 52,
  'test/broker/boot-facts-attack.test.ts': 49,
  'test/e2e/serve-crash.test.ts': 49,
  'test/enclave-client/cli-run.test.ts': 33,
  'test/e2e/client-run.test.ts': 31,
  'test/enclave-client/cli-run-signals.test.ts': 31,
  'test/e2e/dpop-replicas.test.ts': 27,
  'test/cli/help.test.ts': 25,
  'test/store/cross-process.test.ts': 21,
  'test/e2e/backup-restore.test.ts': 19,
  'test/e2e/enrolment-replicas.test.ts': 18,
  'test/broker/allowlist-state.test.ts': 16,
  'test/enclave-client/cli-hardening.test.ts': 16,
  'test/enclave-client/cli-secret-files.test.ts': 15,
  'test/verifiers/nitro/tamper.test.ts': 15,
  'test/e2e/client-mitm.test.ts': 12,
  'test/sealing/keyring.test.ts': 11,
  'test/e2e/replicas.test.ts': 10,
  'test/policy/re2.test.ts': 10,
}

class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const weight = (f: TestSpecification): number => SLOW_FIRST[relative(this.ctx.config.root, f.moduleId)] ?? 0
    // Array.prototype.sort is stable: unlisted files keep vitest's own order after the listed ones.
    return (await super.sort(files)).sort((a, b) => weight(b) - weight(a))
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/lab/**', 'node_modules/**'],
    // Many tests spawn CLIs, brokers and swtpm; on a loaded two-core CI machine a spawn alone can take
    // seconds. A generous ceiling only lengthens a hang, never a pass.
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // `workers: auto` (the default) forks a process per CPU on PostgreSQL: every broker a test
    // spawns would be several, on a loaded two-core machine. Tests that mean several workers set
    // them in their config and clear this (KEYWARD_WORKERS='' leaves the config file's value).
    env: { KEYWARD_WORKERS: '1' },
    // Most of the suite waits on child processes (brokers, swtpm, CLIs): three workers keep two cores busy.
    maxWorkers: 3,
    sequence: { sequencer: SlowFirstSequencer },
  },
})
