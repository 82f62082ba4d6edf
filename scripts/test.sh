#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs the whole suite:
# unit and integration tests (SQLite and PostgreSQL, swtpm, vectors), then the lab VM scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh lab --postgres
npx tsc -p tsconfig.test.json   # sources, tests, benches and scripts type-check strictly
# Lint gate (style, import cycles, the import boundaries of docs/architecture.md); KEYWARD_LINT=0 skips it.
if [ "${KEYWARD_LINT:-1}" = 1 ]; then npm run -s lint; fi
# Native parts build here too, so the tests that use them run rather than skip:
make -s -C enclave-client/ebpf            # the eBPF exec-allowlist program and its agent
bash enclave-client/native/nsm/build.sh >/dev/null   # the /dev/nsm addon (compiled; no device here)
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$results/suite.json" || status=$?
npx vitest run --config test/lab/vitest.config.ts --reporter=default --reporter=json --outputFile="$results/lab.json" || status=$?
# One plain closing line over both runs; skips count too (scripts/test-summary.mjs says which may).
node scripts/test-summary.mjs "$results/suite.json" "$results/lab.json" || status=1
exit $status
