package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the packages' imports one-directional, as
// docs/DESIGN.md lays out: kernels imports no project package; model only
// kernels (and its tokenizer); quantize no runtime; runtime no quantize.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "github.com/cafeq/cafeq/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	const mod = "github.com/cafeq/cafeq/"
	allowed := map[string][]string{
		"kernels":                {},
		"model/internal/regfile": {},
		"model/tokenizer":        {"model/internal/regfile"},
		"model":                  {"kernels", "model/tokenizer", "model/internal/regfile"},
		"quantize":               {"kernels", "model", "model/tokenizer"},
		"runtime":                {"kernels", "model", "model/tokenizer"},
		"runtime/eval":           {"runtime", "kernels", "model", "model/tokenizer"},
		"runtime/server":         {"runtime", "kernels", "model", "model/tokenizer"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		rel, ok := strings.CutPrefix(pkg, mod)
		if !ok {
			continue
		}
		allow, ruled := allowed[rel]
		if !ruled {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			dep, ok := strings.CutPrefix(imp, mod)
			if !ok {
				continue
			}
			okDep := false
			for _, a := range allow {
				okDep = okDep || a == dep
			}
			if !okDep {
				t.Errorf("%s imports %s, which docs/DESIGN.md does not allow", rel, dep)
			}
		}
	}
}
