# runtime/server: end-to-end test of `cafeq serve` with the official OpenAI
# Node client (e2e/, pinned in e2e/package-lock.json), and a bounded run of
# the request-decoder fuzz target. Included by the top-level Makefile.
#
#   make test-e2e                      builds bin/cafeq, serves the Shakespeare model, runs e2e/*.test.mjs
#   make test-e2e CAFEQ_E2E_MODEL=x.cq serves another model (directory or .cq file)
#   make fuzz-server                   FuzzDecodeChatRequest for a bounded number of executions

GO               ?= go
CAFEQ_E2E_BIN    ?= $(CURDIR)/bin/cafeq
CAFEQ_E2E_MODEL  ?= $(CURDIR)/testdata/shakespeare-gemma2
SERVER_FUZZ_EXEC ?= 20000x

.PHONY: test-e2e fuzz-server

# Without Node.js the test is skipped, unless CAFEQ_REQUIRE_NODE is set (CI).
test-e2e:
	@set -e; \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		if [ -n "$$CAFEQ_REQUIRE_NODE" ]; then echo "test-e2e: node and npm are required" >&2; exit 1; fi; \
		echo "SKIP test-e2e: node or npm not found"; exit 0; \
	fi; \
	mkdir -p $(dir $(CAFEQ_E2E_BIN)); \
	echo "$(GO) build -o $(CAFEQ_E2E_BIN) ./cmd/cafeq"; \
	$(GO) build -o $(CAFEQ_E2E_BIN) ./cmd/cafeq; \
	cd e2e; \
	npm ci --no-audit --no-fund; \
	CAFEQ_BIN=$(CAFEQ_E2E_BIN) CAFEQ_MODEL=$(CAFEQ_E2E_MODEL) node --test

fuzz-server:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeChatRequest$$' -fuzztime $(SERVER_FUZZ_EXEC) ./runtime/server/
