#!/usr/bin/env bash
# Runs every benchmark in bench/ (each prints its own ratios against a reference run in the same process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh base
for f in bench/*.bench.ts; do
  echo "== $f"
  node --import tsx "$f"
done
