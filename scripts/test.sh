#!/usr/bin/env bash
# Runs every test: type-check + build, then node's test runner over the compiled tests.
# End-to-end tests need root and CRIU; `make test` runs scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node_modules/.bin/tsc -p tsconfig.json
# The CLI bundle follows tsc's output (bin/ferry would otherwise fall back to the slower dist/).
node scripts/build-cli.mjs >/dev/null
if [ "$#" -gt 0 ]; then files=("$@"); else mapfile -t files < <(find dist -name '*.test.js' | sort); fi
# One test file at a time: the CRIU end-to-end tests share this machine's 2 cores.
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
