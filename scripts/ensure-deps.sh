#!/usr/bin/env bash
# Installs everything keyward needs on a fresh machine, skipping what is already there:
# Debian packages (scripts/setup-system.sh), a running PostgreSQL (tests only), npm packages, the build.
# Usage: scripts/ensure-deps.sh [base|lab] [--postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-base}
bash scripts/setup-system.sh "$mode"
if [ "${2:-}" = --postgres ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "ensure-deps: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
# Install from the lock file when node_modules is missing or older than it. `npm install`, not
# `npm ci`: vite lists a Windows-only optional package the registry does not serve, and npm ci
# refuses any lock file that lacks it.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-deps: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error
fi
# Rebuild when any TypeScript source is newer than the last build.
if [ ! -f dist/.built ] || [ -n "$(find src enclave-client/src \( -name '*.ts' -o -name '*.tsx' \) -newer dist/.built -print -quit)" ]; then
  echo "ensure-deps: building" >&2
  npx tsc -p tsconfig.json
  touch dist/.built
fi
