# sipctl — the two commands a person needs: `make run` and `make test`.
SHELL := /bin/bash
NODE_STAMP := node_modules/.sipctl-installed
SIPCTL := node dist/cli/sipctl.js
# Extra arguments for the proxy: make run ARGS="--listen udp:127.0.0.1:5080 --forward sip:127.0.0.1:5070"
ARGS ?=
# Extra arguments for vitest (CI adds its JSON reporter here).
VITEST_ARGS ?=

.PHONY: run test build install migrate bench bench-micro bench-acl clean

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(NODE_STAMP)

build: $(NODE_STAMP)
	npx tsc -p tsconfig.json

migrate: build
	$(SIPCTL) migrate

run: migrate
	exec $(SIPCTL) serve $(ARGS)

test: build
	npx vitest run $(VITEST_ARGS)

clean:
	rm -rf dist
