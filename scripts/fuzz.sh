#!/usr/bin/env bash
# The property-based fuzz tests (*.fuzz.test.ts) at 10,000 inputs per property (FERRY_FUZZ_RUNS
# overrides; FERRY_FUZZ_SEED replays a failure's seed). `make test` runs the same tests with a
# few hundred inputs each. No root, no CRIU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node_modules/.bin/tsc -p tsconfig.json
mapfile -t files < <(find dist -name '*.fuzz.test.js' | sort)
export FERRY_FUZZ_RUNS="${FERRY_FUZZ_RUNS:-10000}"
echo "fuzz: ${#files[@]} files, FERRY_FUZZ_RUNS=$FERRY_FUZZ_RUNS inputs per property"
exec node --test --test-concurrency=1 --test-timeout=3600000 --test-reporter=spec "${files[@]}"
