# ferry — the two commands the README starts with:
#   make demo   set up this machine (idempotent), then checkpoint and restore a small workload
#   make test   set up this machine (idempotent), then lint, type-check and run every test
# and: make fuzz   the property-based fuzz tests with 10,000 inputs per property (no root)
.PHONY: setup build lint test fuzz demo proto clean

setup:
	@bash scripts/setup.sh

build:
	@node_modules/.bin/tsc -p tsconfig.json
	@node scripts/build-cli.mjs >/dev/null
	@node scripts/build-dashboard.mjs >/dev/null

lint:
	@node_modules/.bin/eslint .

proto:
	@npm run --silent proto

test: setup
	@$(MAKE) --no-print-directory lint
	@bash scripts/test.sh

fuzz:
	@bash scripts/fuzz.sh

demo: setup
	@bash scripts/demo.sh

clean:
	rm -rf dist native/build
