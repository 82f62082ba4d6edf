#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and runs scripts/demo.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh base
exec node --import tsx scripts/demo.ts
