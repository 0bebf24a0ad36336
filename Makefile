# sipctl — the two commands a person needs: `make run` and `make test`.
SHELL := /bin/bash
NODE_STAMP := node_modules/.sipctl-installed
SIPCTL := node dist/cli/sipctl.js
# Extra arguments for the proxy: make run ARGS="--listen udp:127.0.0.1:5080 --forward sip:127.0.0.1:5070"
ARGS ?=
# Extra arguments for vitest (CI adds its JSON reporter here).
VITEST_ARGS ?=

.PHONY: run test build install migrate bench bench-tm bench-failover bench-tx bench-tcp bench-obs bench-micro bench-acl bench-log bench-route build-bench clean fuzz

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
	npx tsc -p tsconfig.test.json
	npx vitest run $(VITEST_ARGS)

clean:
	rm -rf dist dist-bench

# The property-based tests of the parser and the edit model (test/sip/property.test.ts) for
# longer than `make test` runs them, with a fresh seed (printed; FUZZ_SEED=... replays one).
FUZZ_RUNS ?= 20000
fuzz: $(NODE_STAMP)
	FUZZ_RUNS=$(FUZZ_RUNS) $(if $(FUZZ_SEED),FUZZ_SEED=$(FUZZ_SEED)) npx vitest run test/sip/property.test.ts

# Benchmarks live under test/bench/ and are not part of `make test`.
build-bench: $(NODE_STAMP)
	npx tsc -p tsconfig.bench.json

# Address-table lookups/s at 10 / 10,000 / 1,000,000 entries, reload time, RSS.
bench-acl: build-bench
	node --expose-gc dist-bench/test/bench/acl.js

# Parser, address table and selection micro-benchmarks.
bench-micro: build-bench
	node --expose-gc dist-bench/test/bench/micro.js

# Whole calls through the core, stateless and transaction mode: CPU per message, memory per call.
bench-tx: build-bench
	node --expose-gc dist-bench/test/bench/transaction-calls.js

# CPU per call of a routing script loaded from a file (.ts through the loader) against the
# built-in default route, and of a route that rewrites From and adds a header (README "Writing routes").
bench-route: build-bench
	node dist-bench/test/bench/route.js

# CPU per log line: sipctl's logger (text, JSON) against pino.
bench-log: build-bench
	node dist-bench/test/bench/log.js

# Side by side with Kamailio under SIPp load (installs sipp and kamailio when missing).
bench: build-bench
	bash test/bench/bench.sh

# The same in transaction mode, against Kamailio's tm (reference-kamailio.sh --tm).
bench-tm: build-bench
	BENCH_MODE=transaction BENCH_OUT=latest-tm.md bash test/bench/bench.sh

# The same calls over TCP (one SIPp connection each way, PBXs over TCP) at 500 and 1,000 calls/s.
bench-tcp: build-bench
	BENCH_TRANSPORT=tcp BENCH_RATES="$${BENCH_RATES:-500 1000}" BENCH_OUT=latest-tcp.md bash test/bench/bench.sh

# Failover under load: the second PBX answers every INVITE 503; both proxies fail over.
bench-failover: build-bench
	BENCH_MODE=transaction BENCH_UAS_B=uas_503.xml BENCH_RATES="$${BENCH_RATES:-1000}" BENCH_OUT=latest-failover.md bash test/bench/bench.sh

# What metrics (scraped every second) and HEP capture cost sipctl under the same SIPp load.
bench-obs: build
	bash test/bench/bench-obs.sh
