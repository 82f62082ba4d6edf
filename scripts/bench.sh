#!/usr/bin/env bash
# Benchmarks. With no argument, runs every bench/*.bench.ts except the end-to-end one (each prints
# its own ratios against a reference run in the same process).
#   npm run bench -- e2e [--full] [--save]   the HTTP benchmark (bench/e2e.bench.ts); --save writes
#                                            bench/results/<machine-kind>.json
#   npm run bench -- --compare [--full]      runs it and exits non-zero when a ratio to the floor
#                                            falls more than 20 % below the committed results
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh base
case "${1:-}" in
  e2e) shift; exec node --import tsx bench/e2e.bench.ts "$@" ;;
  --compare) shift; exec node --import tsx bench/e2e.bench.ts --compare "$@" ;;
esac
# The broker's in-process bench claims one core: pin it (libuv pool threads included) to one CPU.
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
for f in bench/*.bench.ts; do
  [ "$f" = bench/e2e.bench.ts ] && continue
  echo "== $f"
  if [ "$f" = bench/broker.bench.ts ]; then "${pin[@]}" node --import tsx "$f"; else node --import tsx "$f"; fi
done
