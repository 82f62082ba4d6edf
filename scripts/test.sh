#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs the whole suite:
# unit and integration tests (SQLite and PostgreSQL, swtpm, vectors), then the lab VM scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh lab --postgres
npx tsc -p tsconfig.test.json   # sources, tests, benches and scripts type-check strictly
# Native parts build here too, so the tests that use them run rather than skip:
make -s -C enclave-client/ebpf            # the eBPF exec-allowlist program and its agent
bash enclave-client/native/nsm/build.sh >/dev/null   # the /dev/nsm addon (compiled; no device here)
npx vitest run
npm run test:lab
