import { relative } from 'node:path'
import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

// The files that take longest on the loaded two-core CI machine (seconds, measured with the whole
// suite running), started first so the three workers finish together. Without vitest's results
// cache (a fresh CI checkout) files run largest first, which started the 33-line soak, a fixed
// minute of load, last and alone. Only an order: a file missing here runs after these, as before.
const SLOW_FIRST: Record<string, number> = {
  'test/e2e/soak.test.ts': 90,
  'test/e2e/kek-rotation-crash.test.ts': 70,
  'test/e2e/serve-crash.test.ts': 65,
  'test/e2e/transit-signing-rotation-crash.test.ts': 60,
  'test/enclave-client/cli-run.test.ts': 58,
  'test/broker/boot-facts-attack.test.ts': 53,
  'test/broker/enrolment.test.ts': 50,
  'test/store/cross-process.test.ts': 46,
  'test/enclave-client/cli-run-signals.test.ts': 45,
  'test/e2e/enrolment-replicas.test.ts': 45,
  'test/e2e/dpop-replicas.test.ts': 45,
  'test/e2e/backup-restore.test.ts': 36,
  'test/e2e/client-run.test.ts': 35,
  'test/e2e/boot-facts-replicas.test.ts': 35,
  'test/cli/help.test.ts': 32,
  'test/e2e/replicas.test.ts': 30,
  'test/enclave-client/cli-hardening.test.ts': 27,
  'test/broker/allowlist-state.test.ts': 26,
  'test/e2e/store-faults.test.ts': 20,
  'test/e2e/client-mitm.test.ts': 18,
  'test/cli/reference-import.test.ts': 17,
  'test/policy/re2.test.ts': 17,
  'test/enclave-client/cli-secret-files.test.ts': 16,
  'test/tooling/lint-boundaries.test.ts': 15,
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
    // Most of the suite waits on child processes (brokers, swtpm, CLIs): three workers keep two cores busy.
    maxWorkers: 3,
    sequence: { sequencer: SlowFirstSequencer },
  },
})
