# cafeq — build, demo and tests. `make demo` and `make test` are the two
# set-up commands in the README; both need only Go (and npm for fixtures).

GO      ?= go
BIN     := bin/cafeq
DEMO_HF := testdata/shakespeare-gemma2
FUZZTIME ?= 10s

.PHONY: all build demo test vet fmt-check test-unit test-purego test-arm64 fuzz fixtures clean

all: build

include mk/*.mk

build:
	$(GO) build -o $(BIN) ./cmd/cafeq

# The main job on the model shipped in testdata: quantize the trained
# Shakespeare model with CafeQ at the default 4.5 bits per weight (everything
# counted), inspect the file, generate from it,
# and measure its quality against the unquantized checkpoint on unseen text.
DEMO_CQ := bin/demo/shakespeare-q4.cq
demo: build
	@mkdir -p bin/demo
	$(BIN) quantize -m $(DEMO_HF) -o $(DEMO_CQ)
	$(BIN) inspect -verify $(DEMO_CQ)
	@echo "== greedy continuation from the 4-bit file"
	$(BIN) run -m $(DEMO_CQ) -p "ROMEO:" -n 64 -temp 0
	@head -c 8000 $(DEMO_HF)/eval.txt > bin/demo/heldout.txt
	@echo "== quality on unseen text against the BF16 checkpoint"
	$(BIN) perplexity -m $(DEMO_CQ) -ref $(DEMO_HF) -f bin/demo/heldout.txt -ctx 128

fixtures: fixtures-tokenizer

# Everything CI checks. Fetched fixtures are required here, so a missing one
# fails instead of skipping.
test: fixtures vet fmt-check check-generate test-unit test-purego test-arm64 fuzz test-e2e

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-unit:
	CAFEQ_REQUIRE_FIXTURES=1 $(GO) test -count=1 ./...

# The pure-Go reference kernels, as -tags purego selects them everywhere.
test-purego:
	CAFEQ_REQUIRE_FIXTURES=1 $(GO) test -count=1 -tags purego ./kernels/... ./runtime/...

# arm64 under qemu-user, with and without the dot-product extension.
test-arm64:
	@if ! command -v qemu-aarch64 >/dev/null; then \
		if [ -n "$$CAFEQ_REQUIRE_QEMU" ]; then echo "qemu-aarch64 not found (apt-get install qemu-user)"; exit 1; fi; \
		echo "SKIP test-arm64: qemu-aarch64 not found (apt-get install qemu-user)"; exit 0; fi; \
	set -e; \
	GOARCH=arm64 $(GO) test -c -o bin/kernels-arm64.test ./kernels; \
	QEMU_CPU=max qemu-aarch64 bin/kernels-arm64.test -test.count=1; \
	QEMU_CPU=cortex-a53 qemu-aarch64 bin/kernels-arm64.test -test.count=1; \
	GOARCH=arm64 $(GO) test -c -o bin/runtime-arm64.test ./runtime; \
	cd runtime && QEMU_CPU=max qemu-aarch64 ../bin/runtime-arm64.test -test.count=1 -test.run 'Golden|Decode'

# Every fuzz target, each for a bounded time. A failure is shown and the
# target run once more: an input that fails was saved to testdata/fuzz and
# fails the second run first thing, while a worker that only stalled past the
# fuzzer's hang limit (this happens on a shared, overloaded machine) does not.
fuzz:
	@mkdir -p bin; set -e; for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$t"; \
			if ! $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg >bin/fuzz.log 2>&1; then \
				cat bin/fuzz.log; echo "fuzz $$t failed; running it again"; \
				$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
			fi; \
		done; done

clean:
	rm -rf bin
