#!/usr/bin/env bash
# npm run lint: ESLint (eslint.config.js: typescript-eslint and the import boundaries of
# docs/architecture.md) and dpdm (dpdm.config.json: no import cycles, type-only imports included)
# side by side, one per core. dpdm builds the module graph once with TypeScript's parser; ESLint's
# import-x/no-cycle re-parsed every file for it and was two thirds of ESLint's rule time.
set -uo pipefail
cd "$(dirname "$0")/.."
cycles_out=$(mktemp)
trap 'rm -f "$cycles_out"' EXIT
node_modules/.bin/dpdm >"$cycles_out" 2>&1 & cycles=$!
status=0
node_modules/.bin/eslint "$@" . || status=$?
# dpdm's report is printed only when it finds a cycle (or fails).
if ! wait "$cycles"; then
  echo "lint: import cycles (dpdm, dpdm.config.json):" >&2
  grep -v 'Start analyzing\|Analyze done' "$cycles_out" >&2
  status=1
fi
exit $status
