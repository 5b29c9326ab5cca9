# kernels: regenerate the amd64 assembly from the avo generator in asm/.
# `make generate` rewrites kernels/*_amd64.s and their Go stubs;
# `make check-generate` regenerates and fails if the checked-in files differ.

KERNELS_GEN := kernels/dot_amd64.s kernels/dot_stubs_amd64.go

.PHONY: generate check-generate

generate:
	cd asm && go run . -out ../kernels/dot_amd64.s -stubs ../kernels/dot_stubs_amd64.go -pkg kernels

check-generate: generate
	@git diff --exit-code -- $(KERNELS_GEN) || { echo "kernels: generated assembly is stale; run make generate and commit" >&2; exit 1; }
